"""Explicit in-context learners for linear regression, all with one batched, jittable interface:

    predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] or [B, d], **hparams) -> [B, M] or [B]

Step-size convention (von Oswald et al. 2023): `L(W) = 1/(2N) sum_i (W x_i - y_i)^2` and
`W <- W - lr * grad L(W)`, so one step from W0 = 0 predicts `(lr / N) sum_i y_i x_i . x_q`.
Every solver takes this `lr`, never `lr / N`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl.checks import check_int, check_number
from icl.precision import highest
from icl.tasks.base import check_inputs


def _finish(y_hat: jax.Array, squeeze: bool) -> jax.Array:
    return y_hat[:, 0] if squeeze else y_hat


def _check_steps(steps) -> int:
    check_int("solver", 0, steps=steps)
    return steps


def _predict_linear(w: jax.Array, x_query: jax.Array) -> jax.Array:
    return jnp.einsum("bmd,bd->bm", x_query, w)  # [B, M]


@highest
def gd_weights(x_ctx, y_ctx, lr, steps: int = 1, w0=None) -> jax.Array:
    """W after `steps` full-batch GD steps on L(W) = 1/(2N) ||X W - y||^2 from w0 ([d] or
    [B, d]; else a ValueError naming both shapes): [B, d]."""
    b, n, d = x_ctx.shape
    if w0 is not None and jnp.shape(w0) not in ((d,), (b, d)):
        raise ValueError(f"gd: w0 must be [d] = {(d,)} or [batch, d] = {(b, d)}, got shape {jnp.shape(w0)}")
    w_init = jnp.zeros((b, d), x_ctx.dtype) if w0 is None else jnp.broadcast_to(jnp.asarray(w0), (b, d))

    def step(_, w):  # w: [B, d]
        residual = jnp.einsum("bnd,bd->bn", x_ctx, w) - y_ctx  # [B, N]
        return w - (lr / n) * jnp.einsum("bnd,bn->bd", x_ctx, residual)

    return jax.lax.fori_loop(0, _check_steps(steps), step, w_init.astype(x_ctx.dtype))


@highest
def gd(x_ctx, y_ctx, x_query, lr, steps: int = 1, w0=None) -> jax.Array:
    """K = `steps` steps of gradient descent from w0 (default 0), then `W_K . x_q`.

    w0 may be [d] (shared) or [B, d] (per task).
    """
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    w = gd_weights(x_ctx, y_ctx, lr, steps, w0)
    return _finish(_predict_linear(w, x_query), squeeze)


@highest
def gd_plus_plus(x_ctx, y_ctx, x_query, lr, gamma, steps: int = 1) -> jax.Array:
    """GD++ (von Oswald et al. 2023, Sec. 3): GD on inputs that are preconditioned as it goes.

    Each step updates residual slots r (context, start y) and r_q (queries, start 0) and inputs
    simultaneously, exactly as the GD++ layer of `constructions.gd_plus_plus_model` does:
        r   <- r   - (lr / N) X X^T r          r_q <- r_q - (lr / N) X_q X^T r
        X   <- X (I - gamma X^T X)             X_q <- X_q (I - gamma X^T X)
    and predicts -r_q. With gamma = 0 it is K-step GD. (I - gamma X^T X) approximates a multiple
    of (X^T X)^{-1} on the data, so the steps are curvature-corrected.
    """
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    n = x_ctx.shape[1]

    def step(_, carry):
        x, r, xq, rq = carry  # [B, N, d], [B, N], [B, M, d], [B, M]
        gram = jnp.einsum("bnd,bmd->bnm", x, x)  # [B, N, N]
        cross = jnp.einsum("bqd,bnd->bqn", xq, x)  # [B, M, N]
        cov = jnp.einsum("bnd,bne->bde", x, x)  # [B, d, d]
        r_new = r - (lr / n) * jnp.einsum("bnm,bm->bn", gram, r)
        rq_new = rq - (lr / n) * jnp.einsum("bqn,bn->bq", cross, r)
        return x - gamma * x @ cov, r_new, xq - gamma * xq @ cov, rq_new

    init = (x_ctx, y_ctx, x_query, jnp.zeros(x_query.shape[:2], x_ctx.dtype))
    *_, rq = jax.lax.fori_loop(0, _check_steps(steps), step, init)
    return _finish(-rq, squeeze)


@highest
def preconditioned_gd(x_ctx, y_ctx, x_query, gamma_matrix) -> jax.Array:
    """One preconditioned step from 0: `y_hat = x_q^T Gamma X^T y` (Gamma [d, d] or [B, d, d]).

    One GD step with rate lr is Gamma = (lr / N) I. The optimal one-layer LSA is this with
    Gamma* (see `gamma_star`).
    """
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    gamma_matrix = jnp.asarray(gamma_matrix, x_ctx.dtype)
    d = x_ctx.shape[2]
    if gamma_matrix.shape[-2:] != (d, d) or gamma_matrix.ndim not in (2, 3):
        raise ValueError(f"gamma_matrix must be [d, d] or [batch, d, d] with d={d}, got {gamma_matrix.shape}")
    xty = jnp.einsum("bnd,bn->bd", x_ctx, y_ctx)  # [B, d]
    w = jnp.einsum("...de,be->bd", gamma_matrix, xty)
    return _finish(_predict_linear(w, x_query), squeeze)


@highest
def ridge_weights(x_ctx, y_ctx, lam) -> jax.Array:
    """argmin_w ||X w - y||^2 + lam ||w||^2 by SVD: [B, d]. lam = 0 gives the min-norm solution.

    Singular values below `max(N, d) * eps * s_max` count as zero (as `lstsq`), so N < d and
    rank-deficient contexts are handled, and float32 stays finite where the normal equations
    would not.
    """
    check_number("ridge", lam=lam)
    u, s, vt = jnp.linalg.svd(x_ctx, full_matrices=False)  # [B,N,r], [B,r], [B,r,d]
    cutoff = max(x_ctx.shape[1:]) * jnp.finfo(x_ctx.dtype).eps * s[:, :1]
    keep = s > cutoff
    coef = jnp.where(keep, s / jnp.where(keep, s**2 + lam, 1.0), 0.0)  # [B, r]
    uty = jnp.einsum("bnr,bn->br", u, y_ctx)
    return jnp.einsum("brd,br->bd", vt, coef * uty)


@highest
def ridge(x_ctx, y_ctx, x_query, lam) -> jax.Array:
    """Ridge regression, `w = (X^T X + lam I)^{-1} X^T y` (lam on the unnormalised X^T X)."""
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    return _finish(_predict_linear(ridge_weights(x_ctx, y_ctx, lam), x_query), squeeze)


def least_squares(x_ctx, y_ctx, x_query) -> jax.Array:
    """Least squares, the minimum-norm solution when N < d (ridge with lam = 0, by SVD)."""
    return ridge(x_ctx, y_ctx, x_query, 0.0)


def bayes_ridge(x_ctx, y_ctx, x_query, noise_std, weight_std=1.0) -> jax.Array:
    """The posterior mean for w ~ N(0, tau^2 I), eps ~ N(0, sigma^2): ridge with lam = sigma^2/tau^2.

    This is the Bayes-optimal prediction under squared loss for the linear family with Gaussian
    weights (for any input distribution); noise_std = 0 gives min-norm least squares.
    """
    check_number("bayes_ridge", noise_std=noise_std)
    check_number("bayes_ridge", positive=True, weight_std=weight_std)
    return ridge(x_ctx, y_ctx, x_query, (noise_std / weight_std) ** 2)


@highest
def newton(x_ctx, y_ctx, x_query, steps: int = 10) -> jax.Array:
    """Newton–Schulz iterations for (X^T X)^+ (Fu et al. 2023), then `w = M_K X^T y`.

    S = X^T X, M_0 = S^T / ||S S^T||_F, M_{k+1} = M_k (2 I - S M_k). The Frobenius norm bounds the
    spectral one, so the eigenvalues of S M_0 lie in (0, 1] and the iteration converges
    quadratically to the pseudo-inverse (min-norm least squares when N < d).

    When S is singular, rounding errors in its null space double at every step; left alone they
    swamp the solution after ~50 steps in float64. A task therefore stops updating once its
    residual ||S M S - S||_F (which in exact arithmetic decreases monotonically) stops decreasing:
    converged tasks stay converged, and unconverged ones follow the iteration exactly.
    """
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    s = jnp.einsum("bnd,bne->bde", x_ctx, x_ctx)  # [B, d, d]
    s_st = s @ jnp.swapaxes(s, 1, 2)
    norm = jnp.sqrt(jnp.sum(s_st**2, axis=(1, 2), keepdims=True))
    m0 = jnp.swapaxes(s, 1, 2) / jnp.where(norm > 0, norm, 1.0)
    eye = jnp.eye(s.shape[-1], dtype=s.dtype)[None]  # [1, d, d]

    def residual(m):  # [B, 1, 1]
        return jnp.sqrt(jnp.sum((s @ m @ s - s) ** 2, axis=(1, 2), keepdims=True))

    def step(_, carry):
        m, r = carry
        m_new = m @ (2 * eye - s @ m)
        r_new = residual(m_new)
        improved = r_new < r
        return jnp.where(improved, m_new, m), jnp.where(improved, r_new, r)

    m, _ = jax.lax.fori_loop(0, _check_steps(steps), step, (m0, residual(m0)))
    w = jnp.einsum("bde,bn,bne->bd", m, y_ctx, x_ctx)
    return _finish(_predict_linear(w, x_query), squeeze)
