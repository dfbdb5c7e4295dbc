"""Figure 6: noisy contexts / distractors. One trained LSA layer vs GD vs ridge when some context
labels are pure noise.

The runs (one LSA layer per number of distractor labels n_distract = 0, 2, 4 of N = 10):
icl/experiments/fig6_distractors.py. Compared on held-out tasks with one GD step at the optimal eta
(and the model's alignment with it), least squares, ridge at the lam best on validation tasks
(icl/analysis/tuning.py) and an oracle: least squares on the clean labels (icl/analysis/distractors.py).

    python paper_figures/fig6_distractors.py            # full: 5,000 steps, 5 seeds, 3 settings (~65 min, 2-core CPU)
    python paper_figures/fig6_distractors.py --quick    # 1,000 steps of batch 512, 2 seeds (~2 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots, solvers, train
from icl.analysis import distractors, tuning
from icl.experiments import fig6_distractors as study

NAME = "fig6_distractors"
PUBLISHED = {
    "source": "von Oswald et al. 2023 and its official code (src/data.py `size_distract`): the code "
    "implements distractor labels, but we found no number for this setting in the paper that we "
    "could verify, so there is no published value to compare with",
    "claim_tested": "a trained LSA layer still behaves like one GD step (model_cos ~ 1) when some "
    "context labels are noise, and is then worse than a regularised (ridge) or noise-aware learner",
}


def evaluate(config, summary: dict) -> dict:
    n = config.train.final_eval_tasks
    test_key = train.heldout_key(config, train.HeldOut.FINAL)  # the tasks of the summary's final table
    val, test = (config.task.sample(train.heldout_key(config, train.HeldOut.TUNE), n), config.task.sample(test_key, n))
    ridge = tuning.tune_solver(solvers.ridge, study.ridge_grid(), val, test)
    gd = summary["solvers"]["gd"]
    return {
        "n_distract": config.task.n_distract, "n_tasks": n, "zero_loss": summary["zero_loss"],
        "model_loss": common.stats(summary["model"]["loss"]), "gd_loss": gd["loss"], "gd_eta": gd["hparams"]["lr"],
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "least_squares_loss": summary["solvers"]["least_squares"]["loss"],
        "ridge_best": {"lam": ridge["hparams"]["lam"], "loss": ridge["loss"], "grid": study.LAMS.tolist(),
                       "validation_losses": ridge["validation_losses"]},
        "oracle_clean_least_squares_loss": distractors.oracle_least_squares(config.task, test_key, n),
        "train_wall_s": summary["wall_s"], "train_steps_per_s": summary["train_steps_per_s"],
    }


def draw(path, results, logs, configs):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ks = [r["n_distract"] for r in results]
    ax = axes[0]
    model = np.array([r["model_loss"]["values"] for r in results])  # [K, S]
    common.band(ax, ks, model, "trained LSA (1 layer)", marker="o")
    ax.plot(ks, [r["gd_loss"] for r in results], "k--", marker="s", label="1 step GD, optimal eta")
    ax.plot(ks, [r["ridge_best"]["loss"] for r in results], marker="^", label="ridge, lam tuned on validation tasks")
    ls = [r["least_squares_loss"] for r in results]
    top = 1.3 * max(r["zero_loss"] for r in results)
    off = [f"{v:.3g}" for v in ls if v > top]
    ax.plot(ks, ls, marker="v", label="least squares" + (f" (off scale: {', '.join(off)})" if off else ""))
    ax.plot(ks, [r["oracle_clean_least_squares_loss"] for r in results], ":", marker="x",
            label="oracle: least squares on clean labels")
    ax.plot(ks, [r["zero_loss"] for r in results], color="gray", lw=0.8, label="zero predictor")
    ax.set(xlabel="corrupted context labels (of N = 10)", ylabel="held-out loss", ylim=(0, top),
           title="loss vs number of distractors")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (k, log) in enumerate(zip(ks, logs, strict=True)):
        steps = np.array([r["step"] for r in log])
        common.band(ax, steps, [r["loss"] for r in log], f"LSA, {k} distractors", color=f"C{i}")
        ax.axhline(log[-1]["ref_loss"][0], color=f"C{i}", ls="--", lw=0.8)
    ax.set(xlabel="training step", ylabel="held-out loss", title="training (dashed: GD at optimal eta)", ylim=(0, 0.6))
    ax.legend(fontsize=7)
    ax = axes[2]
    common.band(ax, ks, np.array([r["model_cos"]["values"] for r in results]), "model_cos (LSA vs GD)", marker="o", color="C2")
    ax.set(xlabel="corrupted context labels (of N = 10)", ylabel="cosine of d y_hat / d x_q",
           title="trained LSA vs one GD step", ylim=(min(0.9, float(np.min([r["model_cos"]["min"] for r in results])) - 0.02), 1.01))
    ax.legend(fontsize=8, loc="lower left")
    cfg = configs[0].train
    common.save(fig, path, f"Distractor labels: {cfg.n_seeds} seeds (mean, min-max band), {cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    results, logs = [], []
    for config in configs:
        common.announce(config, args)
        summary, _ = common.run(config, args)
        results.append(evaluate(config, summary))
        logs.append(plots.read_log(args.out / "runs" / config.name))
        r = results[-1]
        print(f"  model {r['model_loss']['mean']:.4f}  GD {r['gd_loss']:.4f}  ridge {r['ridge_best']['loss']:.4f} "
              f"(lam {r['ridge_best']['lam']:.3g})  LS {r['least_squares_loss']:.4f}  "
              f"oracle {r['oracle_clean_least_squares_loss']:.4f}  model_cos {r['model_cos']['mean']:.4f}", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, logs, configs)
    path = common.write_numbers(args, NAME, {"by_n_distract": results}, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
