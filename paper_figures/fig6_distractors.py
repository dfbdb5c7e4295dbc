"""Figure 6: noisy contexts / distractors. One trained LSA layer vs GD vs ridge when some context
labels are pure noise.

Task family `linear_distractors` (icl/tasks/linear_distractors.py; the official code's
`size_distract`): the paper's linear setup (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I)) with
`n_distract` of the N context labels replaced by N(0, 1) noise, independent of x. For each
n_distract in DISTRACT a one-layer LSA (experiments.paper_1layer's model and optimiser) is trained
through icl.train for 5 seeds, then compared on held-out tasks with
  * one GD step at the optimal eta for that task distribution (closed form, solvers.optimal_gd_lr),
    and the model's alignment with it (model_cos, preds_diff);
  * least squares (solvers.least_squares), which interpolates the distractors;
  * ridge (solvers.ridge) at the lam minimising the loss on separate validation tasks (log grid);
  * an oracle that knows which labels are noise: least squares on the clean labels only.

    python paper_figures/fig6_distractors.py            # full: 5,000 steps, 5 seeds, 3 settings
                                                        # (~65 min on the shared 2-core CPU)
    python paper_figures/fig6_distractors.py --quick    # 1,000 steps of batch 512, 2 seeds (~2 min)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import common
import experiments
from icl import compare, plots, solvers, tasks, train
from icl.config import ExperimentConfig, TrainConfig

NAME = "fig6_distractors"
DISTRACT = (0, 2, 4)  # corrupted context labels out of N = 10
LAMS = np.concatenate([[0.0], np.logspace(-3, 2, 16)])  # ridge grid (lam on the unnormalised X^T X; 0 = least squares)
PUBLISHED = {
    "source": "von Oswald et al. 2023 and its official code (src/data.py `size_distract`): the code "
    "implements distractor labels, but we found no number for this setting in the paper that we "
    "could verify, so there is no published value to compare with",
    "claim_tested": "a trained LSA layer still behaves like one GD step (model_cos ~ 1) when some "
    "context labels are noise, and is then worse than a regularised (ridge) or noise-aware learner",
}


def make_config(n_distract: int, quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    base = experiments.get("paper_1layer")
    task = tasks.get("linear_distractors", d=10, n_ctx=10, input_dist="uniform", input_range=0.5,
                     n_distract=n_distract, distractor_std=1.0)
    if quick:
        cfg = TrainConfig(steps=1000, batch_size=512, n_seeds=2, eval_every=100, ckpt_every=1000,
                          eval_tasks=1024, final_eval_tasks=4000)
    else:
        cfg = dataclasses.replace(base.train, steps=steps or base.train.steps, batch_size=batch_size or base.train.batch_size, n_seeds=5)
    return dataclasses.replace(base, name=f"{NAME}_k{n_distract}", task=task, train=cfg,
                               compare_against=("gd", "least_squares"))


def oracle_least_squares(task, key, n_tasks: int) -> float:
    """Least squares on the uncorrupted context examples only (the mask is known)."""
    batch, mask = task.sample(key, n_tasks), task.corrupted(key, n_tasks)
    keep = (~mask).astype(batch.x_ctx.dtype)  # [B, N]; a zeroed row adds nothing to least squares
    w = solvers.ridge_weights(batch.x_ctx * keep[..., None], batch.y_ctx * keep, 0.0)
    y_hat = jnp.einsum("bmd,bd->bm", batch.x_query, w)
    return float(compare.loss(y_hat, batch.y_query))


def best_ridge(task, val_key, test_key, n_tasks: int) -> dict:
    """Ridge at the lam of LAMS with the lowest loss on validation tasks, then on the test tasks."""
    val = task.sample(val_key, n_tasks)
    val_losses = [float(compare.loss(solvers.ridge(val.x_ctx, val.y_ctx, val.x_query, lam=float(lam)), val.y_query))
                  for lam in LAMS]
    lam = float(LAMS[int(np.argmin(val_losses))])
    test = task.sample(test_key, n_tasks)
    loss = float(compare.loss(solvers.ridge(test.x_ctx, test.y_ctx, test.x_query, lam=lam), test.y_query))
    return {"lam": lam, "loss": loss, "grid": LAMS.tolist(), "validation_losses": val_losses}


def evaluate(config: ExperimentConfig, summary: dict) -> dict:
    n = config.train.final_eval_tasks
    test_key = train.heldout_key(config, 1)  # the tasks of the summary's final table
    val_key = jax.random.fold_in(jax.random.key(config.train.eval_seed), 4)  # a path train does not use
    gd = summary["solvers"]["gd"]
    return {
        "n_distract": config.task.n_distract,
        "n_tasks": n,
        "zero_loss": summary["zero_loss"],
        "model_loss": common.stats(summary["model"]["loss"]),
        "gd_loss": gd["loss"],
        "gd_eta": gd["hparams"]["lr"],
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "least_squares_loss": summary["solvers"]["least_squares"]["loss"],
        "ridge_best": best_ridge(config.task, val_key, test_key, n),
        "oracle_clean_least_squares_loss": oracle_least_squares(config.task, test_key, n),
        "train_wall_s": summary["wall_s"],
        "train_steps_per_s": summary["train_steps_per_s"],
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
    for i, (k, log) in enumerate(zip(ks, logs)):
        steps = np.array([r["step"] for r in log])
        common.band(ax, steps, [r["loss"] for r in log], f"LSA, {k} distractors", color=f"C{i}")
        ax.axhline(log[-1]["gd_loss"][0], color=f"C{i}", ls="--", lw=0.8)
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
    configs = [make_config(k, args.quick, args.steps, args.batch_size) for k in DISTRACT]
    results, logs = [], []
    for config in configs:
        print(f"{config.name}: {common.mode(args)}, {config.train.n_seeds} seeds, {config.train.steps} steps", flush=True)
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
