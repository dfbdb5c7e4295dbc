"""Every solver on every prefix of the context, and the error-vs-context-length curve.

`prefix_predictions(solver, x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d])` -> [B, N, M]: entry
[:, n - 1] is the prediction from the first n context examples only, for n = 1..N, exactly
(`tests/test_baselines.py` holds every registered solver to one call per prefix; a model with an
MLP embedding is held to its own truncated contexts in float64).

How a predictor sees only a prefix (`prefix_mode`):
  * "mask": it takes `mask` (1 = example present; icl/solvers/baselines.py): it gets the mask and
    ignores the absent examples. The N prefixes are N masks vmapped over: one program, no Python
    loop over N, so it compiles once;
  * "zeros" / "zeros_lr": it is declared exact on zero-padded contexts (`zero_padding_exact`; the
    solvers of icl/solvers/linear.py): X^T X, X^T y and the residuals are unchanged by zero rows,
    so least squares, ridge, Bayes ridge, Newton–Schulz and preconditioned GD predict from the
    prefix when the absent examples are zeroed; GD and GD++ ("zeros_lr") average over N, so their
    `lr` is rescaled by N / n (the 1/N of L(W) = 1/(2N) sum_i ... becomes 1/n for a prefix of n
    examples). One vmapped program too;
  * "truncate": anything else, e.g. a model's `predict` (a zero example is not an absent one once
    an MLP embeds it, or under softmax attention) or a new solver that takes no mask: it is run on
    each truncated context x_ctx[:, :n], y_ctx[:, :n], one call per prefix length (N calls, N
    shapes). Exact for every predictor; to get the one-program path, take `mask` or declare
    `zero_padding_exact`.
A solver on a feature map (`features.on_features`, spec `"least_squares(features=square)"`) maps
the inputs first and then follows its solver's mode (the map acts on each example alone); a
`functools.partial` with keyword hyper-parameters (`compare.solver_predictor`'s predictors) follows
its function's mode with those hyper-parameters (so GD's bound `lr` is rescaled too).

`error_curve` turns the predictions into the paper's loss 0.5 (y_hat - y)^2 per prefix length, with
a percentile-bootstrap confidence band over tasks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl.checks import check_int
from icl.precision import highest
from icl.tasks.base import check_inputs

MODES = ("mask", "zeros", "zeros_lr", "truncate")


def _accepts_mask(fn: Callable) -> bool:
    try:
        return "mask" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return False


def zero_padding_exact(fn: Callable, lr_per_example: bool = False) -> Callable:
    """Declare that `fn(x_ctx, y_ctx, x_query, **hparams)` predicts from the present examples when
    the absent ones are zeroed (x_i = 0, y_i = 0), so `prefix_predictions` may evaluate every
    prefix in one vmapped program. `lr_per_example`: its `lr` multiplies a mean over the N
    examples (GD's 1/N), so a prefix of n examples gets lr * N / n. Returns fn (marked)."""
    fn.prefix_padding = ("zeros_lr" if lr_per_example else "zeros", fn)  # (mode, whom it was declared for)
    return fn


def prefix_mode(fn: Callable) -> str:
    """How `prefix_predictions` shows `fn` a prefix (module docstring): "mask" if it takes `mask`,
    "zeros" / "zeros_lr" if declared by `zero_padding_exact`, else "truncate"."""
    if _accepts_mask(fn):
        return "mask"
    mode, declared_for = getattr(fn, "prefix_padding", ("truncate", fn))
    # a wrapper made with functools.wraps copies the mark but is another function: it is truncated
    return mode if declared_for is fn else "truncate"


def prefix_masks(n_ctx: int, dtype=jnp.float32) -> jax.Array:
    """[N, N] masks; row n - 1 keeps the first n context examples."""
    return (jnp.arange(n_ctx)[None, :] < jnp.arange(1, n_ctx + 1)[:, None]).astype(dtype)


def fixed_scale_prefixes(solver: Callable, x, y, lr: float, n_ref: int, **hparams) -> jax.Array:
    """x [B, T, d], y [B, T] -> [B, T]: position t (0-based) predicted by `solver` (a predict
    function taking `lr`) from the t pairs before it at rate lr t / n_ref, 0 at t = 0. With
    `solvers.gd(steps=1)` (or `weighted_gd`) this is what a causal layer with the fixed output
    scale lr / n_ref computes on every prefix (`icl.models.linear_attention`, "Construction"):
    the sum over the t pairs, not their mean."""
    return jnp.stack([jnp.zeros_like(y[:, 0])] + [
        solver(x[:, :k], y[:, :k], x[:, k], lr=lr * k / n_ref, **hparams) for k in range(1, x.shape[1])], axis=1)


@highest
def prefix_predictions(solver: str | Callable, x_ctx, y_ctx, x_query, **hparams) -> jax.Array:
    """The predictions from each prefix of n = 1..N context examples: [B, N, M] ([B, N] for a
    single query x_query [B, d]). `solver` is a name or spec (`"ridge(lam=0.1)"`,
    `"least_squares(features=square)"`, see `solvers.parse_spec`) or a predict function (a
    solver, a model's `predict`); `hparams` are passed on (a spec's come first)."""
    from icl import solvers  # the package imports this module

    if isinstance(solver, str):
        name, spec_hparams = solvers.parse_spec(solver)
        hparams = {**spec_hparams, **hparams}
        fn = solvers.get(name, features=hparams.pop("features", None))
    else:
        fn = solver
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    while True:  # see through what binds hyper-parameters or maps features, to the solver's own mode
        if isinstance(fn, functools.partial) and not fn.args:  # e.g. compare.solver_predictor's
            fn, hparams = fn.func, {**fn.keywords, **hparams}
        elif getattr(fn, "features_declared_for", None) is fn:  # a solver on features: map, then its solver
            x_ctx, x_query, fn = fn.feature_map(x_ctx), fn.feature_map(x_query), fn.solver
        else:
            break
    mode = prefix_mode(fn)
    if mode not in MODES:
        raise ValueError(f"prefix_predictions: {fn!r} declares prefix_padding={mode!r}; expected one of {MODES}")
    if mode == "truncate":
        out = jnp.stack([fn(x_ctx[:, :n], y_ctx[:, :n], x_query, **hparams) for n in range(1, x_ctx.shape[1] + 1)], 1)
    else:
        out = _vmapped_prefixes(fn, mode, x_ctx, y_ctx, x_query, hparams)
    return out[..., 0] if squeeze else out


def _vmapped_prefixes(fn, mode: str, x_ctx, y_ctx, x_query, hparams: dict) -> jax.Array:
    """[B, N, M]: every prefix in one program, by mask ("mask") or by zeroed examples ("zeros",
    "zeros_lr": lr * N / n)."""
    b, n_ctx, _ = x_ctx.shape

    def one_prefix(mask_row, n):  # [N], () -> [B, M]
        mask = jnp.broadcast_to(mask_row[None, :], (b, n_ctx))  # [B, N]
        kwargs = dict(hparams)
        if mode == "mask":
            kwargs["mask"] = mask
        elif mode == "zeros_lr" and "lr" in kwargs:
            kwargs["lr"] = kwargs["lr"] * n_ctx / n
        return fn(x_ctx * mask[:, :, None], y_ctx * mask, x_query, **kwargs)

    counts = jnp.arange(1, n_ctx + 1).astype(x_ctx.dtype)
    out = jax.vmap(one_prefix)(prefix_masks(n_ctx, x_ctx.dtype), counts)  # [N, B, M]
    return jnp.moveaxis(out, 0, 1)  # [B, N, M]


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
