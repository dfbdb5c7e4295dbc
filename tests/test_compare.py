"""The comparison metrics equal their definitions on hand-made cases."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, constructions, models, solvers, tasks, weights


@pytest.fixture
def batch():
    return tasks.get("linear", d=4, n_ctx=6, n_query=2).sample(jax.random.key(0), 64)


def linear_predictor(w):
    return lambda xc, yc, xq: jnp.einsum("bmd,d->bm", xq, w)


def test_metrics_of_fixed_linear_models(batch):
    """Fixed linear predictors have sensitivity w everywhere: cos and diff are closed forms."""
    w_a, w_b = jnp.array([1.0, 2.0, 0.0, -1.0]), jnp.array([0.5, -1.0, 3.0, 0.0])
    got = compare.compare(linear_predictor(w_a), linear_predictor(w_b), batch)
    np.testing.assert_allclose(got["model_cos"], w_a @ w_b / jnp.linalg.norm(w_a) / jnp.linalg.norm(w_b), atol=1e-12)
    np.testing.assert_allclose(got["model_diff"], jnp.linalg.norm(w_a - w_b), atol=1e-12)
    y_a, y_b = batch.x_query @ w_a, batch.x_query @ w_b
    np.testing.assert_allclose(got["preds_diff"], jnp.mean(jnp.abs(y_a - y_b)), atol=1e-12)
    np.testing.assert_allclose(got["loss"], 0.5 * jnp.mean((y_a - batch.y_query) ** 2), atol=1e-12)


def test_a_model_that_is_gd_has_cos_1_and_diff_0(batch):
    lr = 0.9
    model = constructions.gd_model(4, 6, lr=lr, dtype=jnp.float64)
    gd = lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=lr)
    got = compare.compare(model.predict, gd, batch)
    np.testing.assert_allclose(got["model_cos"], 1.0, atol=1e-12)
    assert float(got["model_diff"]) < 1e-12 and float(got["preds_diff"]) < 1e-12
    np.testing.assert_allclose(got["loss"], got["loss_other"], atol=1e-14)
    # GD's sensitivity is its implied weight (lr/N) X^T y
    g = compare.sensitivities(gd, batch)
    np.testing.assert_allclose(g[:, 0], lr / 6 * jnp.einsum("bnd,bn->bd", batch.x_ctx, batch.y_ctx), atol=1e-12)


def test_interpolation_between_equivalent_models_is_the_same_function(batch):
    """Rescaling (A, B) -> (cA, B/c) leaves the function unchanged; interpolating a rescaled GD
    model with the GD construction stays GD."""
    gd = constructions.gd_model(4, 6, lr=0.9, layers=2, dtype=jnp.float64)
    scaled = constructions.gd_model(4, 6, lr=0.9, layers=2, dtype=jnp.float64)
    for layer in scaled.layers:
        layer.query[...] = 3.0 * layer.query[...]
        layer.out[...] = layer.out[...] / 3.0
    np.testing.assert_allclose(scaled(batch), gd(batch), atol=1e-12)
    for t in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(weights.interpolate(scaled, gd, t)(batch), gd(batch), atol=1e-12)
    random = models.build(models.ModelConfig(n_layers=2, init_scale=1.0), 4, 1)
    np.testing.assert_allclose(weights.interpolate(random, gd, 0.0)(batch), random(batch), atol=1e-10)
    with pytest.raises(ValueError, match="same depth"):
        weights.interpolate(random, constructions.gd_model(4, 6, lr=0.9, layers=1))


def test_layer_predictors_and_sweeps(batch):
    model = constructions.gd_model(4, 6, lr=0.9, layers=3, dtype=jnp.float64)
    for k, predict in enumerate(compare.layer_predictors(model)):
        np.testing.assert_allclose(
            predict(batch.x_ctx, batch.y_ctx, batch.x_query),
            solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.9, steps=k + 1), atol=1e-12,
        )
    task = tasks.get("linear", d=4, n_ctx=6)
    ls = {"least_squares": solvers.least_squares, "zero": lambda xc, yc, xq: jnp.zeros(xq.shape[:2])}
    by_alpha = compare.sweep(ls, compare.input_scale_variants(task, [0.5, 2.0]), jax.random.key(1), 2000)
    # zero predictor: loss = 0.5 E[(w.x)^2] = 0.5 * d * Var(x) scales as alpha^2
    np.testing.assert_allclose(by_alpha["zero"][1] / by_alpha["zero"][0], 16.0, rtol=0.1)
    by_n = compare.sweep(ls, compare.context_length_variants(task, [2, 8]), jax.random.key(1), 2000)
    assert by_n["least_squares"][1] < 1e-10 < by_n["least_squares"][0]  # N >= d is exact, N < d is not
    assert dataclasses.replace(task, n_ctx=8) == compare.context_length_variants(task, [8])[8]


def test_preconditioner_of_the_gd_construction_is_lr_over_n():
    parts = weights.preconditioner(constructions.gd_model(4, 7, lr=0.9, dtype=jnp.float64).layers[0], 4)
    np.testing.assert_allclose(parts["gamma"], 0.9 / 7 * np.eye(4), atol=1e-15)
    assert not np.any(parts["a_xy"]) and not np.any(parts["b_x"])


def test_preconditioner_terms_reproduce_a_random_layer(batch):
    """A random 2-head layer's prediction is exactly Gamma's plus the two stated extra terms."""
    d = batch.x_ctx.shape[-1]
    model = models.build(models.ModelConfig(n_layers=1, n_heads=2, key_size=3, init_scale=1.0), d, jax.random.key(5))
    parts = weights.preconditioner(model.layers[0], d)
    x, y, xq = (np.asarray(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query))
    xty, xtx, yty = np.einsum("bnd,bn->bd", x, y), np.einsum("bnd,bne->bde", x, x), np.einsum("bn,bn->b", y, y)
    expected = np.einsum("bmd,de,be->bm", xq, parts["gamma"], xty)
    for h in range(2):
        expected -= np.einsum("bmd,de,bef,f->bm", xq, parts["a_xx"][h], xtx, parts["b_x"][h])
        expected -= np.einsum("bmd,d->bm", xq, parts["a_xy"][h]) * (yty * parts["b_y"][h])[:, None]
    np.testing.assert_allclose(np.asarray(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query)), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="expected d \\+ 1"):
        weights.preconditioner(model.layers[0], d + 1)


def test_loss_refuses_shapes_that_would_broadcast():
    """[B, 1] against [B] would broadcast to [B, B] and average the wrong differences."""
    y = jnp.arange(4.0)
    np.testing.assert_allclose(compare.loss(y + 1.0, y), 0.5)
    with pytest.raises(ValueError, match=r"loss: y_hat \(4, 1\) and y \(4,\) must have the same shape") as err:
        compare.loss(y[:, None], y)
    assert "\n" not in str(err.value)
