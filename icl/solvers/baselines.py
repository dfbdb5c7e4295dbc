"""Baselines of the in-context-learning literature, behind the solvers' batched, jittable interface

    predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] or [B, d], *, mask=None, **hparams)
        -> [B, M] or [B]

Every function here also takes an optional `mask` [B, N] (1 = a real context example, 0 = absent),
so `solvers.prefix_predictions` can evaluate it on every prefix of the context at once. Absent
examples change nothing: each learner sees exactly the examples with mask 1, and `n` below is
their number.

  lasso                 min_w 1/2 ||X w - y||^2 + alpha ||w||_1 by FISTA (Beck & Teboulle 2009)
                        or ISTA until a KKT test passes (Garg et al. 2022, sparse regression)
  logistic_regression   min_w sum_i log(1 + exp(-y_i w.x_i)) + lam/2 ||w||^2 by Newton steps,
                        predicting the expected label E[y] = 2 sigmoid(w.x_q) - 1
  kernel_ridge          RBF kernel ridge regression, k(x, x') = exp(-||x - x'||^2 / (2 h^2))
  knn                   mean label of the k nearest context inputs (Garg et al. 2022 use k = 3)
  averaging             w = (1/n) sum_i y_i x_i, y_hat = w . x_q (Garg et al. 2022; one GD step, lr 1)
  mean_label            y_hat = (1/n) sum_i y_i
  dmmse                 the posterior mean over a finite pool of tasks (Raventos et al. 2023)

Shapes: B tasks, N context examples, M queries, d input dimension, K pool size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from icl.checks import check_int, check_number
from icl.precision import highest
from icl.tasks.base import check_inputs


def _prepare(x_ctx, y_ctx, x_query, mask):
    """Validated inputs and the mask as a [B, N] float array (all ones when None). The numerical
    cores below are jitted (static sizes and counts), so eager calls compile once per shape."""
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    if mask is None:
        mask = jnp.ones(y_ctx.shape, x_ctx.dtype)
    mask = jnp.asarray(mask, x_ctx.dtype)
    if mask.shape != y_ctx.shape:
        raise ValueError(f"mask must be [batch, n_ctx] = {y_ctx.shape}, got {mask.shape}")
    return x_ctx, y_ctx, x_query, mask, squeeze


def _zero_absent(x_ctx, y_ctx, mask):
    return x_ctx * mask[:, :, None], y_ctx * mask


def _finish(y_hat: jax.Array, squeeze: bool) -> jax.Array:
    return y_hat[:, 0] if squeeze else y_hat


_check_count = functools.partial(check_int, minimum=1)
_check_positive = functools.partial(check_number, positive=True)  # finite and > 0 (Python / NumPy numbers)


def _count(mask: jax.Array) -> jax.Array:
    """n, the number of present examples per task: [B, 1] (at least 1, to avoid 0/0)."""
    return jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1.0)


# -- sparse linear regression -----------------------------------------------------------------------
def soft_threshold(v: jax.Array, t) -> jax.Array:
    """The proximal map of t ||.||_1: sign(v) max(|v| - t, 0)."""
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - t, 0.0)


@highest
@functools.partial(jax.jit, static_argnames=("steps", "method", "return_info"))
def lasso_weights(x_ctx, y_ctx, alpha, steps: int = 10000, method: str = "fista", tol=None, return_info: bool = False):
    """argmin_w 1/2 ||X w - y||^2 + alpha ||w||_1 by proximal gradient, per task until converged: [B, d].

    Step 1/L with L = lambda_max(X^T X), the gradient's Lipschitz constant, from w = 0. ISTA:
    w <- S(w - X^T (X w - y) / L, alpha / L). FISTA adds Nesterov momentum (Beck & Teboulle 2009):
    w_k = S(z_k - grad(z_k) / L), t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
    z_{k+1} = w_k + (t_k - 1) / t_{k+1} (w_k - w_{k-1}), restarted (t_k = 1) whenever the step
    turns against the momentum, (z_k - w_k) . (w_k - w_{k-1}) > 0 (O'Donoghue & Candes 2015), so
    it converges linearly on the ill-conditioned tasks that N < d gives. alpha is on the
    unnormalised squared error, like ridge's lam.

    Stopping: every 50 iterations each task's iterate w and its *polished* form, the exact minimiser
    on w's support and signs, w_S = (X_S^T X_S)^-1 (X_S^T y - alpha sign w_S), are tested. A task
    stops once one of them has a KKT residual (the largest entry of the minimum-norm subgradient:
    |g_j + alpha sign w_j| on the support, max(|g_j| - alpha, 0) off it, g = X^T (X w - y)) of at
    most tol * max_j |X^T y|_j, and returns it (the polished one when both pass: it is exact up to
    rounding). Default tol = max(1e-10, 8 eps): 1e-10 in float64, 9.5e-7 in float32 (a few
    roundings of g). `steps` is the iteration budget (rounded up to a multiple of min(steps, 50));
    a task that has not passed by then returns its last iterate. `return_info=True` returns
    (w, info): info["converged"] [B] bool (False where the budget ran out first;
    `(~info["converged"]).sum()` counts those tasks), info["steps"] [B] the iterations used and
    info["residual"] [B] the returned w's KKT residual. tol=0 runs exactly the budget's iterations.
    """
    if method not in ("fista", "ista"):
        raise ValueError(f"lasso: method must be 'fista' or 'ista', got {method!r}")
    _check_count("lasso", steps=steps)
    b, _, d = x_ctx.shape
    tol = max(1e-10, 8 * float(jnp.finfo(x_ctx.dtype).eps)) if tol is None else tol
    chunk = min(steps, 50)  # iterations between convergence tests
    gram = jnp.einsum("bnd,bne->bde", x_ctx, x_ctx)  # [B, d, d]
    xty = jnp.einsum("bnd,bn->bd", x_ctx, y_ctx)  # [B, d]
    lipschitz = jnp.linalg.eigvalsh(gram)[:, -1:]  # [B, 1]
    inv_l = jnp.where(lipschitz > 0, 1.0 / jnp.where(lipschitz > 0, lipschitz, 1.0), 0.0)
    threshold = tol * jnp.max(jnp.abs(xty), axis=1)  # [B]
    eye = jnp.eye(d, dtype=x_ctx.dtype)[None]  # [1, d, d]

    def grad(w):  # [B, d]
        return jnp.einsum("bde,be->bd", gram, w) - xty

    def residual(w):  # the KKT residual [B]; inf where w is not finite
        g = grad(w)
        r = jnp.where(w != 0, jnp.abs(g + alpha * jnp.sign(w)), jnp.maximum(jnp.abs(g) - alpha, 0.0))
        return jnp.where(jnp.all(jnp.isfinite(w), axis=1), jnp.max(r, axis=1), jnp.inf)

    def polish(w):  # the exact minimiser on w's support and signs (not finite if G_SS is singular)
        on = (w != 0).astype(w.dtype)
        g_ss = on[:, :, None] * gram * on[:, None, :] + eye * (1.0 - on)[:, None, :]
        return on * jnp.linalg.solve(g_ss, (on * (xty - alpha * jnp.sign(w)))[..., None])[..., 0]

    def step(_, carry):
        w, z, t = carry
        w_new = soft_threshold(z - inv_l * grad(z), alpha * inv_l)
        if method == "ista":
            return w_new, w_new, t
        t = jnp.where(jnp.sum((z - w_new) * (w_new - w), axis=1, keepdims=True) > 0, 1.0, t)  # restart
        t_new = (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)) / 2.0
        return w_new, w_new + ((t - 1.0) / t_new) * (w_new - w), t_new

    def body(carry):
        k, w, z, t, out, res, done, used = carry  # out, res: the answer and its residual
        w, z, t = jax.lax.fori_loop(0, chunk, step, (w, z, t))
        p = polish(w)
        res_w, res_p = residual(w), residual(p)
        use_p = (res_p <= threshold) & (res_p < res_w) & (threshold > 0)
        new, res_new = jnp.where(use_p[:, None], p, w), jnp.where(use_p, res_p, res_w)
        return (k + chunk, w, z, t, jnp.where(done[:, None], out, new), jnp.where(done, res, res_new),
                done | (res_new <= threshold), jnp.where(done, used, k + chunk))

    w0 = jnp.zeros((b, d), x_ctx.dtype)
    res0 = residual(w0)
    init = (0, w0, w0, jnp.ones((b, 1), x_ctx.dtype), w0, res0, res0 <= threshold, jnp.zeros(b, jnp.int32))
    *_, w, res, done, used = jax.lax.while_loop(lambda c: (c[0] < steps) & ~jnp.all(c[6]), body, init)
    return (w, {"converged": done, "steps": used, "residual": res}) if return_info else w


@highest
def lasso(x_ctx, y_ctx, x_query, alpha, steps: int = 10000, method: str = "fista", tol=None, mask=None) -> jax.Array:
    """Lasso, `w = argmin 1/2 ||X w - y||^2 + alpha ||w||_1` (see `lasso_weights`: iterations until
    the KKT residual is below tol, at most `steps`; its `return_info` counts unconverged tasks),
    then w . x_q."""
    _check_positive("lasso", alpha=alpha)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    w = lasso_weights(*_zero_absent(x_ctx, y_ctx, mask), alpha, steps=steps, method=method, tol=tol)
    return _finish(jnp.einsum("bmd,bd->bm", x_query, w), squeeze)


# -- linear classification --------------------------------------------------------------------------
@highest
@functools.partial(jax.jit, static_argnames=("steps",))
def logistic_weights(x_ctx, y_ctx, lam, steps: int = 25, mask=None) -> jax.Array:
    """argmin_w sum_i m_i log(1 + exp(-y_i w.x_i)) + lam/2 ||w||^2 by `steps` Newton steps: [B, d].

    Gradient g = -sum_i m_i y_i sigmoid(-y_i z_i) x_i + lam w and Hessian
    H = sum_i m_i s_i (1 - s_i) x_i x_i^T + lam I with z_i = w.x_i, s_i = sigmoid(z_i). Each step
    is damped, w <- w - t H^{-1} g with the largest t in {1, 1/2, ..., 2^-9} that does not raise
    the objective (all ten candidates are evaluated at once, so it stays one fixed-shape program),
    and full (t = 1) once the Newton decrement g^T H^{-1} g is below sqrt(eps) times the
    objective, where rounding hides the decrease (float64: |g| reaches ~1e-16 of its scale).
    For labels in {-1, +1} this is the MAP estimate under the prior w ~ N(0, I / lam); lam > 0
    keeps it finite when the context is linearly separable.
    """
    _check_count("logistic_regression", steps=steps)
    b, n, d = x_ctx.shape
    m = jnp.ones((b, n), x_ctx.dtype) if mask is None else mask
    x_ctx, y_ctx = _zero_absent(x_ctx, y_ctx, m)
    eye = jnp.eye(d, dtype=x_ctx.dtype)[None]  # [1, d, d]
    step_sizes = 2.0 ** -jnp.arange(10, dtype=x_ctx.dtype)  # [T]

    def objective(w):  # w [T, B, d] -> [T, B]
        z = jnp.einsum("bnd,tbd->tbn", x_ctx, w)
        loss = jnp.sum(m[None] * jnp.logaddexp(0.0, -y_ctx[None] * z), axis=-1)
        return loss + 0.5 * lam * jnp.sum(w * w, axis=-1)

    def newton_step(_, w):  # [B, d]
        z = jnp.einsum("bnd,bd->bn", x_ctx, w)
        s = jax.nn.sigmoid(z)
        grad = -jnp.einsum("bn,bnd->bd", m * y_ctx * jax.nn.sigmoid(-y_ctx * z), x_ctx) + lam * w
        hess = jnp.einsum("bn,bnd,bne->bde", m * s * (1.0 - s), x_ctx, x_ctx) + lam * eye
        direction = jnp.linalg.solve(hess, grad[:, :, None])[:, :, 0]  # [B, d]
        candidates = w[None] - step_sizes[:, None, None] * direction[None]  # [T, B, d]
        f0 = objective(w[None])  # [1, B]
        ok = objective(candidates) <= f0  # [T, B]
        # Near the optimum the decrease g^T H^-1 g / 2 drops below the objective's rounding, every
        # candidate looks no better and w would stall (|g| ~ 1e-8 in float64); there, well inside
        # Newton's quadratic-convergence region, take the full step.
        unresolved = jnp.sum(grad * direction, axis=-1) <= jnp.sqrt(jnp.finfo(x_ctx.dtype).eps) * f0[0]
        ok = ok.at[0].set(ok[0] | unresolved)
        first = jnp.argmax(ok, axis=0)  # the largest step that does not increase the objective
        chosen = jnp.take_along_axis(candidates, first[None, :, None], axis=0)[0]
        return jnp.where(jnp.any(ok, axis=0)[:, None], chosen, w)

    return jax.lax.fori_loop(0, steps, newton_step, jnp.zeros((b, d), x_ctx.dtype))


@highest
def logistic_regression(x_ctx, y_ctx, x_query, lam=1.0, steps: int = 25, mask=None) -> jax.Array:
    """L2-regularised logistic regression on labels in {-1, +1} (see `logistic_weights`).

    Predicts the expected label under the fitted model, E[y | x_q] = 2 sigmoid(w.x_q) - 1
    = tanh(w.x_q / 2): the squared-loss prediction, comparable with the regression learners.
    """
    _check_positive("logistic_regression", lam=lam)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    w = logistic_weights(x_ctx, y_ctx, lam, steps=steps, mask=mask)
    return _finish(jnp.tanh(0.5 * jnp.einsum("bmd,bd->bm", x_query, w)), squeeze)


# -- non-parametric learners ------------------------------------------------------------------------
def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
    """||a_i - b_j||^2 for a [B, P, d], b [B, Q, d]: [B, P, Q] (exact differences, not the
    expanded a^2 - 2ab + b^2, which cancels badly for near points)."""
    diff = a[:, :, None, :] - b[:, None, :, :]  # [B, P, Q, d]
    return jnp.sum(diff * diff, axis=-1)


@highest
def kernel_ridge(x_ctx, y_ctx, x_query, bandwidth=1.0, lam=1e-3, mask=None) -> jax.Array:
    """RBF kernel ridge regression: alpha = (K + lam I)^{-1} y, y_hat = sum_i k(x_q, x_i) alpha_i,
    with k(x, x') = exp(-||x - x'||^2 / (2 bandwidth^2)) (the posterior mean of a Gaussian process
    with that kernel and noise variance lam).

    Absent examples get the row and column of the identity and label 0, so their alpha is 0.
    """
    _check_positive("kernel_ridge", bandwidth=bandwidth, lam=lam)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    return _finish(_kernel_ridge(x_ctx, y_ctx, x_query, mask, bandwidth, lam), squeeze)


@jax.jit
def _kernel_ridge(x_ctx, y_ctx, x_query, mask, bandwidth, lam):  # -> [B, M]
    x_ctx, y_ctx = _zero_absent(x_ctx, y_ctx, mask)
    scale = -0.5 / (bandwidth * bandwidth)
    pair = mask[:, :, None] * mask[:, None, :]  # [B, N, N]
    eye = jnp.eye(x_ctx.shape[1], dtype=x_ctx.dtype)[None]
    gram = pair * jnp.exp(scale * _sq_dists(x_ctx, x_ctx)) + eye * jnp.where(mask > 0, lam, 1.0)[:, :, None]
    alpha = jnp.linalg.solve(gram, y_ctx[:, :, None])[:, :, 0]  # [B, N]
    k_query = jnp.exp(scale * _sq_dists(x_query, x_ctx)) * mask[:, None, :]  # [B, M, N]
    return jnp.einsum("bmn,bn->bm", k_query, alpha)


def knn(x_ctx, y_ctx, x_query, k: int = 3, mask=None) -> jax.Array:
    """Mean label of the k context inputs nearest to x_q (Euclidean); of all n when n < k.

    Ties in distance go to the earlier context example.
    """
    _check_count("knn", k=k)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    return _finish(_knn(x_ctx, y_ctx, x_query, mask, min(k, x_ctx.shape[1])), squeeze)


@functools.partial(jax.jit, static_argnames=("k",))
def _knn(x_ctx, y_ctx, x_query, mask, k):  # -> [B, M]
    dist = jnp.where(mask[:, None, :] > 0, _sq_dists(x_query, x_ctx), jnp.inf)  # [B, M, N]
    neg, idx = jax.lax.top_k(-dist, k)  # [B, M, k]
    labels = jnp.take_along_axis(jnp.broadcast_to(y_ctx[:, None, :], dist.shape), idx, axis=-1)
    present = jnp.isfinite(neg).astype(x_ctx.dtype)
    return jnp.sum(labels * present, -1) / jnp.maximum(jnp.sum(present, -1), 1.0)


@highest
def averaging(x_ctx, y_ctx, x_query, mask=None) -> jax.Array:
    """The averaging estimator of Garg et al. (2022): w = (1/n) sum_i y_i x_i, y_hat = w . x_q.

    It is one GD step from 0 with lr = 1 in the paper's convention (unbiased for w when
    E[x x^T] = I).
    """
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    w = jnp.einsum("bnd,bn->bd", x_ctx, y_ctx * mask) / _count(mask)  # [B, d]
    return _finish(jnp.einsum("bmd,bd->bm", x_query, w), squeeze)


def mean_label(x_ctx, y_ctx, x_query, mask=None) -> jax.Array:
    """The context's mean label, y_hat = (1/n) sum_i y_i, whatever the query."""
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    mean = jnp.sum(y_ctx * mask, axis=1, keepdims=True) / _count(mask)  # [B, 1]
    return _finish(jnp.broadcast_to(mean, x_query.shape[:2]), squeeze)


