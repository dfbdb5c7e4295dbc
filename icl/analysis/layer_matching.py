"""Which solver step does each layer of a deep stack compute? Fu et al. 2023's "similarity of errors".

On B held-out tasks with M queries each, every predictor P gives residuals
r_P[b] = y_hat_P(x_q[b, :]) - y_q[b, :] in R^M. The similarity of two predictors is the mean over
tasks of the per-task cosine over the M queries:
    sim(P, Q) = (1/B) sum_b <r_P[b], r_Q[b]> / (||r_P[b]|| ||r_Q[b]||)
(0 for a task where either residual is 0). For predictors linear in x_q, r_P[b] = X_q[b] (w_P[b] - w[b]),
so for large M this is the Sigma-weighted cosine of the weight errors, task by task. P ranges over
the read-out after layer l = 1..L (`model.layer_predictions`) and Q over the steps of a solver:
  * Newton-Schulz (`solvers.newton`), k = 0..K iterations: S = X^T X, M_0 = S / ||S S^T||_F,
    M_{k+1} = M_k (2I - S M_k), w = M_k X^T y (k = 0 is a scaled GD step). Fu et al. use the
    spectral norm with a factor 2: a constant shift of at most ~log2(2 sqrt d) iterations, which a
    slope ignores;
  * GD (`solvers.gd`) from w = 0 with the per-task step lr_b = N / lambda_max(X_b^T X_b), i.e. step
    1 / L_smooth on L(w) = 1/(2N)||Xw - y||^2 (the textbook monotone step; the best constant step
    2 / (lambda_max + lambda_min) is at most 2x larger, which costs GD at most a factor ~2 in steps
    and does not change linear vs exponential growth).
The best match of layer l is k*(l) = argmax_k sim(layer l, step k), per seed. Fits: k*_N(l) = a + s l
(least squares, slope and R^2) and log2 k*_GD(l) = a + g l (k_GD multiplies by 2^g per layer); a
"reliable" fit uses only the layers whose best similarity reaches `sim_min`, since near
convergence every solver's residual concentrates on the slowest eigendirections of X^T X and the
model's need not. A cruder match that ignores residual directions: the loss-matched step k_loss(l),
the (interpolated) step at which the solver's held-out loss first falls to layer l's loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers, train
from icl.config import ExperimentConfig
from icl.tasks.base import Batch


def unit_residuals(y_hat: jax.Array, y_query: jax.Array) -> jax.Array:
    """(y_hat - y_query) / ||y_hat - y_query|| over the M queries of each task: [..., B, M]
    (0 where the residual is 0)."""
    r = y_hat - y_query
    norm = jnp.linalg.norm(r, axis=-1, keepdims=True)
    return jnp.where(norm > 0, r / jnp.where(norm > 0, norm, 1.0), 0.0)


def similarity_matrix(u_layers: jax.Array, u_steps: jax.Array) -> jax.Array:
    """sim[l, k] = mean over tasks b of <u_layers[l, b], u_steps[k, b]> (unit residuals [L, B, M],
    [K, B, M]): the mean per-task cosine of the residuals. [L, K]."""
    return jnp.einsum("lbm,kbm->lk", u_layers, u_steps) / u_layers.shape[1]


def line_fit(x, y) -> dict:
    """Least-squares line y = intercept + slope x, with R^2 (1 when y is constant and fitted exactly)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - intercept - slope * x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"slope": float(slope), "intercept": float(intercept), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def loss_matched_step(layer_loss: float, steps, solver_loss, log_steps: bool) -> float:
    """The step count at which the solver's loss first falls to `layer_loss`: log(loss) interpolated
    linearly between grid steps (in k, or in log k when `log_steps`). steps[0] if the layer is no
    better than the first step; inf if it beats every step."""
    steps, solver_loss = np.asarray(steps, float), np.asarray(solver_loss, float)
    if layer_loss >= solver_loss[0]:
        return float(steps[0])
    below = np.flatnonzero(solver_loss <= layer_loss)
    if below.size == 0:
        return float("inf")
    i = int(below[0])
    x0, x1 = (np.log(steps[i - 1:i + 1]) if log_steps else steps[i - 1:i + 1])
    y0, y1 = np.log(solver_loss[i - 1]), np.log(max(solver_loss[i], 1e-300))
    x = x0 + (np.log(layer_loss) - y0) * (x1 - x0) / (y1 - y0)
    return float(np.exp(x) if log_steps else x)


def smooth_lr(x_ctx: jax.Array) -> jax.Array:
    """Per-task GD step N / lambda_max(X^T X) (paper convention lr, i.e. 1 / lambda_max of the Hessian
    X^T X / N): [B, 1]."""
    s = jnp.einsum("bnd,bne->bde", x_ctx, x_ctx)  # [B, d, d]
    return (x_ctx.shape[1] / jnp.linalg.eigvalsh(s)[:, -1])[:, None]


