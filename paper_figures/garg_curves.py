"""Garg et al. (2022), Figure 2: a causal GPT-2-style transformer against every learner at every
prefix, on linear, sparse linear, two-layer ReLU network and decision-tree regression.

For each task of icl.experiments.garg: train the model at every position (train.objective =
"causal"), then on held-out sequences of T pairs compute, at each number of in-context examples
k = 0..T-1, the normalised squared error (y_hat - y)^2 / s (s = d, k-sparse: k, trees: 1;
icl.analysis.prefix_curves) of the model and of each learner fitted on the k pairs before, with
95 % bootstrap bands; the per-position cosine between the model's and each learner's
predictions; and the per-position sensitivity cosine, the mean over tasks of cos(d y_hat_k / d x_k)
between the model and each learner with a sensitivity (not k-NN or the trees: piecewise constant;
null at k = 0, where every learner predicts 0; icl.analysis.prefix_curves.sensitivity_cosine).

    python paper_figures/garg_curves.py              # the CPU scale (d = 5): 4 runs x 6,000 steps of batch 64
    python paper_figures/garg_curves.py --quick      # 300 steps each (smoke test, minutes)
    python paper_figures/garg_curves.py --published  # Garg et al.'s scale (d = 20, 500,000 steps): a GPU job
"""

from __future__ import annotations

import sys

import jax
import numpy as np

import common
from icl import compare, train
from icl.analysis import prefix_curves
from icl.experiments import garg as study

NAME = "garg_curves"
TEST_TASKS = {"full": 1000, "quick": 200}
PUBLISHED = {
    "source": "Garg, Tsipras, Liang, Valiant, NeurIPS 2022, Figure 2 (d = 20): the transformer tracks noiseless "
    "least squares on linear regression (error (d - k) / d for k < d, ~0 from k = d); on sparse regression it "
    "is well below least squares for k < 20 and close to Lasso; on ReLU networks at or below the network "
    "trained by GD; on trees well below greedy trees and XGBoost at ~100 examples. Read off the plot "
    "(no table is published): their curves are not numbers to compare digit by digit.",
    "least_squares_linear": "(d - k) / d for k < d, then ~0 (closed form, noiseless, x ~ N(0, I))",
}


def evaluate(config, params, n_tasks: int) -> dict:
    """Curves of the model (first seed) and of the task's learners at every prefix length, and the
    cosines between the model and each learner, of the predictions and of the sensitivities."""
    model = train.seed_models(config, params)[0]
    batch = config.task.sample(train.heldout_key(config, train.HeldOut.FINAL), n_tasks)
    x, y = batch.sequence()
    predict_model = lambda x_, y_: model.predict_prefixes(x_, y_)
    predictions = {"model": jax.jit(predict_model)(x, y)}
    kind = config.name.removeprefix("garg_").removesuffix("_cpu")
    hparam_key = train.heldout_key(config, train.HeldOut.GD_LR)
    learned, hparams = prefix_curves.all_learners(config.task, study.LEARNERS[kind], x, y, hparam_key)
    predictions.update(learned)
    curves = prefix_curves.curves(config.task, predictions, y, train.heldout_key(config, train.HeldOut.EXTRA))
    cosine = {name: prefix_curves.position_cosine(predictions["model"], p).tolist() for name, p in learned.items()}
    return {"kind": kind, "d": config.task.d, "T": int(x.shape[1]), "error_scale": prefix_curves.error_scale(config.task),
            "curves": curves, "prediction_cosine": cosine,
            "sensitivity_cosine": sensitivity_cosines(config.task, study.LEARNERS[kind], predict_model, x, y, hparam_key),
            "hparams": hparams}


def sensitivity_cosines(task, learners, predict_model, x, y, hparam_key) -> dict:
    """{learner: [T]}: at each position the mean over tasks of cos(d y_hat_t / d x_t) between the
    model and each learner that has a sensitivity (`prefix_curves.has_sensitivity`), with the
    hyper-parameters `all_learners` used; None (JSON null) where undefined (k = 0)."""
    sens_model = prefix_curves.position_sensitivities(predict_model, x, y)  # [B, T, d], T reverse passes
    out = {}
    for spec in learners:
        if prefix_curves.has_sensitivity(spec):
            predict, _ = compare.solver_predictor(spec, task, hparam_key)
            cos = prefix_curves.sensitivity_cosine_of(sens_model, prefix_curves.learner_sensitivities(predict, x, y))
            out[spec] = [None if np.isnan(c) else float(c) for c in cos]
    return out


