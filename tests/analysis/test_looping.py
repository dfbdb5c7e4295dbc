"""icl.analysis.looping: damping scales every residual update, curves agree with the solvers."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, experiments, runs, solvers, train
from icl.analysis import looping


@pytest.fixture(scope="module")
def setup():
    base = experiments.get("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, n_layers=2, shared=True, init_scale=0.3),
                                 train=dataclasses.replace(base.train, n_seeds=2))
    params = runs.initial_params(config)  # [S, ...]
    batch = config.task.sample(jax.random.key(5), 64)
    return config, params, batch


def test_scale_out_scales_only_the_output_projection(setup):
    config, params, _ = setup
    scaled = looping.scale_out(params, 0.5)
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    new = jax.tree.leaves(scaled)
    assert any(getattr(p[-1], "key", None) == "out" for p, _ in paths)
    for (path, old), leaf in zip(paths, new, strict=True):
        factor = 0.5 if getattr(path[-1], "key", None) == "out" else 1.0
        np.testing.assert_array_equal(np.asarray(leaf), factor * np.asarray(old))


def test_one_application_is_linear_in_the_damping(setup):
    """The first layer's read-out is its update of the query's label slot, linear in W_O."""
    config, params, batch = setup
    p = runs.unstack_seeds(params, 2)[0]
    spec = train.model_spec(config)

    def first(lam):
        return spec.model(looping.scale_out(p, lam)).layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, n_layers=1)[0]

    np.testing.assert_allclose(first(0.3), 0.3 * first(1.0), rtol=1e-10, atol=1e-14)
    assert float(jnp.max(jnp.abs(first(1.0)))) > 0


def test_zero_damping_predicts_zero_after_every_application(setup):
    config, params, batch = setup
    losses = looping.layer_losses_fn(config, 4)
    curve = looping.seed_curves(losses, params, jnp.zeros(2), batch)  # [K', S]
    assert curve.shape == (4, 2)
    np.testing.assert_allclose(curve, float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query)), rtol=1e-12)


def test_damping_curve_at_one_is_the_undamped_last_application(setup):
    config, params, batch = setup
    losses = looping.layer_losses_fn(config, 3)
    grid = np.array([0.0, 0.5, 1.0])
    curve = looping.damping_curve(losses, params, grid, batch)  # [G, S]
    undamped = looping.seed_curves(losses, params, jnp.ones(2), batch)
    assert curve.shape == (3, 2)
    np.testing.assert_allclose(curve[2], undamped[-1], rtol=1e-10)


def test_fit_damping_is_no_worse_than_its_grid(setup):
    config, params, batch = setup
    losses = looping.layer_losses_fn(config, 3)
    lams = looping.fit_damping(losses, params, 2, batch, 1.5, 7)
    assert lams.shape == (2,) and np.all((0 <= lams) & (lams <= 1.5))
    fitted = looping.seed_curves(losses, params, jnp.asarray(lams), batch)[-1]
    on_grid = looping.damping_curve(losses, params, np.linspace(0.0, 1.5, 7), batch)
    assert np.all(fitted <= on_grid.min(0) * (1 + 1e-6))


def test_gd_curve_is_gd_with_more_steps_and_gd_plus_plus_at_gamma_zero():
    batch = experiments.get("tiny").task.sample(jax.random.key(2), 128)
    curve = looping.gd_curve(batch, 0.7, 4)
    direct = [float(compare.loss(solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.7, steps=k), batch.y_query))
              for k in range(1, 5)]
    np.testing.assert_allclose(curve, direct, rtol=1e-10)
    np.testing.assert_allclose(looping.gd_curve(batch, 0.7, 4, gamma=0.0), direct, rtol=1e-10)
    assert curve[-1] < curve[0]
