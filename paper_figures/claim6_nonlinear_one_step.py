"""Claim 6: with non-linear targets the trained one-layer LSA is still one GD step on least squares
(Mahankali, Hashimoto & Ma, ICLR 2024).

For each family of experiments.claim6_nonlinear_one_step (d = 5, N = 10, x ~ N(0, I): linear
control, two-layer ReLU nets, sign labels, depth-4 decision trees), 3 seeds of one LSA layer, and
(icl.analysis.nonlinear_one_step)
  * loss, model_cos, preds_diff of the layer against one GD step at the estimated optimal rate and
    at the closed-form one, N c* = N G / (F + (N - 1) G);
  * the same against learners a linear-in-x_q model cannot be: kernel ridge (tuned), 3-NN, least
    squares, logistic regression, a tree on sign(x); and the linear floor 1/2 (V - G);
  * the layer's Gamma (effective rate, distance to c* I) and the cost of its extra terms.

    python paper_figures/claim6_nonlinear_one_step.py            # full: 4 families x 3 seeds x 3,000 steps of batch 1024
    python paper_figures/claim6_nonlinear_one_step.py --quick    # 800 steps of batch 512, 2 seeds
"""

from __future__ import annotations

import numpy as np

import common
from icl import runs
from icl.analysis import nonlinear_one_step as analysis
from icl.experiments import claim6_nonlinear_one_step as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Mahankali, Hashimoto & Ma, 'One step of gradient descent is provably the optimal in-context "
    "learner with one layer of linear self-attention' (ICLR 2024, arXiv 2307.03576): for x ~ N(0, I) the global "
    "minimiser of the pre-training loss of a one-layer LSA implements one step of GD on the least-squares "
    "objective, also when the responses come from a family of non-linear functions; only the step size "
    "changes. No numbers to compare with (the claim is the optimum itself).",
    "closed_form_step": "derived here (icl/analysis/nonlinear_one_step.py): lr* = N G / (F + (N - 1) G) with "
    "G = E|E_x[f(x) x]|^2, F = E[y^2 |x|^2]; linear N / (N + d + 1) (Mahankali et al.'s isotropic step, claim 1's "
    "Gamma*), ReLU nets N / (N + 2 d + 3)",
    "criterion": f"held for a family if the trained layer's model_cos vs one GD step >= {analysis.COS_MIN} and its "
    f"loss is within {analysis.LOSS_TOL:.0%} of GD's at the optimal rate",
}
LEARNER_LABELS = {
    "least_squares": "least squares", "kernel_ridge_tuned": "kernel ridge (tuned)", "knn": "3-NN",
    "logistic_regression": "logistic regression", "greedy_tree(sign_inputs=true)": "depth-4 tree on sign(x)",
}


def training_curves(config, args) -> dict:
    """Seed-mean model_cos vs GD and loss / GD loss over training, from the run's log."""
    run = runs.load(args.out / "runs" / config.name, config)
    steps, cos = run.curve("model_cos")
    _, loss = run.curve("loss")
    _, ref = run.curve("ref_loss")
    return {"steps": steps, "model_cos": np.mean(cos, axis=1).tolist(),
            "loss_over_gd": (np.mean(loss, axis=1) / np.mean(ref, axis=1)).tolist()}


def report(name: str, r: dict) -> None:
    loss, step, vs = r["loss"], r["step"], r["vs_gd"]
    others = "  ".join(f"{LEARNER_LABELS.get(k, k)} {v['loss']:.4f} (cos {v['model_cos']['mean']:.3f})"
                       for k, v in r["learners"].items() if k in LEARNER_LABELS)
    print(f"  {name}: loss model {loss['model']['mean']:.4f} / GD {loss['gd']:.4f} = {loss['model_over_gd']['mean']:.4f} "
          f"(seeds {np.round(loss['model_over_gd']['values'], 4).tolist()}); model_cos {vs['model_cos']['mean']:.5f} "
          f"(min {vs['model_cos']['min']:.5f}), preds_diff {vs['preds_diff']['mean']:.4f} "
          f"({r['preds_diff_over_mean_abs_y']['mean']:.3f} of mean |y|); holds: {r['holds']}", flush=True)
    print(f"    lr: closed form {step['lr_closed_form']:.4f}, estimated {step['lr_estimated']:.4f} "
          f"({step['lr_estimated_vs_closed_form']:+.2%}), layer {np.round(step['lr_effective']['values'], 4).tolist()}; "
          f"||Gamma - c* I|| / ||c* I|| {r['layer']['distance_to_optimum']['mean']:.4f}, extra terms' loss share "
          f"{r['extra_terms']['loss_share']['mean']:.2e}", flush=True)
    print(f"    zero {loss['zero']:.4f}  theory one step {loss['theory_one_step']:.4f}  GD closed-form lr "
          f"{loss['gd_closed_form_lr']:.4f}  linear floor {loss['linear_floor']:.4f}  {others}", flush=True)


