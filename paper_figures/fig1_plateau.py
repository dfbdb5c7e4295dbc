"""Figure 1, the loss plateau: how long does one LSA layer sit near the zero predictor's loss?

The official code's single run sits at ~0.393 until step ~1,500; figure 1's five seeds all reach GD by
step 400. Figure 1's exact configuration for many seeds (experiments.fig1_plateau, batch 2048 and
512), per seed the escape step (first evaluation below loss 0.3), the first step within 5 % of GD,
and the value-path parts of the final layer (icl.analysis.plateau).

    python paper_figures/fig1_plateau.py           # full: 32 seeds x 2,000 steps of batch 2048, and 32 x 3,000 of batch 512
    python paper_figures/fig1_plateau.py --quick   # 4 seeds x 600 steps of batch 256 (~1 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots
from icl.analysis import plateau
from icl.experiments import fig1_plateau as study

NAME = study.STUDY
PUBLISHED = {
    "source": "docs/math.md reference numbers: the official code on a 2-core CPU, 1 seed, batch 2048",
    "plateau": "~0.393 until step ~1,500, then drops to GD by ~1,900",
}


def draw(path, rows: list[dict], title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(5.2 * (len(rows) + 1), 4.2))
    for ax, row in zip(axes, rows, strict=False):
        steps, losses = np.asarray(row["log"]["steps"]), np.asarray(row["log"]["loss"])  # [T], [T, S]
        ax.plot(steps, losses, color="C0", lw=0.7, alpha=0.6)
        ax.plot(steps, row["log"]["gd_loss"], "k--", label="1 step GD, optimal eta")
        ax.plot([0, 1500], [0.393, 0.393], "r-", lw=2, label="official run: ~0.393 until ~1,500")
        ax.axhline(plateau.ESCAPE_LOSS, color="gray", lw=0.8, ls=":", label=f"escape threshold {plateau.ESCAPE_LOSS}")
        ax.set(xlabel="training step", ylabel="held-out loss", yscale="log",
               title=f"batch {row['batch_size']}: {len(row['seeds'])} seeds (one line each)")
        ax.legend(fontsize=8)
    ax = axes[-1]
    for i, row in enumerate(rows):
        escape = np.asarray(row["escape_step"], dtype=float)
        escape[escape < 0] = np.inf
        xs = np.sort(escape)
        ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", color=f"C{i}", label=f"batch {row['batch_size']}")
    ax.axvline(1500, color="r", lw=2, label="official run leaves the plateau")
    ax.set(xlabel=f"escape step (first eval with loss < {plateau.ESCAPE_LOSS})", ylabel="fraction of seeds escaped",
           title="escape-time distribution", ylim=(0, 1.02), xlim=(0, max(row["steps"] for row in rows)))
    ax.legend(fontsize=8)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = study.configs("quick" if args.quick else "full", args.steps)
    print(f"{NAME}: {common.mode(args)}", flush=True)
    rows = []
    for config in configs:
        summary, params = common.run(config, args)
        row = plateau.summarise(config, plots.read_log(args.out / "runs" / config.name), summary, params)
        rows.append(row)
        print(f"  batch {row['batch_size']}: {row['n_escaped']}/{len(row['seeds'])} seeds escaped; escape quantiles "
              f"{row['escape_quantiles']}; plateau loss {row['plateau_loss_median']:.3f}; "
              f"at/after 1,500: {row['fraction_escaping_at_or_after_1500']}", flush=True)
        for label, m in plateau.value_path_by_group(row).items():
            print(f"    {label} ({m['n']}): median ||b_x|| {m['b_x_norm']:.3f}, |b_y| {m['abs_b_y']:.3f}, "
                  f"||a_xy|| {m['a_xy_norm']:.3f}", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, rows, f"Figure 1's loss plateau over many seeds [{common.mode(args)}]")
    path = common.write_numbers(args, NAME, {"settings": rows}, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
