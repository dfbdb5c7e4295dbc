"""Figure 1 (von Oswald et al. 2023, Fig. 2): one trained LSA layer vs one step of gradient descent.

Over training (5 seeds of experiments.fig1_one_layer, trained in pieces; the pieces' results are
kept in <run>/fig1_pieces.json): the held-out loss of the model, of one GD step at the optimal eta
and of the model interpolated halfway to the GD construction; model_cos / model_diff / preds_diff
vs GD; then the loss under test inputs scaled by alpha in [0.5, 2] (icl.analysis.interpolation).

    python paper_figures/fig1_one_layer.py            # full: 5,000 steps, 5 seeds (~30 min, 2-core CPU)
    python paper_figures/fig1_one_layer.py --quick    # 1,000 steps of batch 512, 2 seeds (~1 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots, runs, solvers, train
from icl.analysis import interpolation, plateau
from icl.experiments import fig1_one_layer as study

NAME = study.STUDY
PUBLISHED = {
    "source": "docs/math.md reference numbers: the official code on a 2-core CPU, 5,000 steps, 1 seed, "
    "10,000 held-out tasks (the setup of the paper's Fig. 2)",
    "zero_loss": 0.416,
    "gd_loss": "0.2062-0.2074 (eta 6.06 closed form; 5.90 grid scan)",
    "trained_loss": 0.2079,
    "model_cos": 0.9993,
    "model_diff": 0.097,
    "preds_diff": 0.0225,
    "plateau": "~0.393 until step ~1,500, then drops to GD by ~1,900",
    "interpolated": "paper Fig. 2: the interpolated model reaches the same loss as the trained model and GD",
    "ood": "paper Fig. 2 (right): trained model and GD have the same loss for input scales alpha in [0.5, 2]",
}


def draw(path, log, pieces, ood, config):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    steps = np.array([r["step"] for r in log])
    ax = axes[0]
    common.band(ax, steps, [r["loss"] for r in log], "trained LSA")
    ax.plot(steps, [r["ref_loss"][0] for r in log], "k--", label="1 step GD, optimal eta")
    mid = np.asarray(pieces["interp_loss"])  # [pieces, S]
    ax.errorbar(pieces["steps"], mid.mean(1), yerr=[mid.mean(1) - mid.min(1), mid.max(1) - mid.mean(1)],
                fmt="o", ms=4, color="C1", label="interpolated (trained + GD construction)/2")
    ax.set(xlabel="training step", ylabel="held-out loss", title="loss over training", ylim=(0, 0.5))
    ax.legend(fontsize=8)
    common.band(axes[1], steps, [r["model_cos"] for r in log], "model_cos (trained vs GD)", color="C2")
    axes[1].set(xlabel="training step", ylabel="cosine of d y_hat / d x_q", title="sensitivity alignment", ylim=(-0.05, 1.05))
    axes[1].legend(fontsize=8, loc="lower right")
    common.band(axes[2], steps, [r["model_diff"] for r in log], "model_diff", color="C3")
    common.band(axes[2], steps, [r["preds_diff"] for r in log], "preds_diff", color="C4")
    axes[2].set(xlabel="training step", yscale="log", title="difference to GD")
    axes[2].legend(fontsize=8)
    ax = axes[3]
    common.band(ax, ood["alphas"], np.asarray(ood["model"]["values"]), "trained LSA")
    common.band(ax, ood["alphas"], np.asarray(ood["interpolated"]["values"]), "interpolated", ls=":", marker="o", ms=3)
    ax.plot(ood["alphas"], ood["gd"], "k--", label="1 step GD, eta fitted at alpha = 1")
    ax.axvline(1.0, color="gray", lw=0.5)
    ax.set(xlabel="input scale alpha (x -> alpha x at test time)", ylabel="loss", yscale="log", title="out of distribution")
    ax.legend(fontsize=8)
    cfg = config.train
    common.save(fig, path, f"One LSA layer vs one GD step (paper Fig. 2): {cfg.n_seeds} seeds (mean, min-max band), "
                 f"{cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    config = study.config("quick" if args.quick else "full", args.steps, args.batch_size)
    trainer = train.Trainer(config)
    eta = solvers.optimal_gd_lr(config.task, train.heldout_key(config, train.HeldOut.GD_LR))
    batch = config.task.sample(train.heldout_key(config, train.HeldOut.FINAL), config.train.final_eval_tasks)
    print(f"{NAME}: {common.mode(args)}, {config.train.n_seeds} seeds, {config.train.steps} steps, eta {eta:.3f}", flush=True)

    def measure(step: int, params) -> dict:
        m = interpolation.piece_metrics(trainer, params, batch, eta)
        print(f"  step {step}: model {np.mean(m['model_loss']):.4f}  interpolated {np.mean(m['interp_loss']):.4f}  "
              f"GD {m['gd_loss']:.4f}", flush=True)
        return m

    measured = common.train_in_pieces(config, args, study.piece_steps(config), measure, "fig1_pieces.json",
                                      init=lambda: runs.initial_params(config))
    pieces = interpolation.piece_table(measured)
    summary, params = common.run(config, args)
    ood = interpolation.ood_sweep(config, params, eta, study.ALPHAS, config.train.final_eval_tasks)
    log = plots.read_log(args.out / "runs" / config.name)
    png, _ = common.figure_paths(args, NAME)
    draw(png, log, pieces, ood, config)

    gd = summary["solvers"]["gd"]
    final = {
        "n_tasks": summary["n_tasks"], "eta": eta, "zero_loss": summary["zero_loss"],
        "trained_loss": common.stats(summary["model"]["loss"]), "gd_loss": gd["loss"],
        "least_squares_loss": summary["solvers"].get("least_squares", {}).get("loss"),
        "interpolated_loss": common.stats(pieces["interp_loss"][-1]),
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "train_steps_per_s": summary["train_steps_per_s"],
    }
    numbers = {
        "final": final,
        "first_step_within_5pct_of_gd": plateau.first_step_near_gd(log),
        "over_training": {
            "steps": [r["step"] for r in log],
            **{k: common.stats([r[k] for r in log]) for k in ("loss", "model_cos", "model_diff", "preds_diff")},
            "gd_loss": [r["ref_loss"][0] for r in log],
            "n_tasks": config.train.eval_tasks,
        },
        "pieces": {**pieces, "n_tasks": config.train.final_eval_tasks},
        "ood": ood,
        "seeds": summary["seeds"],
        "steps": config.train.steps,
    }
    path = common.write_numbers(args, NAME, numbers, [config], PUBLISHED)
    print(f"trained {np.mean(final['trained_loss']['values']):.4f}  GD {gd['loss']:.4f}  interpolated "
          f"{np.mean(final['interpolated_loss']['values']):.4f}  model_cos {np.mean(gd['model_cos']):.4f}  "
          f"preds_diff {np.mean(gd['preds_diff']):.4f}\nwrote {png} and {path}")


if __name__ == "__main__":
    main()
