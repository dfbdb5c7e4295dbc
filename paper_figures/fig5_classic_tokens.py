"""Figure 5 (von Oswald et al. 2023, Sec. 4 and Figs. 6-7): "classic" tokens. x_i and y_i sit in
tokens of their own; a first softmax self-attention layer can learn to copy y_i next to x_i
(an induction-head-like step), after which a second, linear layer can do GD.

Task: the paper's linear setup (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I), no noise).
Model: ModelConfig(token_layout="separate", first_layer_softmax=True, n_layers=2): tokens
x_1, y_1, ..., x_N, y_N, then the query, each with a fixed positional code (one-hot pair index,
type flags; see icl/models/lsa.py); keys and values come from the 2N context tokens only, so no
query sees its own label or another query. Trained through icl.train, 5 seeds. Measured:
  * held-out loss vs one GD step at the optimal eta and least squares; model_cos vs GD;
  * token sensitivities of the first layer: S_ij = mean over tasks of || d h1(x_i) / d y_j ||,
    the gradient of the first layer's output at token x_i with respect to label token y_j. A layer
    that copies y_i next to x_i has S concentrated on the diagonal; `copy_score` = mean_i
    S_ii / sum_j S_ij (1 = a perfect copy, 1/N = no preference), at initialisation and after
    training.

    python paper_figures/fig5_classic_tokens.py            # full: 20,000 steps, batch 2048, 5 seeds
    python paper_figures/fig5_classic_tokens.py --steps 5000 --batch-size 256   # the committed
                                                           # intermediate record (~13 min, shared CPU)
    python paper_figures/fig5_classic_tokens.py --quick    # 2,000 steps of batch 256, 2 seeds (~2 min)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import common
import experiments
from icl import plots, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig

NAME = "fig5_classic_tokens"
FULL_STEPS = 20000
MODEL = ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=10, init_scale=0.2)
OPTIM = OptimConfig(name="adam", lr=1e-3, b1=0.9, b2=0.98, grad_clip=1.0)
PUBLISHED = {
    "source": "von Oswald et al. 2023, Sec. 4 and Figs. 6-7 (classic token construction): a 2-layer "
    "Transformer whose first layer is softmax self-attention learns to copy each y_i to its x_i "
    "(token sensitivities concentrate on the neighbouring label token) and then matches the "
    "performance of one GD step / the single LSA layer on constructed tokens (curves; we read no "
    "exact number off them)",
}


def make_config(quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    base = experiments.get("paper_1layer")
    if quick:
        cfg = TrainConfig(steps=2000, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=1500,
                          eval_tasks=1024, final_eval_tasks=4000)
    else:
        cfg = TrainConfig(steps=steps or FULL_STEPS, batch_size=batch_size or 2048, n_seeds=5, eval_every=100, ckpt_every=1000,
                          eval_tasks=2048, final_eval_tasks=10000)
    return dataclasses.replace(base, name=NAME, model=MODEL, optim=OPTIM, train=cfg, compare_against=("gd", "least_squares"))


def token_sensitivities(model, batch) -> np.ndarray:
    """S [N, N]: mean over tasks of || d h1(x_i) / d y_j || (h1 = the first layer's output token)."""
    n = batch.n_ctx

    def first_layer_x_tokens(y_ctx, x_ctx, x_query):  # one task: y_ctx [N] -> [N, D]
        tokens = model.tokens(x_ctx[None], y_ctx[None], x_query[None])
        return model.layers[0](tokens, 2 * n)[0, 0 : 2 * n : 2]

    jac = jax.vmap(jax.jacfwd(first_layer_x_tokens))(batch.y_ctx, batch.x_ctx, batch.x_query)  # [B, N, D, N]
    return np.asarray(jnp.linalg.norm(jac, axis=2).mean(0))


def copy_score(s: np.ndarray) -> float:
    return float(np.mean(np.diag(s) / s.sum(1)))


def evaluate(config, params, summary) -> dict:
    batch = config.task.sample(train.heldout_key(config, 1), 2000)
    init = jax.tree.map(lambda *xs: jnp.stack(xs), *[train.init_params(config, s) for s in train.seeds_of(config)])
    sens = {"trained": [], "init": []}
    for kind, tree in (("trained", params), ("init", init)):
        for model in train.seed_models(config, tree):
            sens[kind].append(token_sensitivities(model, batch))
    gd = summary["solvers"]["gd"]
    return {
        "n_tasks": summary["n_tasks"],
        "zero_loss": summary["zero_loss"],
        "model_loss": common.stats(summary["model"]["loss"]),
        "gd_loss": gd["loss"],
        "gd_eta": gd["hparams"]["lr"],
        "least_squares_loss": summary["solvers"]["least_squares"]["loss"],
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "copy_score_trained": common.stats([copy_score(s) for s in sens["trained"]]),
        "copy_score_init": common.stats([copy_score(s) for s in sens["init"]]),
        "sensitivity_trained_mean": np.mean(sens["trained"], 0).tolist(),
        "sensitivity_init_mean": np.mean(sens["init"], 0).tolist(),
        "sensitivity_tasks": int(batch.batch_size),
        "train_wall_s": summary["wall_s"],
        "train_steps_per_s": summary["train_steps_per_s"],
    }


def draw(path, log, numbers, config):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    steps = np.array([r["step"] for r in log])
    ax = axes[0]
    common.band(ax, steps, [r["loss"] for r in log], "2-layer TF, classic tokens (softmax, then linear)")
    ax.axhline(numbers["gd_loss"], color="k", ls="--", label="1 step GD, optimal eta")
    ax.axhline(numbers["zero_loss"], color="gray", lw=0.8, label="zero predictor")
    ax.set(xlabel="training step", ylabel="held-out loss", title="loss over training", ylim=(0, 0.5))
    ax.legend(fontsize=7)
    common.band(axes[1], steps, [r["model_cos"] for r in log], "model_cos vs GD", color="C2")
    axes[1].set(xlabel="training step", ylabel="cosine of d y_hat / d x_q", title="alignment with one GD step", ylim=(-0.05, 1.05))
    axes[1].legend(fontsize=7, loc="lower right")
    for ax, key, title in ((axes[2], "sensitivity_init_mean", "at initialisation"),
                           (axes[3], "sensitivity_trained_mean", "after training")):
        s = np.asarray(numbers[key])
        image = ax.imshow(s / s.sum(1, keepdims=True), cmap="viridis", vmin=0)
        ax.set(xlabel="label token y_j", ylabel="input token x_i",
               title=f"layer-1 token sensitivity {title}\n||d h1(x_i)/d y_j||, row-normalised")
        fig.colorbar(image, ax=ax, fraction=0.046)
    cfg = config.train
    common.save(fig, path, f"Classic tokens (paper Figs. 6-7): {cfg.n_seeds} seeds (mean, min-max band), {cfg.steps} steps "
                 f"of batch {cfg.batch_size}; copy score {numbers['copy_score_init']['mean']:.2f} -> "
                 f"{numbers['copy_score_trained']['mean']:.2f} (1 = perfect copy, {1 / config.task.n_ctx:.1f} = none)")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    config = make_config(args.quick, args.steps, args.batch_size)
    print(f"{config.name}: {common.mode(args)}, {config.train.n_seeds} seeds, {config.train.steps} steps", flush=True)
    summary, params = common.run(config, args)
    numbers = evaluate(config, params, summary)
    log = plots.read_log(args.out / "runs" / config.name)
    png, _ = common.figure_paths(args, NAME)
    draw(png, log, numbers, config)
    path = common.write_numbers(args, NAME, numbers, [config], PUBLISHED)
    print(f"  model {numbers['model_loss']['mean']:.4f}  GD {numbers['gd_loss']:.4f}  LS {numbers['least_squares_loss']:.4g}  "
          f"model_cos {numbers['model_cos']['mean']:.4f}  copy score {numbers['copy_score_init']['mean']:.3f} -> "
          f"{numbers['copy_score_trained']['mean']:.3f}")
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