def solver_steps(batch: Batch, newton_steps: int, gd_steps: Sequence[int]) -> dict:
    """Predictions [K, B, M] of Newton-Schulz (k = 0..newton_steps) and GD at step N / lambda_max
    (k in gd_steps), and least squares [B, M]."""
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    newton = jax.jit(solvers.newton, static_argnames="steps")
    gd = jax.jit(solvers.gd, static_argnames="steps")
    lr = smooth_lr(xc)
    return {
        "newton": jnp.stack([newton(xc, yc, xq, steps=k) for k in range(newton_steps + 1)]),
        "gd": jnp.stack([gd(xc, yc, xq, lr=lr, steps=k) for k in gd_steps]),
        "least_squares": solvers.least_squares(xc, yc, xq),
    }


def _fit_slopes(layers: np.ndarray, matched: np.ndarray, transform=lambda k: k) -> dict | None:
    """stats over seeds of the slope of transform(matched[s]) against the layers; None if no seed is finite."""
    finite = np.all(np.isfinite(matched), axis=1)
    return runs.stats([line_fit(layers, transform(m))["slope"] for m in matched[finite]]) if finite.any() else None


def match_solver(u_model: jax.Array, solver_y: jax.Array, y_query: jax.Array, steps: np.ndarray,
                 model_loss: np.ndarray, log_steps: bool, sim_min: float) -> dict:
    """Match every layer of every seed to one solver's steps.

    u_model [S, L, B, M]: the layers' unit residuals; solver_y [K, B, M]: the solver's predictions
    at `steps` [K]; model_loss [S, L]. `log_steps` (GD): also fit log2 k*(l) (the doubling rate per
    layer) and interpolate the loss-matched step in log k. Returns the similarity [S, L, K], k*(l)
    [S, L], the fits, the solver's loss per step and the loss-matched steps [S, L]."""
    layers = np.arange(1, u_model.shape[1] + 1)
    log2 = np.log2 if log_steps else (lambda k: k)
    u_sol = unit_residuals(solver_y, y_query[None])  # [K, B, M]
    sim = np.asarray(jax.vmap(similarity_matrix, (0, None))(u_model, u_sol))  # [S, L, K]
    best = steps[sim.argmax(-1)]  # [S, L]
    fits = [line_fit(layers, b) for b in best]
    entry = {
        "steps": steps.tolist(), "similarity": sim.tolist(), "best_step": best.tolist(),
        "best_similarity": sim.max(-1).tolist(), "fit_linear": fits,
        "slope": runs.stats([f["slope"] for f in fits]), "r2": runs.stats([f["r2"] for f in fits]),
        "loss": [float(compare.loss(y, y_query)) for y in solver_y],
    }
    reliable = [(layers[m], b[m]) for b, m in zip(best, sim.max(-1) >= sim_min, strict=True)]  # per seed: (layers, k*) with a real match
    fits_reliable = [line_fit(x, log2(k)) for x, k in reliable if len(x) >= 2]
    entry["reliable_layers"] = [x.tolist() for x, _ in reliable]
    entry["reliable_fit"] = runs.stats([f["slope"] for f in fits_reliable]) if fits_reliable else None
    matched = np.asarray([[loss_matched_step(v, steps, entry["loss"], log_steps=log_steps) for v in seed]
                          for seed in model_loss])  # [S, L]
    entry["loss_matched_step"] = matched.tolist()
    entry["loss_matched_slope"] = _fit_slopes(layers, matched)
    if log_steps:
        log_fits = [line_fit(layers, np.log2(b)) for b in best]
        entry["fit_log2"] = log_fits
        entry["doubling_per_layer"] = runs.stats([f["slope"] for f in log_fits])
        entry["loss_matched_doubling_per_layer"] = _fit_slopes(layers, matched, np.log2)
    return entry


def match_layers(config: ExperimentConfig, params: dict, n_tasks: int, n_query: int, newton_steps: int,
                 gd_steps: Sequence[int], sim_min: float) -> dict:
    """Layer-vs-step similarities, best matches and their fits against Newton-Schulz and GD, and the
    losses, on `n_tasks` tasks of the FINAL held-out set with `n_query` queries each (params [S, ...])."""
    batch = dataclasses.replace(config.task, n_query=n_query).sample(train.heldout_key(config, train.HeldOut.FINAL), n_tasks)
    spec = train.model_spec(config)
    layer_preds = jax.jit(jax.vmap(lambda p: spec.model(p).layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query)))
    model_y = layer_preds(params)  # [S, L, B, M]
    sol = solver_steps(batch, newton_steps, gd_steps)
    u_model = unit_residuals(model_y, batch.y_query[None, None])  # [S, L, B, M]
    model_loss = np.asarray(jax.vmap(jax.vmap(lambda y: compare.loss(y, batch.y_query)))(model_y))  # [S, L]
    out = {"kappa": config.task.condition_number, "n_tasks": n_tasks, "n_query": n_query}
    for name, steps in (("newton", np.arange(newton_steps + 1)), ("gd", np.asarray(gd_steps))):
        out[name] = match_solver(u_model, sol[name], batch.y_query, steps, model_loss, name == "gd", sim_min)
    out["model_loss"] = model_loss.T.tolist()  # [L, S]
    out["least_squares_loss"] = float(compare.loss(sol["least_squares"], batch.y_query))
    out["zero_loss"] = float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))
    return out
