"""Claim 9: does a state-space model (Mamba) reach transformer-level in-context regression?

Shapes: S seeds, B tasks, T positions (pairs), d input dimension. Position t (0-based) is
predicted from the t pairs before it (`icl.analysis.prefix_curves`); the error at t is Garg et
al.'s normalised squared error (y_hat_t - y_t)^2 / s (s = d here, `prefix_curves.error_scale`:
the zero predictor scores ~1).

  * `seed_error_curves`: the error of every seed's model at every position, on the same tasks;
  * `error_past`: its mean over the positions k >= d + 2 (`FROM_D_PLUS`), the claim's number
    (least squares is exact there on noiseless linear regression);
  * `flat`: the convergence test of an error-vs-step curve: flat over its last `WINDOW` of steps;
  * `value_at`: a curve read at a step or a wall time between its measurements (linear);
  * `task_verdict` / `verdict`: the rule (their docstrings), fixed before the full run.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from icl.analysis.prefix_curves import error_scale

FROM_D_PLUS = 2  # the claim's error is the mean over positions k >= d + FROM_D_PLUS
TOL = 0.05  # "transformer level": Mamba's error at most this much above the GPT-2's (normalised units)
WINDOW = 0.2  # the convergence test looks at the last WINDOW of the training steps
REL_TOL, ABS_TOL = 0.1, 0.01  # ... and calls a curve flat if it fell by at most max(REL_TOL x its end, ABS_TOL) there
LEARNED = 0.5  # a reference transformer must be below this error (the zero predictor's is ~1): not stuck on the plateau


def seed_error_curves(models, task, x: jax.Array, y: jax.Array) -> np.ndarray:
    """[S, T]: the mean over the B tasks (x [B, T, d], y [B, T]) of each seed's normalised error at
    every position; `models` are the seeds' models (`train.seed_models`), each with
    `predict_prefixes(x, y) -> [B, T]`."""
    scale = error_scale(task)
    out = []
    for model in models:
        if isinstance(model, nnx.Module):  # the weights an argument, not constants: one program for every seed and step
            pred = _prefix_predictions(*nnx.split(model), x, y)
        else:  # any object with predict_prefixes
            pred = model.predict_prefixes(x, y)
        out.append(np.asarray(((pred - y) ** 2).mean(0)) / scale)
    return np.stack(out)


@functools.partial(jax.jit, static_argnums=0)
def _prefix_predictions(graphdef, state, x: jax.Array, y: jax.Array) -> jax.Array:
    """[B, T]: `predict_prefixes` of the model split into (graphdef, state)."""
    return nnx.merge(graphdef, state).predict_prefixes(x, y)


def error_past(curves, d: int) -> np.ndarray:
    """The mean of error curves [..., T] over positions k >= d + FROM_D_PLUS: [...]."""
    curves = np.asarray(curves, dtype=float)
    if curves.shape[-1] <= d + FROM_D_PLUS:
        raise ValueError(f"error_past: curves of {curves.shape[-1]} positions have none at k >= d + {FROM_D_PLUS} = {d + FROM_D_PLUS}")
    return curves[..., d + FROM_D_PLUS:].mean(-1)


def flat(steps, errors, window: float = WINDOW, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> dict:
    """The convergence test of one error-vs-step curve (steps increasing, errors at those steps).

    Start: the first measurement at or after (1 - window) x the last step; the curve is flat
    ("converged") when it fell from there to its last measurement by at most max(rel_tol x the last
    error, abs_tol). A rise counts as flat (the test asks whether more steps would still help).
    Returns {"flat", "from_step", "start", "end", "drop", "allowed"}."""
    steps, errors = np.asarray(steps, dtype=float), np.asarray(errors, dtype=float)
    if steps.ndim != 1 or steps.shape != errors.shape or len(steps) < 2:
        raise ValueError("flat: steps and errors must be 1-d of the same length >= 2")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("flat: steps must increase")
    i = int(np.argmax(steps >= (1 - window) * steps[-1]))
    if i == len(steps) - 1:
        raise ValueError(f"flat: no measurement in the last {window:.0%} of steps before the last one")
    start, end = float(errors[i]), float(errors[-1])
    drop, allowed = start - end, max(rel_tol * end, abs_tol)
    return {"flat": bool(drop <= allowed), "from_step": int(steps[i]), "start": start, "end": end, "drop": drop, "allowed": allowed}


def value_at(xs, values, x: float) -> float:
    """values [n] measured at increasing xs [n], read at x by linear interpolation (nan outside)."""
    xs, values = np.asarray(xs, dtype=float), np.asarray(values, dtype=float)
    if x < xs[0] or x > xs[-1]:
        return float("nan")
    return float(np.interp(x, xs, values))


def task_verdict(mamba: float, gpt2: float, mamba_flat: bool, gpt2_flat: bool, tol: float = TOL) -> str:
    """One task's comparison, on seed means of the error past k = d + 2 at each model's last step:
      "at level"   Mamba's error <= the GPT-2's + tol, and the GPT-2 has converged: its curve is
                   flat (`flat`) and its error below LEARNED (a flat curve at ~1 is the loss
                   plateau, not a transformer's level);
      "behind"     Mamba's error > the GPT-2's + tol, and Mamba's curve is flat (it levelled off
                   above the transformer);
      "undecided"  otherwise (the GPT-2 still improving or on its plateau while Mamba is at or below
                   it, or Mamba behind but still improving)."""
    if mamba <= gpt2 + tol:
        return "at level" if gpt2_flat and gpt2 < LEARNED else "undecided"
    return "behind" if mamba_flat else "undecided"


def verdict(task_verdicts: list[str]) -> str:
    """Over the tasks (`task_verdict`): "held" if Mamba is at level on every task; "did not hold"
    if it is behind on every task; "not settled" if no task is decided; "held in part" otherwise."""
    if all(v == "at level" for v in task_verdicts):
        return "held"
    if all(v == "behind" for v in task_verdicts):
        return "did not hold"
    if all(v == "undecided" for v in task_verdicts):
        return "not settled"
    return "held in part"
