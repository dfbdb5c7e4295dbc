"""Numerics of paper_figures/claim2_deep_newton.py: the layer preconditioner read from (A, B), the
residual-similarity matrix, the per-task GD step and the line fits. float64 (conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper_figures"))

import claim2_deep_newton as c2  # noqa: E402
from icl import compare, constructions, models, solvers, tasks  # noqa: E402


@pytest.fixture
def batch(key):
    task = tasks.get("linear", d=4, n_ctx=9, n_query=6, input_dist="gaussian", covariance="rotated", condition_number=20.0)
    return task.sample(key, 64)


def test_gd_construction_has_preconditioner_lr_over_n():
    d, n, lr = 4, 9, 0.7
    model = constructions.gd_model(d=d, n_ctx=n, lr=lr, layers=2, dtype=jnp.float64)
    for layer in model.layers:
        a, b = compare.layer_products(layer)
        np.testing.assert_allclose(compare.preconditioner(layer, d)["gamma"], (lr / n) * np.eye(d), rtol=0, atol=1e-12)
        assert all(v == 0.0 for v in c2.block_norms(a, b).values())


def test_preconditioner_of_a_general_layer_is_preconditioned_gd(batch):
    """A 1-layer LSA with A_xx = G and the GD value/out blocks predicts x_q^T Gamma X^T y with the
    Gamma that `compare.preconditioner` reads off, i.e. exactly solvers.preconditioned_gd(Gamma)."""
    d, n = 4, 9
    g = np.asarray(jax.random.normal(jax.random.key(3), (d, d)), np.float64)  # not symmetric
    model = constructions.gd_model(d=d, n_ctx=n, lr=2.5, layers=1, dtype=jnp.float64)
    layer = model.layers[0]
    query = np.asarray(layer.query[...]).copy()  # [1, D, k]
    query[0, :d, :d] = g  # key stays [[I, 0], [0, 0]], so A[:d, :d] = G
    layer.query[...] = jnp.asarray(query)
    gamma = compare.preconditioner(layer, d)["gamma"]
    np.testing.assert_allclose(gamma, (2.5 / n) * g, rtol=1e-12)
    y_model = model(batch)  # [B, M]
    y_pgd = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=gamma)
    np.testing.assert_allclose(y_model, y_pgd, rtol=1e-10, atol=1e-10)
    # and the transpose would not do (G is not symmetric): the test can fail
    y_wrong = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=gamma.T)
    assert np.max(np.abs(y_model - y_wrong)) > 1e-3


def test_first_layer_odd_part_in_y_is_preconditioned_gd_with_gamma(batch):
    """For random weights (every block non-zero) the part of a first layer's read-out that is odd in
    the context labels is x_q^T Gamma X^T y with Gamma = -(B_yy A_xx + A_xy B_xy^T)."""
    model = models.build(models.ModelConfig(n_layers=1, init_scale=1.0), 4, jax.random.key(5))
    a, b = compare.layer_products(model.layers[0])
    assert np.linalg.norm(a[:4, 4]) > 0.1 and np.linalg.norm(b[:4, 4]) > 0.1  # both routes present
    gamma = compare.preconditioner(model.layers[0], 4)["gamma"]
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    odd = 0.5 * (model.predict(xc, yc, xq) - model.predict(xc, -yc, xq))  # [B, M]
    np.testing.assert_allclose(odd, solvers.preconditioned_gd(xc, yc, xq, gamma_matrix=gamma), rtol=1e-9, atol=1e-9)
    first_term_only = -b[4, 4] * a[:4, :4]  # the x-x block alone misses the rank-one route
    assert np.max(np.abs(odd - solvers.preconditioned_gd(xc, yc, xq, gamma_matrix=first_term_only))) > 1e-3


def test_similarity_matrix_is_mean_per_task_cosine(batch, key):
    y = batch.y_query  # [B, M]
    r = jax.random.normal(key, y.shape)
    preds = jnp.stack([y + r, y + 3 * r, y - r, y])  # residuals r, 3r, -r, 0
    u = c2.unit_residuals(preds, y[None])  # [4, B, M]
    sim = np.asarray(c2.similarity_matrix(u, u))
    np.testing.assert_allclose(sim[:3, :3], [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    np.testing.assert_allclose(sim[3], 0.0)  # a zero residual has similarity 0 with everything
    # against a brute-force loop over tasks
    other = y + jax.random.normal(jax.random.fold_in(key, 1), y.shape)
    u2 = c2.unit_residuals(other[None], y[None])
    brute = np.mean([float(compare.cosine(r[b], (other - y)[b])) for b in range(y.shape[0])])
    np.testing.assert_allclose(c2.similarity_matrix(u[:1], u2)[0, 0], brute, rtol=1e-12)


def test_newton_steps_match_themselves_on_the_diagonal(batch):
    """Each Newton-Schulz iterate is its own best match among the iterates (up to convergence)."""
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    preds = jnp.stack([solvers.newton(xc, yc, xq, steps=k) for k in range(6)])
    u = c2.unit_residuals(preds, batch.y_query[None])
    sim = np.asarray(c2.similarity_matrix(u, u))
    np.testing.assert_array_equal(sim.argmax(1), np.arange(6))


def test_smooth_lr_is_inverse_top_hessian_eigenvalue_and_gd_descends(batch):
    xc, yc = batch.x_ctx, batch.y_ctx
    n = xc.shape[1]
    lr = np.asarray(c2.smooth_lr(xc))  # [B, 1]
    hess = np.einsum("bnd,bne->bde", np.asarray(xc), np.asarray(xc)) / n
    np.testing.assert_allclose(lr[:, 0], 1 / np.linalg.eigvalsh(hess)[:, -1], rtol=1e-10)
    losses = []
    for k in (0, 1, 2, 5, 20):
        w = solvers.gd_weights(xc, yc, lr=lr, steps=k)  # [B, d]
        losses.append(np.mean((np.einsum("bnd,bd->bn", xc, w) - yc) ** 2, axis=1))
    assert np.all(np.diff(np.stack(losses), axis=0) <= 1e-12)  # monotone in every task


def test_line_fit_and_frobenius_cosine():
    fit = c2.line_fit([1, 2, 3, 4], [1.0, 4.0, 7.0, 10.0])
    assert fit["slope"] == pytest.approx(3.0) and fit["intercept"] == pytest.approx(-2.0) and fit["r2"] == pytest.approx(1.0)
    assert c2.line_fit([1, 2, 3], [5.0, 5.0, 5.0])["r2"] == 1.0
    assert c2.line_fit([1, 2, 3, 4], [0.0, 1.0, 0.0, 1.0])["r2"] < 0.5
    p = np.array([[2.0, 1.0], [0.0, 3.0]])
    assert c2.frobenius_cosine(p, 5 * p) == pytest.approx(1.0)
    assert c2.frobenius_cosine(p, -p) == pytest.approx(-1.0)
    assert c2.frobenius_cosine(p, np.eye(2)) == pytest.approx(5 / (np.sqrt(14) * np.sqrt(2)))


def test_loss_matched_step_interpolates_log_loss():
    steps, loss = [0, 1, 2, 3], [1.0, 0.1, 0.01, 0.001]
    assert c2.loss_matched_step(0.1, steps, loss, log_steps=False) == pytest.approx(1.0)
    assert c2.loss_matched_step(10 ** -1.5, steps, loss, log_steps=False) == pytest.approx(1.5)
    assert c2.loss_matched_step(2.0, steps, loss, log_steps=False) == 0.0  # no better than the first step
    assert c2.loss_matched_step(1e-4, steps, loss, log_steps=False) == float("inf")
    # geometric steps, log loss linear in log k: loss = 1 / k
    k = [1, 2, 4, 8, 16]
    assert c2.loss_matched_step(1 / 5.0, k, [1 / v for v in k], log_steps=True) == pytest.approx(5.0)
