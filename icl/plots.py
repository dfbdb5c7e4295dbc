"""Figures drawn from a run directory's files (`log.jsonl`, `summary.json`), never from memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_log(run_dir: str | Path) -> list[dict]:
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    by_step = {r["step"]: r for r in records if "event" not in r}  # a resumed run may repeat steps
    return [by_step[s] for s in sorted(by_step)]


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
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_run(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Loss of model vs GD (and least squares) over training, and model_cos / model_diff /
    preds_diff against GD over training; mean over seeds with min-max band. Returns the PNG path."""
    plt = pyplot()
    run_dir = Path(run_dir)
    log = read_log(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    steps = np.array([r["step"] for r in log])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    band(ax, steps, [r["loss"] for r in log], "trained LSA (held-out)")
    band(ax, steps, [r["gd_loss"] for r in log], "1-step GD, optimal eta", ls="--", color="k")
    if summary and "least_squares" in summary["solvers"]:
        ls_loss = summary["solvers"]["least_squares"]["loss"]
        ax.axhline(ls_loss, color="gray", ls=":", label=f"least squares ({ls_loss:.2g})")
    ax.set(xlabel="training step", ylabel="held-out loss 0.5 (y_hat - y)^2", title="loss", ylim=(0, None))
    ax.legend()
    band(axes[1], steps, [r["model_cos"] for r in log], "model_cos vs GD", color="C2")
    axes[1].set(xlabel="training step", ylabel="cosine of d y_hat / d x_q", title="sensitivity alignment with GD", ylim=(-0.05, 1.05))
    band(axes[2], steps, [r["model_diff"] for r in log], "model_diff", color="C3")
    band(axes[2], steps, [r["preds_diff"] for r in log], "preds_diff", color="C4")
    axes[2].set(xlabel="training step", yscale="log", title="difference to GD")
    axes[2].legend()
    name = summary["experiment"] if summary else run_dir.name
    fig.suptitle(f"{name}: trained transformer vs one step of gradient descent")
    fig.tight_layout()
    path = Path(path) if path else run_dir / "figure.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
