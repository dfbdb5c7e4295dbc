"""Figure 1, the loss plateau: how long does one LSA layer sit near the zero predictor's loss?

The official code's single run (docs/math.md) sits at ~0.393 until step ~1,500 and reaches GD by
~1,900; figure 1's five seeds all reach GD by step 400. This script asks whether that is a
difference in the setup or the spread of one draw: it trains figure 1's exact configuration
(experiments.paper_1layer: d = N = 10, x ~ U(-0.5, 0.5)^10, init VarianceScaling(0.002), Adam 1e-3,
b2 0.98) for many seeds at once (one vmapped program, `train.seed_group` groups), at the paper's
batch 2048 and at batch 512, and records per seed
  * the escape step: the first evaluation step (every 50 steps, 2,048 held-out tasks) with loss
    below 0.3, halfway between the plateau (~0.39–0.41) and one GD step (0.2045);
  * the first step within 5 % of the GD loss (figure 1's measure);
  * at the end, the parts of the layer's prediction (compare.preconditioner): the value path
    b = (W_v W_o)[:, y] split into its x part ||b_x|| and its label part b_y, and the query-key
    cross term ||a_xy|| = ||(W_q W_k^T)[x, y]||. The GD construction has b_x = 0, a_xy = 0,
    b_y != 0; a seed that stays on the plateau reads x through the value path instead
    (y_hat ~ (x_q . a_xy)(sum_i y_i x_i . b_x)), a rank-one shortcut worth ~0.02 of loss.

    python paper_figures/fig1_plateau.py           # full: 32 seeds x 2,000 steps of batch 2048, and 32 x 3,000 of batch 512
    python paper_figures/fig1_plateau.py --quick   # 4 seeds x 600 steps of batch 256 (~1 min)
"""

from __future__ import annotations

import dataclasses

import numpy as np

import common
import experiments
from icl import compare, train
from icl.config import ExperimentConfig, TrainConfig

NAME = "fig1_plateau"
ESCAPE_LOSS = 0.3  # between the plateau (~0.39-0.41) and one GD step (0.2045)
PUBLISHED = {
    "source": "docs/math.md reference numbers: the official code on a 2-core CPU, 1 seed, batch 2048",
    "plateau": "~0.393 until step ~1,500, then drops to GD by ~1,900",
}


def make_configs(quick: bool, steps: int | None = None) -> list[ExperimentConfig]:
    """The paper_1layer run at batch 2048 and 512, many seeds each."""
    base = experiments.get("paper_1layer")
    settings = [(256, 600, 4, 0)] if quick else [(2048, steps or 2000, 32, 8), (512, steps or 3000, 32, 0)]
    configs = []
    for batch_size, n_steps, n_seeds, group in settings:
        cfg = TrainConfig(steps=n_steps, batch_size=batch_size, n_seeds=n_seeds, seed_group=group, eval_every=50,
                          ckpt_every=n_steps, eval_tasks=2048, final_eval_tasks=2000)
        configs.append(dataclasses.replace(base, name=f"{NAME}_b{batch_size}", train=cfg))
    return configs


def first_step(log: list[dict], below) -> list[int]:
    """Per seed, the first logged step whose loss is below `below(record)`; -1 if none."""
    n_seeds = len(log[0]["loss"])
    return [next((r["step"] for r in log if r["loss"][i] < below(r)), -1) for i in range(n_seeds)]


def value_path(config: ExperimentConfig, params: dict) -> dict:
    """Per seed: ||b_x||, b_y and ||a_xy|| of the (one-head) layer (see the module docstring)."""
    d = config.task.d
    parts = [compare.preconditioner(m.layers[0], d) for m in train.seed_models(config, params)]
    return {
        "b_x_norm": [float(np.linalg.norm(p["b_x"])) for p in parts],
        "b_y": [float(p["b_y"].sum()) for p in parts],
        "a_xy_norm": [float(np.linalg.norm(p["a_xy"])) for p in parts],
    }


