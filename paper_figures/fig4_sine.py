"""Figure 4 (von Oswald et al. 2023, Sec. 4 and Fig. 5): non-linear (sine) regression with a learned
input embedding. Does a transformer trained end to end do GD on the features it learns?

The two runs (a trained TF, and GD on learned features: attention frozen to one GD step):
icl/experiments/fig4_sine.py. Compared on held-out tasks (icl/analysis/features.py): model_cos /
preds_diff between the two; GD on the trained TF's own features at the closed-form optimal rate;
least squares on each model's features; RBF kernel ridge on x (bandwidth and lam tuned on validation
tasks, icl/analysis/tuning.py).

    python paper_figures/fig4_sine.py                 # full: 20,000 steps (official notebook), 5 seeds
    python paper_figures/fig4_sine.py --quick         # 600 steps of batch 128, 2 seeds (~1 min)
"""

from __future__ import annotations

import functools

import numpy as np

import common
from icl import plots, solvers, train
from icl.analysis import features, tuning
from icl.experiments import fig4_sine as study

NAME = "fig4_sine"
PUBLISHED = {
    "source": "von Oswald et al. 2023, Sec. 4 and Fig. 5 (sine regression with an embedding MLP): "
    "the end-to-end trained Transformer and one GD step on meta-learned MLP features reach "
    "matching losses over training and agree closely (the paper shows curves; we read no exact "
    "number off them)",
    "trained_vs_gd_features": "loss curves overlap; high model alignment (paper Fig. 5)",
}


def evaluate(configs, params, summaries) -> tuple[dict, dict]:
    """The numbers (stats over seeds) and one example task's curves."""
    tf_cfg, gd_cfg = configs
    n = tf_cfg.train.final_eval_tasks
    test = tf_cfg.task.sample(train.heldout_key(tf_cfg, train.HeldOut.FINAL), n)  # the summaries' final-table tasks
    val = tf_cfg.task.sample(train.heldout_key(tf_cfg, train.HeldOut.TUNE), n)  # unused by train
    tf_models, gd_models = train.seed_models(tf_cfg, params[0]), train.seed_models(gd_cfg, params[1])
    per_seed = features.compare_feature_learners(tf_models, gd_models, val, test)
    kr = tuning.tune_solver(solvers.kernel_ridge, study.kernel_grid(), val, test)
    tf_solvers = summaries[0]["solvers"]
    numbers = {
        "n_tasks": n, "zero_loss": summaries[0]["zero_loss"],
        "trained_tf_loss": common.stats(summaries[0]["model"]["loss"]),
        "gd_on_learned_features_loss": common.stats(summaries[1]["model"]["loss"]),
        **{k: common.stats(v) for k, v in per_seed.items()},
        "kernel_ridge_default": tf_solvers["kernel_ridge"]["loss"], "kernel_ridge_default_hparams": tf_solvers["kernel_ridge"]["hparams"],
        "kernel_ridge_tuned": {**kr["hparams"], "loss": kr["loss"]},
        "linear_gd_on_raw_x_loss": tf_solvers["gd"]["loss"],
        "train_wall_s": [s["wall_s"] for s in summaries], "train_steps_per_s": [s["train_steps_per_s"] for s in summaries],
    }
    predictors = {"trained_tf": tf_models[0].predict, "gd_features": gd_models[0].predict,
                  "kernel_ridge": functools.partial(solvers.kernel_ridge, **kr["hparams"])}
    return numbers, features.sine_example(tf_cfg.task, train.heldout_key(tf_cfg, train.HeldOut.EXTRA), predictors)


def draw(path, logs, numbers, example, configs):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    ax = axes[0]
    for log, label, color in zip(logs, ("trained TF (end to end)", "GD on learned features (frozen GD attention)"), ("C0", "C1"),
                                 strict=True):
        steps = np.array([r["step"] for r in log])
        common.band(ax, steps, [r["loss"] for r in log], label, color=color)
    ax.axhline(numbers["kernel_ridge_tuned"]["loss"], color="C2", ls="--", label="RBF kernel ridge (tuned)")
    ax.axhline(numbers["linear_gd_on_raw_x_loss"], color="gray", ls=":", label="linear GD on raw x")
    ax.set(xlabel="training step", ylabel="held-out loss", yscale="log", title="loss over training")
    ax.legend(fontsize=7)
    ax = axes[1]
    labels = ["trained TF", "GD on learned\nfeatures", "GD on TF's\nown features", "lstsq on TF\nfeatures",
              "lstsq on GD\nfeatures", "kernel ridge"]
    keys = ["trained_tf_loss", "gd_on_learned_features_loss", "tf_own_features_gd_loss", "tf_features_lstsq_loss",
            "gd_features_lstsq_loss"]
    for i, key in enumerate(keys):
        vals = np.asarray(numbers[key]["values"])
        ax.bar(i, vals.mean(), color=f"C{i}", alpha=0.7)
        ax.plot(np.full(vals.shape, i), vals, "k.", ms=4)
    ax.bar(len(keys), numbers["kernel_ridge_tuned"]["loss"], color="C5", alpha=0.7)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(ylabel="held-out loss (dots: seeds)", yscale="log", title="final loss")
    ax = axes[2]
    ax.plot(example["x"], example["truth"], "k-", lw=1, label="true function")
    ax.plot(example["x"], example["trained_tf"], label="trained TF")
    ax.plot(example["x"], example["gd_features"], label="GD on learned features")
    ax.plot(example["x"], example["kernel_ridge"], ls="--", label="kernel ridge")
    ax.plot(example["x_ctx"], example["y_ctx"], "ko", ms=4, label="context")
    ax.set(xlabel="x", ylabel="y", title="one held-out task (seed 0)")
    ax.legend(fontsize=7)
    cfg = configs[0].train
    common.save(fig, path, f"Sine regression with a learned embedding (paper Sec. 4 / Fig. 5): {cfg.n_seeds} seeds "
                 f"(mean, min-max band), {cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    summaries, params, logs = [], [], []
    for config in configs:
        common.announce(config, args)
        summary, p = common.run(config, args)
        summaries.append(summary)
        params.append(p)
        logs.append(plots.read_log(args.out / "runs" / config.name))
        print(f"  loss {np.mean(summary['model']['loss']):.5f}  ({summary['wall_s']:.0f} s)", flush=True)
    numbers, example = evaluate(configs, params, summaries)
    png, _ = common.figure_paths(args, NAME)
    draw(png, logs, numbers, example, configs)
    path = common.write_numbers(args, NAME, {**numbers, "example_task": example}, configs, PUBLISHED)
    for key in ("trained_tf_loss", "gd_on_learned_features_loss", "tf_own_features_gd_loss", "tf_vs_gdfeat_cos",
                "tf_vs_own_features_gd_cos", "tf_features_lstsq_loss"):
        print(f"  {key}: {numbers[key]['mean']:.5f}")
    print(f"  kernel ridge (tuned): {numbers['kernel_ridge_tuned']}")
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
