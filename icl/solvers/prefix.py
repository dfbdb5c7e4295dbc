"""Every solver on every prefix of the context at once, and the error-vs-context-length curve.

`prefix_predictions(solver, x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d])` -> [B, N, M]: entry
[:, n - 1] is the solver's prediction from the first n context examples only, for n = 1..N. It is
one program: the N prefixes are N masks vmapped over (no Python loop over N), so it compiles once.

How a solver sees only a prefix:
  * solvers that take `mask` (icl/solvers/baselines.py) get it, and ignore the absent examples;
  * the others (icl/solvers/linear.py) get the absent examples zeroed: X^T X, X^T y and the
    residuals are unchanged by zero rows, so least squares, ridge, Newton–Schulz, preconditioned GD
    are exact; GD and GD++ average over N, so their `lr` is rescaled by N / n (the 1/N of
    L(W) = 1/(2N) sum_i ... becomes 1/n for a prefix of n examples);
  * any other callable (e.g. a model's predict) gets zeroed examples: for linear self-attention a
    zero token contributes nothing to the attention sums.

`error_curve` turns the predictions into the paper's loss 0.5 (y_hat - y)^2 per prefix length, with
a percentile-bootstrap confidence band over tasks.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl.checks import check_int
from icl.precision import highest
from icl.tasks.base import check_inputs


def _accepts_mask(fn: Callable) -> bool:
    try:
        return "mask" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return False


def prefix_masks(n_ctx: int, dtype=jnp.float32) -> jax.Array:
    """[N, N] masks; row n - 1 keeps the first n context examples."""
    return (jnp.arange(n_ctx)[None, :] < jnp.arange(1, n_ctx + 1)[:, None]).astype(dtype)


@highest
def prefix_predictions(solver: str | Callable, x_ctx, y_ctx, x_query, **hparams) -> jax.Array:
    """The solver's predictions from each prefix of n = 1..N context examples: [B, N, M] ([B, N]
    for a single query x_query [B, d]). `solver` is a name or spec (`"ridge(lam=0.1)"`, see
    `solvers.parse_spec`) or a predict function; `hparams` are passed on (a spec's come first)."""
    from icl import solvers  # noqa: PLC0415  (the package imports this module)

    if isinstance(solver, str):
        name, spec_hparams = solvers.parse_spec(solver)
        fn, hparams = solvers.get(name), {**spec_hparams, **hparams}
    else:
        fn = solver
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    b, n_ctx, _ = x_ctx.shape
    use_mask = _accepts_mask(fn)

    def one_prefix(mask_row, n):  # [N], () -> [B, M]
        mask = jnp.broadcast_to(mask_row[None, :], (b, n_ctx))  # [B, N]
        kwargs = dict(hparams)
        if use_mask:
            kwargs["mask"] = mask
        elif "lr" in kwargs:
            kwargs["lr"] = kwargs["lr"] * n_ctx / n
        return fn(x_ctx * mask[:, :, None], y_ctx * mask, x_query, **kwargs)

    counts = jnp.arange(1, n_ctx + 1).astype(x_ctx.dtype)
    out = jax.vmap(one_prefix)(prefix_masks(n_ctx, x_ctx.dtype), counts)  # [N, B, M]
    out = jnp.moveaxis(out, 0, 1)  # [B, N, M]
    return out[..., 0] if squeeze else out


@highest
def bootstrap_band(errors, key: jax.Array, n_boot: int = 1000, level: float = 0.95) -> dict[str, np.ndarray]:
    """Mean over tasks of `errors` [B, ...] and its percentile-bootstrap band at `level`.

    Each of the n_boot resamples draws B tasks with replacement (from `key`); the band is the
    (1 - level)/2 and (1 + level)/2 quantiles of the resampled means. Returns numpy arrays
    {"mean", "low", "high"} of shape errors.shape[1:].
    """
    check_int("bootstrap_band", 2, n_boot=n_boot)
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_band: level must be in (0, 1), got {level!r}")
    errors = jnp.asarray(errors)
    flat = errors.reshape(errors.shape[0], -1)  # [B, P]
    mean, low, high = _bootstrap(flat, key, n_boot, float(level))
    shape = errors.shape[1:]
    return {"mean": np.asarray(mean).reshape(shape), "low": np.asarray(low).reshape(shape), "high": np.asarray(high).reshape(shape)}


@functools.partial(jax.jit, static_argnums=(2, 3))
def _bootstrap(flat, key, n_boot, level):  # [B, P] -> mean, low, high [P]
    b = flat.shape[0]
    idx = jax.random.randint(key, (n_boot, b), 0, b)
    counts = jnp.zeros((n_boot, b), flat.dtype).at[jnp.arange(n_boot)[:, None], idx].add(1.0)  # [R, B]
    means = counts @ flat / b  # [R, P] resampled means
    low, high = jnp.quantile(means, jnp.asarray([(1 - level) / 2, (1 + level) / 2]), axis=0)
    return jnp.mean(flat, axis=0), low, high


def error_curve(solver: str | Callable, batch, key: jax.Array, n_boot: int = 1000, level: float = 0.95, **hparams) -> dict:
    """Loss vs number of context examples: for n = 1..N the loss 0.5 mean_q (y_hat - y_q)^2 of
    `solver` given the first n examples, averaged over the batch's tasks, with a bootstrap band.

    Returns {"n": [N], "mean": [N], "low": [N], "high": [N]} (numpy).
    """
    preds = prefix_predictions(solver, batch.x_ctx, batch.y_ctx, batch.x_query, **hparams)  # [B, N, M]
    errors = 0.5 * jnp.mean((preds - batch.y_query[:, None, :]) ** 2, axis=-1)  # [B, N]
    band = bootstrap_band(errors, key, n_boot, level)
    return {"n": np.arange(1, errors.shape[1] + 1), **band}
