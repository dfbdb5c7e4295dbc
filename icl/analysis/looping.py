"""Looping a trained shared LSA layer beyond its training depth, with damping (von Oswald et al.
2023, Sec. 4, recurrent transformers).

A shared-weight stack trained with K layers is applied K' times (`model.layer_predictions(...,
n_layers=K')`). Damping scales the layer's output projection, W_O -> lambda W_O: the residual
update of a linear self-attention layer, e_j <- e_j + sum_h sum_i (e_j W_Q^h . e_i W_K^h) e_i W_V^h W_O^h,
is linear in W_O, so every update is scaled by exactly lambda (activation clipping, where on, acts
after the update). lambda = 1 is the trained model, lambda = 0 leaves the tokens unchanged; lambda*
is fitted per seed to the loss after K'_max applications.

The explicit counterparts, as curves over K' = 1..K'_max: GD at a fixed rate (the K-step lr
repeated), GD++ at fixed (lr, gamma).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers, train
from icl.analysis.tuning import minimise_1d, tune_depth
from icl.config import ExperimentConfig
from icl.tasks.base import Batch

LayerLosses = Callable[[dict, jax.Array, Batch], jax.Array]


def scale_out(params: dict, lam) -> dict:
    """The parameters with every layer's `out` weights (W_O) times lam: each residual update times lam."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x * lam if getattr(path[-1], "key", None) == "out" else x, params)


def layer_losses_fn(config: ExperimentConfig, n_layers: int) -> LayerLosses:
    """jitted (params [one seed], lam, batch) -> the loss after each of n_layers applications of the
    stack damped by lam: [n_layers]."""
    spec = train.model_spec(config)

    def losses(p, lam, b):
        preds = spec.model(scale_out(p, lam)).layer_predictions(b.x_ctx, b.y_ctx, b.x_query, n_layers=n_layers)  # [K', B, M]
        return 0.5 * jnp.mean((preds - b.y_query[None]) ** 2, axis=(1, 2))

    return jax.jit(losses)


def fit_damping(losses: LayerLosses, params: dict, n_seeds: int, batch: Batch, lam_max: float, n_grid: int) -> np.ndarray:
    """lambda* in [0, lam_max] per seed of params [S, ...]: the minimiser of the loss after the last
    application on `batch` (minimise_1d with an n_grid-point grid). [S]."""
    return np.array([minimise_1d(lambda lam, p=p: losses(p, lam, batch)[-1], 0.0, lam_max, n_grid=n_grid)
                     for p in runs.unstack_seeds(params, n_seeds)])


def seed_curves(losses: LayerLosses, params: dict, lams: jax.Array, batch: Batch) -> np.ndarray:
    """The loss after each application for every seed of params [S, ...] damped by its lams [S]: [K', S]."""
    return np.asarray(jax.vmap(losses, in_axes=(0, 0, None))(params, lams, batch)).T


def damping_curve(losses: LayerLosses, params: dict, lam_grid: np.ndarray, batch: Batch) -> np.ndarray:
    """The loss after the last application for every lambda of lam_grid [G] and seed: [G, S]."""
    per_seed = lambda p: jax.vmap(lambda lam: losses(p, lam, batch)[-1])(jnp.asarray(lam_grid))
    return np.asarray(jax.vmap(per_seed)(params)).T


@jax.jit
def _gd_losses(batch: Batch, lr, k_max_marker: jax.Array) -> jax.Array:
    """Loss after each of K' = 1..len(k_max_marker) GD steps at rate lr: chained
    solvers.gd_weights(steps=1, w0=w), one compilation for the whole curve."""
    def step(w, _):
        w = solvers.gd_weights(batch.x_ctx, batch.y_ctx, lr, steps=1, w0=w)  # [B, d]
        y_hat = jnp.einsum("bmd,bd->bm", batch.x_query, w)
        return w, compare.loss(y_hat, batch.y_query)

    w0 = jnp.zeros(batch.x_ctx.shape[::2], batch.x_ctx.dtype)  # [B, d]
    return jax.lax.scan(step, w0, k_max_marker)[1]


def gd_curve(batch: Batch, lr: float, k_max: int, gamma: float | None = None) -> list[float]:
    """The loss after K' = 1..k_max steps of GD at rate lr, or of GD++ at (lr, gamma)."""
    if gamma is None:
        return np.asarray(_gd_losses(batch, lr, jnp.zeros(k_max))).tolist()
    return [float(compare.loss(solvers.gd_plus_plus(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, gamma=gamma, steps=k),
                               batch.y_query)) for k in range(1, k_max + 1)]



def loop_stack(config: ExperimentConfig, params: dict, k_max: int, test: Batch, tune: Batch, lr_max: float,
               lam_max: float, n_grid: int, lam_tasks: int) -> dict:
    """A shared stack trained with K = config.model.n_layers layers, params [S, ...], looped K' = 1..k_max
    times, against K-step GD and GD++ tuned on `tune` (lr in [0, lr_max]) and repeated; curves on `test`.
    lambda* per seed is fitted on the first `lam_tasks` tasks of `tune` (an n_grid-point grid on
    [0, lam_max], then golden section). {"undamped", "damped": [K', S], "lambda": [S], "lam_grid": [G],
    "lam_curve": the loss after k_max applications [G, S], "gd_fixed_lr", "gd_fixed": [K'],
    "gd_plus_plus_lr", "gd_plus_plus_gamma", "gd_plus_plus": [K']}."""
    losses, n_seeds = layer_losses_fn(config, k_max), config.train.n_seeds
    lams = fit_damping(losses, params, n_seeds, jax.tree.map(lambda x: x[:lam_tasks], tune), lam_max, n_grid)
    lam_grid = np.linspace(0.0, lam_max, n_grid)
    hp = tune_depth(tune, config.model.n_layers, lr_max)
    return {
        "undamped": seed_curves(losses, params, jnp.ones(n_seeds), test), "damped": seed_curves(losses, params, jnp.asarray(lams), test),
        "lambda": lams, "lam_grid": lam_grid, "lam_curve": damping_curve(losses, params, lam_grid, test),
        "gd_fixed_lr": hp["gd_lr"], "gd_fixed": gd_curve(test, hp["gd_lr"], k_max),
        "gd_plus_plus_lr": hp["gd_plus_plus_lr"], "gd_plus_plus_gamma": hp["gd_plus_plus_gamma"],
        "gd_plus_plus": gd_curve(test, hp["gd_plus_plus_lr"], k_max, hp["gd_plus_plus_gamma"]),
    }
