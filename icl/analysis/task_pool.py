"""Learners trained on a finite pool of K tasks (Raventós et al. 2023): the Bayes-optimal estimators
of the pool and of the Gaussian prior, how close a model is to each, and where it crosses over.

Tasks: x ~ N(0, I_d), y = w . x + eps, eps ~ N(0, sigma^2); the pool prior picks w uniformly from
w_1..w_K, the Gaussian prior draws w ~ N(0, tau^2 I). Estimators (posterior means, true sigma):
  dMMSE(K)   y_hat = sum_k p_k w_k . x_q,  p_k = softmax_k(-||y - X w_k||^2 / (2 sigma^2))
             (`solvers.baselines.dmmse`, here over task chunks: `dmmse_chunked`);
  ridge      y_hat = x_q . (X^T X + lam I)^{-1} X^T y, lam = sigma^2 / tau^2 (`solvers.ridge`);
  LMMSE(K)   y_hat = x_q . Sigma_K X^T (X Sigma_K X^T + sigma^2 I)^{-1} y, Sigma_K = (1/K) sum w_k w_k^T
             (`lmmse`): the best predictor linear in the labels y for the pool. A linear learner can
             exploit the pool's span and covariance but nothing else; a model beating LMMSE(K) on
             pool tasks uses the pool non-linearly, i.e. memorises tasks as dMMSE does.
Metrics over tasks and queries: MSE(f) = mean (f(x_q) - y_q)^2 (label noise included) and
Raventós's Delta PM, dPM(f, g) = mean (f(x_q) - g(x_q))^2 on the same contexts and queries.
Threshold: on fresh tasks, score(K) = ln dPM(model, dMMSE(K)) - ln dPM(model, ridge), > 0 when the
model is closer to ridge; per seed K* is where the score first turns positive over the K grid,
log2 K* interpolated linearly (`crossover`, `thresholds`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icl import runs, solvers, train
from icl.config import ExperimentConfig
from icl.tasks.base import Batch


def dmmse_chunked(x_ctx, y_ctx, x_query, pool, noise_std: float, max_elements: int = 2**23) -> jax.Array:
    """`solvers.baselines.dmmse` over task chunks, so the [B, K, N] residuals stay below
    `max_elements` numbers (K = 4096 on 4,000 tasks would otherwise need 1 GB): [B, M]."""
    b, n = y_ctx.shape
    k = np.asarray(pool).shape[0]
    chunk = max(1, max_elements // (k * n))
    parts = [solvers.baselines.dmmse(x_ctx[i:i + chunk], y_ctx[i:i + chunk], x_query[i:i + chunk], pool, noise_std)
             for i in range(0, b, chunk)]
    return jnp.concatenate(parts, axis=0)


def pool_second_moment(pool) -> np.ndarray:
    """Sigma_K = (1/K) sum_k w_k w_k^T of a pool [K, d]: [d, d] (rank min(K, d))."""
    pool = np.asarray(pool, float)
    return pool.T @ pool / pool.shape[0]


def lmmse(x_ctx, y_ctx, x_query, cov, noise_std: float) -> jax.Array:
    """The linear MMSE predictor for a prior with second moment E[w w^T] = cov (any mean-zero
    prior; the posterior mean when w ~ N(0, cov)):
        w_hat = cov X^T (X cov X^T + sigma^2 I_N)^{-1} y,   y_hat = w_hat . x_q      [B, M].
    Among predictors linear in the context labels y it has the least expected error; with
    cov = tau^2 I it is ridge with lam = sigma^2 / tau^2. The N x N form needs no inverse of cov,
    so a pool of K < d tasks (singular cov) is fine.
    """
    cov = jnp.asarray(cov, x_ctx.dtype)
    xs = jnp.einsum("bnd,de->bne", x_ctx, cov)  # [B, N, d]: X cov
    n = x_ctx.shape[1]
    gram = jnp.einsum("bne,bme->bnm", xs, x_ctx) + noise_std**2 * jnp.eye(n, dtype=x_ctx.dtype)[None]  # [B, N, N]
    alpha = jnp.linalg.solve(gram, y_ctx[:, :, None])[:, :, 0]  # [B, N]
    w = jnp.einsum("bne,bn->be", xs, alpha)  # [B, d]
    return jnp.einsum("bmd,bd->bm", x_query, w)


def mse(y_hat: jax.Array, y: jax.Array) -> np.ndarray:
    """Mean squared error over tasks and queries (the last two axes): [...] (e.g. [S] seeds)."""
    return np.asarray(jnp.mean((y_hat - y) ** 2, axis=(-2, -1)))


def delta_pm(y_a: jax.Array, y_b: jax.Array) -> np.ndarray:
    """Raventós's Delta PM: mean over tasks and queries of (y_a - y_b)^2, over the last two axes."""
    return np.asarray(jnp.mean((y_a - y_b) ** 2, axis=(-2, -1)))