def draw(path, results, configs) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    names = list(results)
    x = np.arange(len(names))

    ax = axes[0, 0]  # losses relative to the zero predictor
    for i, name in enumerate(names):
        r = results[name]
        zero = r["loss"]["zero"]
        ax.scatter(np.full(len(r["loss"]["model"]["values"]), i - 0.2), np.asarray(r["loss"]["model"]["values"]) / zero,
                   color="C0", marker="o", s=30, label="trained LSA (seeds)" if i == 0 else None, zorder=3)
        ax.scatter([i - 0.1], [r["loss"]["gd"] / zero], color="k", marker="*", s=90, label="1 GD step, optimal lr" if i == 0 else None)
        ax.scatter([i - 0.1], [r["loss"]["theory_one_step"] / zero], color="k", marker="_", s=300,
                   label="1 GD step, closed-form expected loss" if i == 0 else None)
        ax.hlines(r["loss"]["linear_floor"] / zero, i - 0.35, i + 0.35, color="gray", ls="--",
                  label="linear floor 1/2 (V - G)" if i == 0 else None)
        for j, key in enumerate(LEARNER_LABELS):
            if key not in r["learners"]:
                continue
            ax.scatter([i + 0.05 + 0.06 * j], [r["learners"][key]["loss"] / zero], color=f"C{j + 2}", marker="D", s=25,
                       label=LEARNER_LABELS[key])  # repeated labels are merged below
    ax.set_xticks(x, names)
    ax.set(ylabel="held-out loss / zero predictor's", ylim=(0, 1.4), title="losses (zero predictor = 1)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7)

    ax = axes[0, 1]  # how alike the layer is to each learner
    keys = ["gd", "gd_closed_form_lr", *LEARNER_LABELS]
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        vals = [results[n]["learners"][key]["model_cos"]["mean"] if key in results[n]["learners"] else np.nan for n in names]
        label = {"gd": "1 GD step (estimated lr)", "gd_closed_form_lr": "1 GD step (closed-form lr)"}.get(key, LEARNER_LABELS.get(key))
        ax.bar(x + (j - len(keys) / 2 + 0.5) * width, vals, width, color=f"C{j}", label=label)
    ax.axhline(analysis.COS_MIN, color="gray", ls=":", lw=0.8)
    ax.set_xticks(x, names)
    ax.set(ylabel="model_cos (trained LSA vs learner)", ylim=(0, 1.3),
           title="model_cos of the trained layer against each learner\n(3-NN and the tree are piecewise constant in x_q: 0)")
    ax.legend(fontsize=7, ncol=4, loc="upper center")

    ax = axes[1, 0]  # the step size
    for i, name in enumerate(names):
        step = results[name]["step"]
        ax.scatter([i - 0.1], [step["lr_closed_form"]], color="k", marker="*", s=90, label="closed form N c*" if i == 0 else None)
        ax.scatter([i], [step["lr_estimated"]], color="C3", marker="x", s=50, label="estimated on 65,536 tasks" if i == 0 else None)
        vals = step["lr_effective"]["values"]
        ax.scatter(np.full(len(vals), i + 0.1), vals, color="C0", s=25, label="trained layer N tr(Gamma) / d (seeds)" if i == 0 else None)
    ax.set_xticks(x, names)
    ax.set(ylabel="one-step GD rate lr", ylim=(0, None), title="optimal step: closed form, estimated, trained layer")
    ax.legend(fontsize=7)

    ax = axes[1, 1]  # training curves
    for i, name in enumerate(names):
        c = results[name]["curves"]
        ax.plot(c["steps"], 1 - np.asarray(c["model_cos"]), color=f"C{i}", label=f"{name}: 1 - model_cos vs GD")
        ax.plot(c["steps"], np.abs(np.asarray(c["loss_over_gd"]) - 1), color=f"C{i}", ls="--", lw=0.8,
                label=f"{name}: |loss / GD - 1|")
    ax.set(xlabel="training step", yscale="log",
           title=f"over training (seed means, {configs[names[0]].train.eval_tasks:,} held-out tasks)")
    ax.legend(fontsize=7, ncol=2)
    cfg = configs[names[0]].train
    common.save(fig, path, f"One LSA layer on non-linear targets vs one GD step (d = {study.D}, N = {study.N_CTX}, "
                f"x ~ N(0, I)): {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    configs = study.configs(mode, args.steps, args.batch_size)
    results = {}
    for name, config in configs.items():
        common.announce(config, args)
        summary, params = common.run(config, args)
        r = analysis.summarise(config, summary, params, study.MC_TASKS[mode], study.TUNE_TASKS[mode])
        r["curves"] = training_curves(config, args)
        results[name] = r
        report(name, r)
    verdict = analysis.verdict({n: results[n]["holds"] for n in study.NONLINEAR})
    print(f"verdict over the non-linear families {list(study.NONLINEAR)}: {verdict} "
          f"(linear control holds: {results['linear']['holds']})")
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs)
    path = common.write_numbers(args, NAME, {"families": results}, list(configs.values()), PUBLISHED, verdict=verdict)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