def checks(r: dict) -> dict:
    """The issue's statements about the record, measured (True / False, with the numbers)."""
    mean = {name: np.asarray(c["mean"]) for name, c in r["curves"].items()}
    d, k = r["d"], np.arange(r["T"])
    out = {}
    if r["kind"] == "linear":
        gap = mean["model"][k >= d + 2] - mean["least_squares"][k >= d + 2]
        out["model_minus_least_squares_max_for_k_ge_d_plus_2"] = float(gap.max())
        out["within_0.1_of_least_squares_for_k_ge_d_plus_2"] = bool(gap.max() <= 0.1)
        past2 = k > 2
        out["below_averaging_and_3nn_past_k_2"] = bool(np.all(mean["model"][past2] < np.minimum(mean["averaging"], mean["knn"])[past2]))
    if r["kind"] == "sparse":
        out["mean_over_k"] = {n: float(mean[n][1:].mean()) for n in ("model", "lasso", "least_squares")}
        out["between_lasso_and_least_squares_on_average"] = bool(
            out["mean_over_k"]["lasso"] <= out["mean_over_k"]["model"] <= out["mean_over_k"]["least_squares"])
    if r["kind"] == "tree":
        out["last_position"] = {n: float(mean[n][-1]) for n in ("model", "greedy_tree", "greedy_tree_unbounded", "boosted_trees")}
        out["beats_greedy_tree_at_last_position"] = bool(mean["model"][-1] < mean["greedy_tree"][-1])
    if r["kind"] == "relu":  # Garg et al.: the transformer at or below the network trained by GD
        out["last_position"] = {n: float(mean[n][-1]) for n in ("model", "relu_net_gd", "kernel_ridge", "least_squares", "knn")}
        out["at_or_below_the_gd_network_past_k_d"] = bool(np.all(mean["model"][k > d] <= mean["relu_net_gd"][k > d]))
    return out


def draw(path, results, configs) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, len(results), figsize=(5 * len(results), 8.2), squeeze=False)
    for top, bottom, r in zip(axes[0], axes[1], results, strict=True):
        k = np.arange(r["T"])
        colors = {}
        for i, (name, c) in enumerate(r["curves"].items()):
            style = dict(color="black", lw=2.2) if name == "model" else dict(color=f"C{i}", lw=1.2)
            colors[name] = style["color"]
            top.plot(k, c["mean"], label="transformer" if name == "model" else name, **style)
            top.fill_between(k, c["low"], c["high"], alpha=0.15, color=style["color"])
        top.axhline(1.0, color="gray", ls="--", lw=0.8)
        top.set(title=f"{r['kind']} (d = {r['d']})", xlabel="in-context examples k", ylabel="squared error / s",
                ylim=(0, 1.6))
        top.legend(fontsize=7)
        sens = r.get("sensitivity_cosine", {})
        for name, cos in sens.items():
            values = np.array([np.nan if c is None else c for c in cos], float)
            bottom.plot(k, values, color=colors.get(name), lw=1.2, label=name)
        low = min([0.0] + [c for cos in sens.values() for c in cos if c is not None])
        bottom.axhline(1.0, color="gray", ls="--", lw=0.8)
        bottom.set(xlabel="in-context examples k", ylabel="sensitivity cosine with the transformer",
                   ylim=(low - 0.05, 1.05))
        bottom.legend(fontsize=7)
    cfg = configs[0]
    common.save(fig, path, f"Garg et al. Fig. 2 setting: GPT-2 {cfg.model.n_layers} layers x {cfg.model.width}, "
                f"{cfg.train.steps} steps of batch {cfg.train.batch_size}, causal objective")


def main() -> None:
    published = "--published" in sys.argv
    if published:
        sys.argv.remove("--published")
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    configs = study.configs(mode, args.steps, args.batch_size, published=published)
    results = []
    for config in configs:
        print(f"{config.name}: {common.mode(args)}, {config.train.steps} steps of batch {config.train.batch_size}", flush=True)
        summary, params = common.run(config, args)
        r = evaluate(config, params, TEST_TASKS[mode])
        r["checks"] = checks(r)
        r["train_wall_s"] = summary.get("wall_s")
        results.append(r)
        print(f"  {r['kind']}: error at k = 0, T/2, T-1: "
              + "; ".join(f"{n} {c['mean'][0]:.3f} {c['mean'][r['T'] // 2]:.3f} {c['mean'][-1]:.3f}" for n, c in r["curves"].items()),
              flush=True)
        print("  sensitivity cosine at k = 1, T/2, T-1: "
              + "; ".join(f"{n} " + " ".join("n/a" if v is None else f"{v:.3f}" for v in (c[1], c[r["T"] // 2], c[-1]))
                        for n, c in r["sensitivity_cosine"].items()),
              flush=True)
        print(f"  checks: {r['checks']}", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs)
    numbers = {
        "curves": {r["kind"]: {n: c["mean"] for n, c in r["curves"].items()} for r in results},
        "bands": {r["kind"]: r["curves"] for r in results},
        "d": {r["kind"]: r["d"] for r in results},
        "prediction_cosine": {r["kind"]: r["prediction_cosine"] for r in results},
        "sensitivity_cosine": {r["kind"]: r["sensitivity_cosine"] for r in results},
        "checks": {r["kind"]: r["checks"] for r in results},
        "hparams": {r["kind"]: r["hparams"] for r in results},
        "test_tasks": TEST_TASKS[mode],
        "scale": "published" if published else "cpu",
    }
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