def summarise(config: ExperimentConfig, log: list[dict], summary: dict, params: dict) -> dict:
    escape = first_step(log, lambda r: ESCAPE_LOSS)
    near_gd = first_step(log, lambda r: 1.05 * r["gd_loss"][0])
    steps = config.train.steps
    escaped = np.array([s for s in escape if s >= 0])
    final_loss = np.asarray(summary["model"]["loss"])
    return {
        "batch_size": config.train.batch_size, "steps": steps, "seeds": summary["seeds"],
        "escape_step": escape, "first_step_within_5pct_of_gd": near_gd,
        "n_escaped": int(len(escaped)),
        "escape_quantiles": {q: float(np.quantile(escaped, q / 100)) for q in (10, 25, 50, 75, 90)} if len(escaped) else {},
        "fraction_escaping_at_or_after_1500": float(np.mean([(s < 0 or s >= 1500) for s in escape])) if steps >= 1500 else None,
        "plateau_loss_median": float(np.median([r["loss"] for r in log if 100 <= r["step"] <= 200])),
        "final_loss": common.stats(final_loss),
        "gd_loss": summary["solvers"]["gd"]["loss"],
        "value_path": value_path(config, params),
        "stuck_seeds": [seed for seed, loss in zip(summary["seeds"], final_loss, strict=True) if loss >= ESCAPE_LOSS],
        "train_steps_per_s": summary["train_steps_per_s"],
        "train_wall_s": summary.get("wall_s"),
        "log": {"steps": [r["step"] for r in log], "loss": [r["loss"] for r in log], "gd_loss": [r["gd_loss"][0] for r in log]},
    }


def draw(path, rows: list[dict], title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(5.2 * (len(rows) + 1), 4.2))
    for ax, row in zip(axes, rows, strict=False):
        steps, losses = np.asarray(row["log"]["steps"]), np.asarray(row["log"]["loss"])  # [T], [T, S]
        ax.plot(steps, losses, color="C0", lw=0.7, alpha=0.6)
        ax.plot(steps, row["log"]["gd_loss"], "k--", label="1 step GD, optimal eta")
        ax.plot([0, 1500], [0.393, 0.393], "r-", lw=2, label="official run: ~0.393 until ~1,500")
        ax.axhline(ESCAPE_LOSS, color="gray", lw=0.8, ls=":", label=f"escape threshold {ESCAPE_LOSS}")
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
    ax.set(xlabel=f"escape step (first eval with loss < {ESCAPE_LOSS})", ylabel="fraction of seeds escaped",
           title="escape-time distribution", ylim=(0, 1.02), xlim=(0, max(row["steps"] for row in rows)))
    ax.legend(fontsize=8)
    common.save(fig, path, title)


def main() -> None:
    from icl import plots  # noqa: PLC0415

    args = common.parse_args(__doc__.splitlines()[0])
    configs = make_configs(args.quick, args.steps)
    print(f"{NAME}: {common.mode(args)}", flush=True)
    rows = []
    for config in configs:
        summary, params = common.run(config, args)
        row = summarise(config, plots.read_log(args.out / "runs" / config.name), summary, params)
        rows.append(row)
        print(f"  batch {row['batch_size']}: {row['n_escaped']}/{len(row['seeds'])} seeds escaped; escape quantiles "
              f"{row['escape_quantiles']}; plateau loss {row['plateau_loss_median']:.3f}; "
              f"at/after 1,500: {row['fraction_escaping_at_or_after_1500']}", flush=True)
        stuck = np.isin(row["seeds"], row["stuck_seeds"])
        for label, pick in (("stuck at the end", stuck), ("escaped", ~stuck)):
            if pick.any():
                vp = {k: np.asarray(v)[pick] for k, v in row["value_path"].items()}
                print(f"    {label} ({pick.sum()}): median ||b_x|| {np.median(vp['b_x_norm']):.3f}, "
                      f"|b_y| {np.median(np.abs(vp['b_y'])):.3f}, ||a_xy|| {np.median(vp['a_xy_norm']):.3f}", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, rows, f"Figure 1's loss plateau over many seeds [{common.mode(args)}]")
    path = common.write_numbers(args, NAME, {"settings": rows}, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
