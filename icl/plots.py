"""Figures drawn from a run directory's files (`log.jsonl`, `summary.json`), never from memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from icl import rundir


def read_log(run_dir: str | Path) -> list[dict]:
    """The evaluation records of a run's log, one per step, in step order."""
    by_step = {r["step"]: r for r in rundir.read_log(Path(run_dir)) if "event" not in r}  # a resumed run may repeat steps
    return [by_step[s] for s in sorted(by_step)]


def _reference_name(summary: dict | None) -> str:
    """How a figure names the run's reference: "1-step GD, optimal eta" or the solver spec."""
    solver = (summary or {}).get("reference", {}).get("solver", "gd")  # a summary written before the field: GD
    return "1-step GD, optimal eta" if solver == "gd" else solver


def band(ax, x, values, label=None, **kw):
    """Mean over seeds (last axis of `values` [T, S]) as a line, min-max over seeds as a band.
    NaN entries (a seed left out at that point) are skipped; a point with no finite seed is a gap."""
    values = np.asarray(values, dtype=float).reshape(len(x), -1)
    finite = np.isfinite(values).any(1)
    safe = np.where(finite[:, None], values, 0.0)  # all-NaN rows: no nan-reduction warnings, drawn as gaps
    mean, low, high = (np.where(finite, f(safe, 1), np.nan) for f in (np.nanmean, np.nanmin, np.nanmax))
    (line,) = ax.plot(x, mean, label=label, **kw)
    if values.shape[1] > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line


def pyplot():
    """matplotlib.pyplot with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Loss of model vs the run's reference (`train.reference`: one GD step at the optimal rate for
    the paper's tasks) and least squares over training, and model_cos / model_diff / preds_diff
    against the reference; mean over seeds with min-max band. Returns the PNG path."""
    plt = pyplot()
    run_dir = Path(run_dir)
    log = read_log(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    steps = np.array([r["step"] for r in log])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    band(ax, steps, [r["loss"] for r in log], "trained LSA (held-out)")
    ref = _reference_name(summary)
    band(ax, steps, [r["ref_loss"] for r in log], ref, ls="--", color="k")
    if summary and "least_squares" in summary["solvers"]:
        ls_loss = summary["solvers"]["least_squares"]["loss"]
        ax.axhline(ls_loss, color="gray", ls=":", label=f"least squares ({ls_loss:.2g})")
    ax.set(xlabel="training step", ylabel="held-out loss 0.5 (y_hat - y)^2", title="loss", ylim=(0, None))
    ax.legend()
    band(axes[1], steps, [r["model_cos"] for r in log], f"model_cos vs {ref}", color="C2")
    axes[1].set(xlabel="training step", ylabel="cosine of d y_hat / d x_q", title="sensitivity alignment with the reference",
                ylim=(-0.05, 1.05))
    band(axes[2], steps, [r["model_diff"] for r in log], "model_diff", color="C3")
    band(axes[2], steps, [r["preds_diff"] for r in log], "preds_diff", color="C4")
    axes[2].set(xlabel="training step", yscale="log", title=f"difference to {ref}")
    axes[2].legend()
    name = summary["experiment"] if summary else run_dir.name
    fig.suptitle(f"{name}: trained transformer vs {ref}")
    fig.tight_layout()
    path = Path(path) if path else run_dir / "figure.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
