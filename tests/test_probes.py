"""Implicit weights recover the closed-form weights of linear learners; SPD / ILWD are their
definitions (float64, see conftest)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, constructions, models, probes, solvers, tasks

D, N = 4, 6


@pytest.fixture
def batch():
    return tasks.get("linear", d=D, n_ctx=N, input_dist="gaussian", noise_std=0.3).sample(jax.random.key(0), 32)


@pytest.fixture
def probe_queries():
    """Correlated, anisotropic probes [B, M, d], so that the naive estimate P^T f / M != w."""
    mix = jnp.array([[2.0, 0.0, 0.0, 0.0], [1.5, 0.3, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.8, 0.1]])
    z = jax.random.normal(jax.random.key(1), (32, 24, D))
    return jnp.einsum("bme,de->bmd", z, mix) + 0.7  # [B, M, d], also off-centre


@pytest.mark.parametrize("lam", [0.0, 0.25, 3.0])
def test_ridge_and_least_squares_weights_recovered(batch, probe_queries, lam):
    predict = functools.partial(solvers.ridge, lam=lam)
    fit = probes.implicit_fit(predict, batch.x_ctx, batch.y_ctx, probe_queries)
    want = solvers.ridge_weights(batch.x_ctx, batch.y_ctx, lam)  # [B, d]
    np.testing.assert_allclose(fit.weights, want, rtol=1e-10, atol=1e-12)
    assert float(jnp.max(fit.residual_mse)) < 1e-20
    np.testing.assert_array_equal(fit.intercept, 0.0)


def test_min_norm_least_squares_recovered_when_n_below_d(probe_queries):
    """N = 2 < d = 4: least squares is the min-norm solution, still linear in x_q."""
    b = tasks.get("linear", d=D, n_ctx=2, input_dist="gaussian").sample(jax.random.key(3), 32)
    w = probes.implicit_weights(solvers.least_squares, b.x_ctx, b.y_ctx, probe_queries)
    np.testing.assert_allclose(w, solvers.ridge_weights(b.x_ctx, b.y_ctx, 0.0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_gd_weights_recovered(batch, probe_queries, steps):
    predict = functools.partial(solvers.gd, lr=0.7, steps=steps)
    w = probes.implicit_weights(predict, batch.x_ctx, batch.y_ctx, probe_queries)
    np.testing.assert_allclose(w, solvers.gd_weights(batch.x_ctx, batch.y_ctx, 0.7, steps), rtol=1e-10, atol=1e-12)


def test_shared_probes_equal_broadcast_probes(batch, probe_queries):
    shared = probe_queries[0]  # [M, d]
    a = probes.implicit_weights(solvers.least_squares, batch.x_ctx, batch.y_ctx, shared)
    b = probes.implicit_weights(solvers.least_squares, batch.x_ctx, batch.y_ctx, jnp.broadcast_to(shared[None], probe_queries.shape))
    np.testing.assert_allclose(a, b, atol=1e-14)


def test_linear_lsa_stack_weights_are_its_sensitivity(batch, probe_queries):
    """A pure linear-attention stack is linear in the query token [x_q, 0] (the Gram form
    e_q <- e_q M_1 ... M_L), so its implicit weights are d y_hat / d x_q at any query."""
    model = models.build(models.ModelConfig(n_layers=3, init_scale=0.5), D, jax.random.key(2))
    assert model.layers[0].query[...].dtype == jnp.float64
    fit = probes.implicit_fit(model.predict, batch.x_ctx, batch.y_ctx, probe_queries, fit_intercept=True)
    grads = compare.sensitivities(model.predict, batch)  # [B, 1, d] at the batch's own query
    np.testing.assert_allclose(fit.weights, grads[:, 0], rtol=1e-9, atol=1e-10)
    scale = jnp.sqrt(jnp.mean(fit.predictions**2, -1))  # [B]
    assert float(jnp.max(jnp.abs(fit.intercept) / scale)) < 1e-10
    assert float(jnp.max(fit.residual_mse / jnp.mean(fit.predictions**2, -1))) < 1e-20


def test_gd_construction_has_zero_spd_and_ilwd_to_gd(batch, probe_queries):
    model = constructions.gd_model(D, N, lr=0.8, layers=2, dtype=jnp.float64)
    gd = functools.partial(solvers.gd, lr=0.8, steps=2)
    got = probes.distances(*(probes.implicit_fit(f, batch.x_ctx, batch.y_ctx, probe_queries) for f in (model.predict, gd)))
    assert float(got["spd"]) < 1e-20 and float(got["ilwd"]) < 1e-20
    ls = probes.implicit_fit(solvers.least_squares, batch.x_ctx, batch.y_ctx, probe_queries)
    assert float(probes.distances(probes.implicit_fit(gd, batch.x_ctx, batch.y_ctx, probe_queries), ls)["ilwd"]) > 1e-2


def test_fit_is_least_squares_not_correlation(batch, probe_queries):
    """On correlated, off-centre probes the naive correlation estimate P^T f / M is far from w;
    the least-squares fit is not (a fit that were not least squares would fail here)."""
    w_true = jnp.array([1.0, -2.0, 0.5, 3.0])
    predict = lambda xc, yc, xq: jnp.einsum("bmd,d->bm", xq, w_true)
    w = probes.implicit_weights(predict, batch.x_ctx, batch.y_ctx, probe_queries)
    np.testing.assert_allclose(w, jnp.broadcast_to(w_true[None], w.shape), atol=1e-11)
    naive = jnp.einsum("bmd,bm->bd", probe_queries, predict(None, None, probe_queries)) / probe_queries.shape[1]
    assert float(jnp.max(jnp.abs(naive - w_true[None]))) > 1.0


def test_intercept_is_fitted_only_when_asked(batch, probe_queries):
    w_true, b_true = jnp.array([0.5, 1.0, -1.0, 2.0]), 1.5
    predict = lambda xc, yc, xq: jnp.einsum("bmd,d->bm", xq, w_true) + b_true
    with_b = probes.implicit_fit(predict, batch.x_ctx, batch.y_ctx, probe_queries, fit_intercept=True)
    np.testing.assert_allclose(with_b.weights, jnp.broadcast_to(w_true[None], with_b.weights.shape), atol=1e-11)
    np.testing.assert_allclose(with_b.intercept, b_true, atol=1e-11)
    without = probes.implicit_fit(predict, batch.x_ctx, batch.y_ctx, probe_queries)
    assert float(jnp.max(jnp.abs(without.weights - w_true[None]))) > 0.1  # the offset leaks into w
    assert float(jnp.min(without.residual_mse)) > 1e-3


def test_nonlinear_learner_matches_numpy_lstsq(batch, probe_queries):
    """For a learner that is not linear in x_q, w_hat and the residual are those of numpy's lstsq."""
    predict = lambda xc, yc, xq: jnp.tanh(jnp.einsum("bmd,bnd,bn->bm", xq, xc, yc) / N) + xq[..., 0] ** 2
    fit = probes.implicit_fit(predict, batch.x_ctx, batch.y_ctx, probe_queries)
    y = np.asarray(predict(batch.x_ctx, batch.y_ctx, probe_queries))
    for i in range(3):
        w, res, *_ = np.linalg.lstsq(np.asarray(probe_queries[i]), y[i], rcond=None)
        np.testing.assert_allclose(fit.weights[i], w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fit.residual_mse[i], res[0] / probe_queries.shape[1], rtol=1e-9)
    assert float(jnp.min(fit.residual_mse)) > 1e-3