def crossover(log2_k, score) -> dict:
    """Where `score` (over the increasing grid log2_k) first turns positive.

    Returns {"log2_k": x, "where": w}: w = "between" with x the zero of the straight line through
    the last non-positive point and the first positive one; w = "below_grid" (x = log2_k[0]: the
    score is already positive at the smallest K, so K* <= K_min); w = "above_grid" (x = None:
    never positive, K* > K_max). "monotone" says whether the score stays positive after.
    """
    log2_k, score = np.asarray(log2_k, float), np.asarray(score, float)
    if log2_k.ndim != 1 or log2_k.shape != score.shape or len(log2_k) == 0:
        raise ValueError(f"crossover: log2_k and score must be 1-d of equal length, got {log2_k.shape}, {score.shape}")
    if np.any(np.diff(log2_k) <= 0):
        raise ValueError("crossover: log2_k must be strictly increasing")
    if not np.all(np.isfinite(score)):
        raise ValueError("crossover: score must be finite")
    positive = score > 0
    if not positive.any():
        return {"log2_k": None, "where": "above_grid", "monotone": True}
    i = int(np.argmax(positive))
    monotone = bool(positive[i:].all())
    if i == 0:
        return {"log2_k": float(log2_k[0]), "where": "below_grid", "monotone": monotone}
    x0, x1, s0, s1 = log2_k[i - 1], log2_k[i], score[i - 1], score[i]
    return {"log2_k": float(x0 + (x1 - x0) * (0.0 - s0) / (s1 - s0)), "where": "between", "monotone": monotone}


def thresholds(results: list[dict]) -> dict:
    """Per seed, the crossover of the fresh-task score over the finite K grid (see `crossover`).
    results: one `evaluate` row per K ({"log2_K": int or None, "fresh": {"score": [S]}})."""
    finite = [r for r in results if r["log2_K"] is not None]
    log2_k = [r["log2_K"] for r in finite]
    scores = np.array([r["fresh"]["score"] for r in finite])  # [K, S]
    per_seed = [crossover(log2_k, scores[:, s]) for s in range(scores.shape[1])]
    inside = [c["log2_k"] for c in per_seed if c["where"] == "between"]
    summary = {"per_seed": per_seed, "grid_log2_K": log2_k}
    if inside:
        summary["log2_K_star_between"] = runs.stats(inside)
        summary["K_star_median"] = float(2 ** np.median(inside))
    summary["count"] = {w: sum(c["where"] == w for c in per_seed) for w in ("below_grid", "between", "above_grid")}
    return summary


def model_predictions(config: ExperimentConfig, params, batch: Batch) -> jax.Array:
    """Every seed's predictions on `batch` (params [S, ...]): [S, B, M]."""
    spec = train.model_spec(config)
    predict = jax.jit(jax.vmap(lambda p, xc, yc, xq: spec.model(p).predict(xc, yc, xq), in_axes=(0, None, None, None)))
    return predict(params, batch.x_ctx, batch.y_ctx, batch.x_query)


def evaluate(config: ExperimentConfig, params, fresh_task, pool_task, n_tasks: int, lam: float, noise_std: float) -> dict:
    """MSE of the model (per seed), ridge (lam) and, with a pool, dMMSE and LMMSE(pool), and the dPM
    of the model to each, on `n_tasks` fresh tasks (HeldOut.FRESH) and pool tasks (HeldOut.POOL;
    pool_task None: K = inf, fresh tasks only); per seed the score ln dPM(dMMSE) - ln dPM(ridge)."""
    sets = {"fresh": fresh_task.sample(train.heldout_key(config, train.HeldOut.FRESH), n_tasks)}
    if pool_task is not None:
        sets["pool"] = pool_task.sample(train.heldout_key(config, train.HeldOut.POOL), n_tasks)
    out = {}
    for name, batch in sets.items():
        y_model = model_predictions(config, params, batch)  # [S, B, M]
        y_ridge = solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=lam)  # [B, M]
        row = {
            "model_mse": runs.stats(mse(y_model, batch.y_query[None])),
            "ridge_mse": float(mse(y_ridge, batch.y_query)),
            "dpm_ridge": runs.stats(delta_pm(y_model, y_ridge[None])),
            "zero_mse": float(mse(jnp.zeros_like(batch.y_query), batch.y_query)),
        }
        if pool_task is not None:
            y_dmmse = dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, pool_task.pool, noise_std)
            row["dmmse_mse"] = float(mse(y_dmmse, batch.y_query))
            row["dpm_dmmse"] = runs.stats(delta_pm(y_model, y_dmmse[None]))
            row["dmmse_ridge_dpm"] = float(delta_pm(y_dmmse, y_ridge))
            y_lin = lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, pool_second_moment(pool_task.pool), noise_std)
            row["lmmse_mse"] = float(mse(y_lin, batch.y_query))
            row["dpm_lmmse"] = runs.stats(delta_pm(y_model, y_lin[None]))
            row["score"] = (np.log(row["dpm_dmmse"]["values"]) - np.log(row["dpm_ridge"]["values"])).tolist()
        out[name] = row
    return out
