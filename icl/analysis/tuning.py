"""Tuning the hyper-parameters of explicit learners on held-out tuning (validation) tasks.

All losses are the paper's L(y_hat) = 0.5 mean (y_hat - y_q)^2 on a batch of tasks, and a
non-finite loss (a diverging step size) counts as +inf.

  minimise_1d        t* = argmin_{t in [lo, hi]} f(t): f on an n-point grid t_0..t_{n-1} (one vmapped
                     call), then golden-section search on the bracket [t_{i-1}, t_{i+1}] around the
                     best grid point t_i (each iteration keeps a fraction 1/phi = 0.618 of it).
  tune_gd            lr* of K-step GD from w = 0, w <- w - (lr / N) X^T (X w - y).
  tune_gd_plus_plus  (lr*, gamma*) of K-step GD++ (`solvers.gd_plus_plus`: GD whose inputs are
                     also updated, x <- (I - gamma X^T X / N) x): a 41 x 41 grid, then Nelder-Mead.
  grid_search        the validation search over a finite grid of settings:
                     argmin_{h in grid} L_val(h) (the first on ties, non-finite losses never win).
  tune_solver        a solver's hyper-parameters by grid_search on validation tasks, and its loss on
                     test tasks at them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, solvers
from icl.tasks.base import Batch

T = TypeVar("T")
GOLDEN = (np.sqrt(5) - 1) / 2  # 1 / phi
GAMMA_RANGE = (-0.1, 0.7)  # the GD++ gamma grid
GRID_TASKS = 2000  # the GD++ grid is evaluated on the first 2,000 tasks (memory), the fit on all


def finite_or_inf(x: jax.Array) -> jax.Array:
    """x where finite, +inf elsewhere (a diverged learner loses every comparison)."""
    return jnp.where(jnp.isfinite(x), x, jnp.inf)


def minimise_1d(f: Callable[[float], jax.Array], lo: float, hi: float, n_grid: int = 201, iters: int = 40) -> float:
    """argmin of a jittable scalar f on [lo, hi]: a vmapped n_grid-point grid, then `iters` golden
    section steps on the bracket of the best grid point's neighbours; the bracket's midpoint."""
    grid = jnp.linspace(lo, hi, n_grid)
    values = np.asarray(jax.vmap(f)(grid))
    i = int(np.nanargmin(values))
    a, b = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, n_grid - 1)])
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = float(f(c)), float(f(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = float(f(c))
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = float(f(d))
    return (a + b) / 2


def tune_gd(batch: Batch, steps: int, lr_max: float) -> float:
    """The lr in [0, lr_max] of `steps`-step GD minimising the loss on `batch` (minimise_1d; the
    batch is passed to jit as an argument, not closed over: XLA would constant-fold the whole
    computation)."""
    loss = jax.jit(lambda lr, b: finite_or_inf(compare.loss(solvers.gd(b.x_ctx, b.y_ctx, b.x_query, lr=lr, steps=steps), b.y_query)))
    return minimise_1d(lambda lr: loss(lr, batch), 0.0, lr_max)


def tune_gd_plus_plus(batch: Batch, steps: int, lr_max: float) -> tuple[float, float]:
    """(lr, gamma) of `steps`-step GD++ minimising the loss on `batch`: a 41 x 41 grid (lr in
    [0, lr_max], gamma in GAMMA_RANGE) on its first GRID_TASKS tasks, then Nelder-Mead on all of it
    from the grid's best point. One step: gamma = 0 (it only acts from the second step on) and lr by
    minimise_1d."""
    from scipy.optimize import minimize

    def loss(lr, gamma, b):
        y_hat = solvers.gd_plus_plus(b.x_ctx, b.y_ctx, b.x_query, lr=lr, gamma=gamma, steps=steps)
        return finite_or_inf(compare.loss(y_hat, b.y_query))

    jitted = jax.jit(loss)
    f = lambda lr, gamma: jitted(lr, gamma, batch)
    if steps == 1:
        return minimise_1d(lambda lr: f(lr, 0.0), 0.0, lr_max), 0.0
    lrs, gammas = np.linspace(0.0, lr_max, 41), np.linspace(*GAMMA_RANGE, 41)
    small = jax.tree.map(lambda x: x[:GRID_TASKS], batch)
    row = jax.vmap(loss, (None, 0, None))  # one lr, every gamma
    grid_fn = jax.jit(lambda ls, gs, b: jax.lax.map(lambda lr: row(lr, gs, b), ls))
    grid = np.asarray(grid_fn(jnp.asarray(lrs), jnp.asarray(gammas), small))  # [41 lr, 41 gamma]
    i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
    start = [lrs[i], gammas[j]]
    result = minimize(lambda p: float(f(p[0], p[1])), x0=start, method="Nelder-Mead",
                      options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 400,
                               "initial_simplex": [start, [lrs[i] + 0.1, gammas[j]], [lrs[i], gammas[j] + 0.02]]})
    return float(result.x[0]), float(result.x[1])


def tune_depth(batch: Batch, steps: int, lr_max: float) -> dict:
    """{"gd_lr", "gd_plus_plus_lr", "gd_plus_plus_gamma"}: K = `steps`-step GD and GD++ tuned on `batch`."""
    lr = tune_gd(batch, steps, lr_max)
    lr_pp, gamma = tune_gd_plus_plus(batch, steps, lr_max)
    return {"gd_lr": lr, "gd_plus_plus_lr": lr_pp, "gd_plus_plus_gamma": gamma}


def grid_search(validation_loss: Callable[[T], float], grid: Sequence[T]) -> tuple[T, list[float]]:
    """(the grid point with the lowest finite validation loss, the loss of every point); the first
    such point on ties."""
    losses = [float(validation_loss(point)) for point in grid]
    finite = [i for i, v in enumerate(losses) if np.isfinite(v)]
    if not finite:
        raise ValueError(f"grid_search: no grid point has a finite validation loss ({len(grid)} tried)")
    return grid[min(finite, key=losses.__getitem__)], losses


def tune_solver(solver: Callable[..., jax.Array], grid: Sequence[dict], validation: Batch, test: Batch) -> dict:
    """`solver(x_ctx, y_ctx, x_query, **hparams)` at the hparams of `grid` with the lowest loss on
    the `validation` tasks: {"hparams", "loss" (on `test`), "validation_losses" (one per grid point)}."""
    def loss(hparams: dict, batch: Batch) -> float:
        return float(compare.loss(solver(batch.x_ctx, batch.y_ctx, batch.x_query, **hparams), batch.y_query))

    best, losses = grid_search(lambda hparams: loss(hparams, validation), grid)
    return {"hparams": best, "loss": loss(best, test), "validation_losses": losses}
