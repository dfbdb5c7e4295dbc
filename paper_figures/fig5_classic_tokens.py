"""Figure 5 (von Oswald et al. 2023, Sec. 4 and Figs. 6-7): "classic" tokens. x_i and y_i sit in
tokens of their own; a first softmax layer can learn to copy y_i next to x_i, then a linear layer do GD.

experiments.fig5_classic_tokens (5 seeds): the held-out loss vs one GD step and least squares,
model_cos vs GD, and the first layer's token sensitivities ||d h1(x_i) / d y_j|| and copy score at
initialisation and after training (icl.analysis.token_copy).

    python paper_figures/fig5_classic_tokens.py            # full: 20,000 steps, batch 2048, 5 seeds
    python paper_figures/fig5_classic_tokens.py --steps 5000 --batch-size 256   # an intermediate run
    python paper_figures/fig5_classic_tokens.py --quick    # 2,000 steps of batch 256, 2 seeds (~2 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots
from icl.analysis import token_copy
from icl.experiments import fig5_classic_tokens as study

NAME = study.STUDY
PUBLISHED = {
    "source": "von Oswald et al. 2023, Sec. 4 and Figs. 6-7 (classic token construction): a 2-layer "
    "Transformer whose first layer is softmax self-attention learns to copy each y_i to its x_i "
    "(token sensitivities concentrate on the neighbouring label token) and then matches the "
    "performance of one GD step / the single LSA layer on constructed tokens (curves; we read no "
    "exact number off them)",
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
    config = study.config("quick" if args.quick else "full", args.steps, args.batch_size)
    common.announce(config, args)
    summary, params = common.run(config, args)
    numbers = token_copy.evaluate(config, params, summary)
    png, _ = common.figure_paths(args, NAME)
    draw(png, plots.read_log(args.out / "runs" / config.name), numbers, config)
    path = common.write_numbers(args, NAME, numbers, [config], PUBLISHED)
    print(f"  model {numbers['model_loss']['mean']:.4f}  GD {numbers['gd_loss']:.4f}  LS {numbers['least_squares_loss']:.4g}  "
          f"model_cos {numbers['model_cos']['mean']:.4f}  copy score {numbers['copy_score_init']['mean']:.3f} -> "
          f"{numbers['copy_score_trained']['mean']:.3f}")
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
