"""The Bayes-optimal predictor for a mixture of dense and sparse linear regression (Panwar, Ahuja &
Goyal 2024), and how close a trained model is to it and to each single-prior predictor.

Tasks (`linear_mixture`): x ~ N(0, I_d), y = w . x + eps, eps ~ N(0, sigma^2); w ~ N(0, tau^2 I_d)
with probability p (dense), else w ~ N(0, tau^2 diag(m_S)) with m_S the indicator of a support S
drawn uniformly from the C(d, k) k-subsets (sparse). Every component is Gaussian, w ~ N(0, tau^2
diag(m)) for a mask m (all ones: dense; m_S: support S), so given the context (X [N, d], y [N]):
  marginal    y | m ~ N(0, C_m),  C_m = tau^2 X diag(m) X^T + sigma^2 I_N,
              log L_m = -1/2 y^T C_m^{-1} y - 1/2 log det C_m - N/2 log 2 pi      (`gaussian_component`)
  posterior   E[w | m, X, y] = tau^2 diag(m) X^T C_m^{-1} y
              (= ridge on the columns in m with lam = sigma^2 / tau^2, the d x d form);
  dense       the all-ones mask: ridge with lam = sigma^2 / tau^2                 (`dense_posterior`);
  sparse      posterior P(S | X, y) = softmax_S(log L_S) (uniform prior over supports), mean
              E[w | sparse] = sum_S P(S) E[w | S], log L_sparse = logsumexp_S log L_S - log C(d, k)
                                                                                  (`sparse_posterior`);
  mixture     P(dense | X, y) = sigmoid(log p + log L_dense - log(1 - p) - log L_sparse),
              E[w | X, y] = P(dense) E[w | dense] + (1 - P(dense)) E[w | sparse]  (`mixture_posterior`).
The predictions are y_hat = E[w | ...] . x_q (posterior means minimise the expected squared error,
so the mixture's is the Bayes-optimal predictor, the sparse one is optimal for p = 0, ridge for
p = 1). Metrics over tasks and queries: MSE and dPM(f, g) = mean (f(x_q) - g(x_q))^2 (`evaluate`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from icl import runs, train
from icl.analysis.task_pool import delta_pm, model_predictions, mse


def supports(d: int, k: int) -> np.ndarray:
    """The C(d, k) masks of the k-subsets of d coordinates, lexicographic: [C, d] of 0/1 floats."""
    if not 1 <= k <= d:
        raise ValueError(f"supports: need 1 <= k <= d, got k = {k}, d = {d}")
    out = np.zeros((math.comb(d, k), d))
    for i, s in enumerate(itertools.combinations(range(d), k)):
        out[i, list(s)] = 1.0
    return out


def gaussian_component(x_ctx, y_ctx, mask, weight_std: float, noise_std: float) -> tuple[jax.Array, jax.Array]:
    """For the prior w ~ N(0, tau^2 diag(mask)) (mask [d] or [B, d]): the posterior mean
    tau^2 diag(m) X^T C^{-1} y [B, d] and the log marginal likelihood log N(y; 0, C) [B] with
    C = tau^2 X diag(m) X^T + sigma^2 I_N (the N x N form: any N, any mask; needs sigma > 0)."""
    b, n, d = x_ctx.shape
    mask = jnp.broadcast_to(jnp.asarray(mask, x_ctx.dtype), (b, d))
    xm = x_ctx * (weight_std**2 * mask)[:, None, :]  # [B, N, d]: tau^2 X diag(m)
    cov = jnp.einsum("bnd,bmd->bnm", xm, x_ctx) + noise_std**2 * jnp.eye(n, dtype=x_ctx.dtype)[None]  # [B, N, N]
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, y_ctx[:, :, None], lower=True)  # [B, N, 1]: L^{-1} y
    alpha = jax.scipy.linalg.solve_triangular(jnp.swapaxes(chol, 1, 2), z, lower=False)[:, :, 0]  # [B, N]: C^{-1} y
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)  # [B]
    log_ml = -0.5 * jnp.sum(z[:, :, 0] ** 2, axis=1) - 0.5 * logdet - 0.5 * n * math.log(2 * math.pi)
    return jnp.einsum("bnd,bn->bd", xm, alpha), log_ml


def dense_posterior(x_ctx, y_ctx, weight_std: float, noise_std: float) -> tuple[jax.Array, jax.Array]:
    """The dense component (w ~ N(0, tau^2 I)): (posterior mean [B, d] = ridge weights with
    lam = sigma^2 / tau^2, log marginal likelihood [B])."""
    return gaussian_component(x_ctx, y_ctx, jnp.ones(x_ctx.shape[2], x_ctx.dtype), weight_std, noise_std)


def sparse_posterior(x_ctx, y_ctx, k: int, weight_std: float, noise_std: float) -> dict:
    """The sparse component, exactly, by summing over the C(d, k) supports: {"w": posterior mean
    [B, d], "log_ml": log marginal likelihood [B], "p_support": P(S | X, y) [B, C], "supports": [C, d]}."""
    masks = supports(x_ctx.shape[2], k)
    parts = [gaussian_component(x_ctx, y_ctx, m, weight_std, noise_std) for m in masks]
    w_s = jnp.stack([w for w, _ in parts], axis=1)  # [B, C, d]
    log_l = jnp.stack([lml for _, lml in parts], axis=1)  # [B, C]
    p = jax.nn.softmax(log_l, axis=1)
    log_ml = jax.scipy.special.logsumexp(log_l, axis=1) - math.log(len(masks))
    return {"w": jnp.einsum("bc,bcd->bd", p, w_s), "log_ml": log_ml, "p_support": p, "supports": masks}


def mixture_posterior(x_ctx, y_ctx, p_dense: float, k: int, weight_std: float, noise_std: float) -> dict:
    """The mixture's posterior: {"w": E[w | X, y] [B, d], "p_dense": P(dense | X, y) [B],
    "w_dense": ridge's [B, d], "w_sparse": the sparse prior's [B, d]} (0 < p_dense < 1, or the
    limits 0 / 1, which give the single priors)."""
    w_d, lml_d = dense_posterior(x_ctx, y_ctx, weight_std, noise_std)
    sp = sparse_posterior(x_ctx, y_ctx, k, weight_std, noise_std)
    if p_dense >= 1.0:
        post = jnp.ones_like(lml_d)
    elif p_dense <= 0.0:
        post = jnp.zeros_like(lml_d)
    else:
        post = jax.nn.sigmoid(math.log(p_dense) - math.log1p(-p_dense) + lml_d - sp["log_ml"])
    w = post[:, None] * w_d + (1.0 - post[:, None]) * sp["w"]
    return {"w": w, "p_dense": post, "w_dense": w_d, "w_sparse": sp["w"]}


def predictors(batch, p_dense: float, k: int, weight_std: float, noise_std: float) -> dict:
    """The three Bayes predictors on `batch`'s queries, [B, M] each: "mixture" (Bayes-optimal for
    the mixture), "ridge" (the dense prior's, lam = sigma^2 / tau^2), "sparse" (the sparse prior's);
    and "p_dense" [B], the posterior probability of the dense prior."""
    post = mixture_posterior(batch.x_ctx, batch.y_ctx, p_dense, k, weight_std, noise_std)

    def at(w):
        return jnp.einsum("bmd,bd->bm", batch.x_query, w)

    return {"mixture": at(post["w"]), "ridge": at(post["w_dense"]), "sparse": at(post["w_sparse"]),
            "p_dense": post["p_dense"]}


def evaluate(config, params, test_sets: dict, p_dense: float, k: int, weight_std: float, noise_std: float) -> dict:
    """Per test set (name -> Batch): MSE of the model (per seed) and of the three predictors, the
    model's dPM to each predictor, the predictors' dPMs to each other, the mean P(dense | context),
    and per seed the margin ln min(dPM(ridge), dPM(sparse)) - ln dPM(mixture) (> 0: the model is
    closer to the mixture's Bayes predictor than to either single-prior one)."""
    out = {}
    for name, batch in test_sets.items():
        y_model = model_predictions(config, params, batch)  # [S, B, M]
        pred = predictors(batch, p_dense, k, weight_std, noise_std)
        row = {"n_tasks": int(batch.batch_size), "model_mse": runs.stats(mse(y_model, batch.y_query[None])),
               "zero_mse": float(mse(jnp.zeros_like(batch.y_query), batch.y_query)),
               "p_dense_posterior": float(jnp.mean(pred["p_dense"]))}
        for kind in ("mixture", "ridge", "sparse"):
            row[f"{kind}_mse"] = float(mse(pred[kind], batch.y_query))
            row[f"dpm_{kind}"] = runs.stats(delta_pm(y_model, pred[kind][None]))
        row["dpm_mixture_ridge"] = float(delta_pm(pred["mixture"], pred["ridge"]))
        row["dpm_mixture_sparse"] = float(delta_pm(pred["mixture"], pred["sparse"]))
        nearest_single = np.minimum(row["dpm_ridge"]["values"], row["dpm_sparse"]["values"])
        row["margin"] = runs.stats(np.log(nearest_single) - np.log(row["dpm_mixture"]["values"]))
        out[name] = row
    return out


def test_sets(config, task, n_tasks: int) -> dict:
    """Held-out dense tasks (p_dense = 1; HeldOut.FINAL), sparse tasks (p_dense = 0; HeldOut.EXTRA)
    and mixture tasks (the training prior; HeldOut.EVAL's path, folded with 1) of `task`'s shape."""

    dense = dataclasses.replace(task, p_dense=1.0).sample(train.heldout_key(config, train.HeldOut.FINAL), n_tasks)
    sparse = dataclasses.replace(task, p_dense=0.0).sample(train.heldout_key(config, train.HeldOut.EXTRA), n_tasks)
    mixed = task.sample(jax.random.fold_in(train.heldout_key(config, train.HeldOut.EVAL), 1), n_tasks)
    return {"dense": dense, "sparse": sparse, "mixture": mixed}