# -- finite task pools ------------------------------------------------------------------------------
@highest
def dmmse_posterior(x_ctx, y_ctx, pool, noise_std, mask=None) -> jax.Array:
    """p(w = w_k | context) for a uniform prior over the pool's K tasks: [B, K].

    With Gaussian label noise the likelihood of task k is prod_i N(y_i; w_k . x_i, sigma^2), so
    p_k = softmax_k(-sum_i m_i (y_i - w_k . x_i)^2 / (2 sigma^2)).
    """
    pool = jnp.asarray(pool, x_ctx.dtype)  # [K, d]
    if pool.ndim != 2 or pool.shape[1] != x_ctx.shape[2]:
        raise ValueError(f"dmmse: pool must be [n_tasks, d] with d={x_ctx.shape[2]}, got {pool.shape}")
    m = jnp.ones(y_ctx.shape, x_ctx.dtype) if mask is None else mask
    residual = y_ctx[:, None, :] - jnp.einsum("bnd,kd->bkn", x_ctx, pool)  # [B, K, N]
    sq = jnp.sum(m[:, None, :] * residual * residual, axis=-1)  # [B, K]
    return jax.nn.softmax(-sq / (2.0 * noise_std * noise_std), axis=-1)


@highest
def dmmse(x_ctx, y_ctx, x_query, pool, noise_std, mask=None) -> jax.Array:
    """The discrete minimum-mean-squared-error estimator (Raventos et al. 2023): the posterior mean
    y_hat = sum_k p(w_k | context) w_k . x_q over a pool [K, d] of equally likely tasks (see
    `dmmse_posterior`). It is the Bayes-optimal prediction when tasks are drawn from the pool and
    noise_std is the label noise; it needs noise_std > 0.
    """
    _check_positive("dmmse", noise_std=noise_std)
    x_ctx, y_ctx, x_query, mask, squeeze = _prepare(x_ctx, y_ctx, x_query, mask)
    pool = jnp.asarray(pool, x_ctx.dtype)
    if pool.ndim != 2 or pool.shape[1] != x_ctx.shape[2]:
        raise ValueError(f"dmmse: pool must be [n_tasks, d] with d={x_ctx.shape[2]}, got {pool.shape}")
    return _finish(_dmmse(x_ctx, y_ctx, x_query, pool, noise_std, mask), squeeze)


@jax.jit
def _dmmse(x_ctx, y_ctx, x_query, pool, noise_std, mask):  # -> [B, M]
    post = dmmse_posterior(x_ctx, y_ctx, pool, noise_std, mask)  # [B, K]
    per_task = jnp.einsum("bmd,kd->bmk", x_query, pool)  # [B, M, K]
    return jnp.einsum("bk,bmk->bm", post, per_task)