def test_spd_and_ilwd_definitions():
    y_a, y_b = jnp.array([[1.0, 2.0], [0.0, -1.0]]), jnp.array([[0.0, 2.0], [2.0, -1.0]])
    np.testing.assert_allclose(probes.spd(y_a, y_b), (1 + 0 + 4 + 0) / 4)
    w_a, w_b = jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(probes.ilwd(w_a, w_b), (1 + 25) / 2)
    with pytest.raises(ValueError, match="same shape"):
        probes.spd(y_a, y_b[:, :1])
    with pytest.raises(ValueError, match=r"\[batch, d\]"):
        probes.ilwd(w_a[0], w_b[0])


def test_jittable(batch, probe_queries):
    fit = jax.jit(lambda xc, yc, p: probes.implicit_weights(solvers.least_squares, xc, yc, p))
    np.testing.assert_allclose(fit(batch.x_ctx, batch.y_ctx, probe_queries), solvers.ridge_weights(batch.x_ctx, batch.y_ctx, 0.0),
                               rtol=1e-9, atol=1e-12)


def test_bad_inputs_raise(batch, probe_queries):
    xc, yc = batch.x_ctx, batch.y_ctx
    with pytest.raises(ValueError, match="cannot determine 4 coefficients"):
        probes.implicit_fit(solvers.least_squares, xc, yc, probe_queries[:, :3])
    with pytest.raises(ValueError, match="cannot determine 5 coefficients"):
        probes.implicit_fit(solvers.least_squares, xc, yc, probe_queries[:, :4], fit_intercept=True)
    with pytest.raises(ValueError, match="probe_queries must be"):
        probes.implicit_fit(solvers.least_squares, xc, yc, probe_queries[:, :, :3])
    with pytest.raises(ValueError, match="probe_queries must be"):
        probes.implicit_fit(solvers.least_squares, xc, yc, probe_queries[:5])
    with pytest.raises(ValueError, match="y_ctx must be"):
        probes.implicit_fit(solvers.least_squares, xc, yc[:, :3], probe_queries)
    with pytest.raises(ValueError, match="x_ctx must be"):
        probes.implicit_fit(solvers.least_squares, xc[0], yc, probe_queries)
    with pytest.raises(ValueError, match="predict must return"):
        probes.implicit_fit(lambda a, b, q: q[..., 0].sum(-1), xc, yc, probe_queries)
