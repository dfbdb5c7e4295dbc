"""The loss plateau of a one-layer LSA: when each seed leaves it, and how a seed that stays reads x.

Escape: the first logged evaluation step whose held-out loss is below `ESCAPE_LOSS` = 0.3, halfway
between the plateau (~0.39-0.41, the zero predictor's loss) and one GD step (0.2045), on the
paper_1layer task. "Near GD": the first step with loss < 1.05 x the GD loss (figure 1's measure).

Value path: one LSA head on a query [x_q, 0] predicts (`weights.preconditioner`)
    y_hat = x_q^T Gamma X^T y - x_q^T A_xx X^T X b_x - (x_q . a_xy)(y^T X b_x + y^T y b_y),
with b = (W_v W_o)[:, y] split into its x part b_x and label part b_y, and a_xy = (W_q W_k^T)[x, y].
The GD construction has b_x = 0, a_xy = 0, b_y != 0. A seed stalled on the plateau reads x through
the value path instead, y_hat ~ (x_q . a_xy)(sum_i y_i x_i . b_x): a rank-one shortcut worth ~0.02
of loss, with ||b_x|| and ||a_xy|| large where the escaped seeds have them ~0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from icl import runs, train, weights
from icl.config import ExperimentConfig

ESCAPE_LOSS = 0.3  # between the plateau (~0.39-0.41) and one GD step (0.2045)
QUANTILES = (10, 25, 50, 75, 90)  # percentiles of the escape step over the escaped seeds
LATE_STEP = 1500  # the official run's escape step


def first_step_below(log: list[dict], threshold: Callable[[dict], float]) -> list[int]:
    """Per seed i, the first logged step whose loss[i] < threshold(record); -1 if none."""
    n_seeds = len(log[0]["loss"])
    return [next((r["step"] for r in log if r["loss"][i] < threshold(r)), -1) for i in range(n_seeds)]


def first_step_near_gd(log: list[dict], factor: float = 1.05) -> list[int]:
    """Per seed, the first logged step with loss below `factor` x that evaluation's GD loss (the
    log's reference, one GD step for the paper's task); -1 if none."""
    return first_step_below(log, lambda r: factor * r["ref_loss"][0])


def value_path(config: ExperimentConfig, params: dict) -> dict:
    """Per seed of a one-layer model: ||b_x||, b_y (summed over heads) and ||a_xy|| (module docstring)."""
    parts = [weights.preconditioner(m.layers[0], config.task.d) for m in train.seed_models(config, params)]
    return {
        "b_x_norm": [float(np.linalg.norm(p["b_x"])) for p in parts],
        "b_y": [float(p["b_y"].sum()) for p in parts],
        "a_xy_norm": [float(np.linalg.norm(p["a_xy"])) for p in parts],
    }


def summarise(config: ExperimentConfig, log: list[dict], summary: dict, params: dict) -> dict:
    """One setting's numbers: escape and near-GD steps per seed, escape quantiles, the share of
    seeds escaping at or after step 1,500 (or never), the median plateau loss (steps 100-200), the
    final losses, the value-path parts, the seeds still above `ESCAPE_LOSS` at the end, and the log."""
    escape = first_step_below(log, lambda r: ESCAPE_LOSS)
    steps = config.train.steps
    escaped = np.array([s for s in escape if s >= 0])
    final_loss = np.asarray(summary["model"]["loss"])
    return {
        "batch_size": config.train.batch_size, "steps": steps, "seeds": summary["seeds"],
        "escape_step": escape, "first_step_within_5pct_of_gd": first_step_near_gd(log),
        "n_escaped": int(len(escaped)),
        "escape_quantiles": {q: float(np.quantile(escaped, q / 100)) for q in QUANTILES} if len(escaped) else {},
        "fraction_escaping_at_or_after_1500":
            float(np.mean([(s < 0 or s >= LATE_STEP) for s in escape])) if steps >= LATE_STEP else None,
        "plateau_loss_median": float(np.median([r["loss"] for r in log if 100 <= r["step"] <= 200])),
        "final_loss": runs.stats(final_loss),
        "gd_loss": summary["solvers"]["gd"]["loss"],
        "value_path": value_path(config, params),
        "stuck_seeds": [seed for seed, loss in zip(summary["seeds"], final_loss, strict=True) if loss >= ESCAPE_LOSS],
        "train_steps_per_s": summary["train_steps_per_s"],
        "train_wall_s": summary.get("wall_s"),
        "log": {"steps": [r["step"] for r in log], "loss": [r["loss"] for r in log], "gd_loss": [r["ref_loss"][0] for r in log]},
    }


def value_path_by_group(row: dict) -> dict[str, dict]:
    """Of a `summarise` row: for the seeds stuck at the end and the escaped ones (groups that have
    seeds), their count and the medians of ||b_x||, |b_y| and ||a_xy||."""
    stuck = np.isin(row["seeds"], row["stuck_seeds"])
    out = {}
    for label, pick in (("stuck at the end", stuck), ("escaped", ~stuck)):
        if pick.any():
            vp = {k: np.asarray(v)[pick] for k, v in row["value_path"].items()}
            out[label] = {"n": int(pick.sum()), "b_x_norm": float(np.median(vp["b_x_norm"])),
                          "abs_b_y": float(np.median(np.abs(vp["b_y"]))), "a_xy_norm": float(np.median(vp["a_xy_norm"]))}
    return out
