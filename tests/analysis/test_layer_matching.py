"""icl.analysis.layer_matching: the residual-similarity matrix, the per-task GD step, the line fits,
the loss-matched step and the matching of a model's layers to solver steps (float64, conftest)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, runs, solvers, tasks
from icl.analysis import layer_matching as lm
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig


@pytest.fixture
def batch(key):
    task = tasks.get("linear", d=4, n_ctx=9, n_query=6, input_dist="gaussian", covariance="rotated", condition_number=20.0)
    return task.sample(key, 64)


def test_similarity_matrix_is_mean_per_task_cosine(batch, key):
    y = batch.y_query  # [B, M]
    r = jax.random.normal(key, y.shape)
    preds = jnp.stack([y + r, y + 3 * r, y - r, y])  # residuals r, 3r, -r, 0
    u = lm.unit_residuals(preds, y[None])  # [4, B, M]
    sim = np.asarray(lm.similarity_matrix(u, u))
    np.testing.assert_allclose(sim[:3, :3], [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    np.testing.assert_allclose(sim[3], 0.0)  # a zero residual has similarity 0 with everything
    # against a brute-force loop over tasks
    other = y + jax.random.normal(jax.random.fold_in(key, 1), y.shape)
    u2 = lm.unit_residuals(other[None], y[None])
    brute = np.mean([float(compare.cosine(r[b], (other - y)[b])) for b in range(y.shape[0])])
    np.testing.assert_allclose(lm.similarity_matrix(u[:1], u2)[0, 0], brute, rtol=1e-12)


def test_newton_steps_match_themselves_on_the_diagonal(batch):
    """Each Newton-Schulz iterate is its own best match among the iterates (up to convergence)."""
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    preds = jnp.stack([solvers.newton(xc, yc, xq, steps=k) for k in range(6)])  # [6, B, M]
    u = lm.unit_residuals(preds, batch.y_query[None])
    sim = np.asarray(lm.similarity_matrix(u, u))
    np.testing.assert_array_equal(sim.argmax(1), np.arange(6))


def test_smooth_lr_is_inverse_top_hessian_eigenvalue_and_gd_descends(batch):
    xc, yc = batch.x_ctx, batch.y_ctx
    n = xc.shape[1]
    lr = np.asarray(lm.smooth_lr(xc))  # [B, 1]
    hess = np.einsum("bnd,bne->bde", np.asarray(xc), np.asarray(xc)) / n
    np.testing.assert_allclose(lr[:, 0], 1 / np.linalg.eigvalsh(hess)[:, -1], rtol=1e-10)
    losses = []
    for k in (0, 1, 2, 5, 20):
        w = solvers.gd_weights(xc, yc, lr=lr, steps=k)  # [B, d]
        losses.append(np.mean((np.einsum("bnd,bd->bn", xc, w) - yc) ** 2, axis=1))
    assert np.all(np.diff(np.stack(losses), axis=0) <= 1e-12)  # monotone in every task


def test_line_fit():
    fit = lm.line_fit([1, 2, 3, 4], [1.0, 4.0, 7.0, 10.0])
    assert fit["slope"] == pytest.approx(3.0) and fit["intercept"] == pytest.approx(-2.0) and fit["r2"] == pytest.approx(1.0)
    assert lm.line_fit([1, 2, 3], [5.0, 5.0, 5.0])["r2"] == 1.0
    assert lm.line_fit([1, 2, 3, 4], [0.0, 1.0, 0.0, 1.0])["r2"] < 0.5


def test_loss_matched_step_interpolates_log_loss():
    steps, loss = [0, 1, 2, 3], [1.0, 0.1, 0.01, 0.001]
    assert lm.loss_matched_step(0.1, steps, loss, log_steps=False) == pytest.approx(1.0)
    assert lm.loss_matched_step(10 ** -1.5, steps, loss, log_steps=False) == pytest.approx(1.5)
    assert lm.loss_matched_step(2.0, steps, loss, log_steps=False) == 0.0  # no better than the first step
    assert lm.loss_matched_step(1e-4, steps, loss, log_steps=False) == float("inf")
    # geometric steps, log loss linear in log k: loss = 1 / k
    k = [1, 2, 4, 8, 16]
    assert lm.loss_matched_step(1 / 5.0, k, [1 / v for v in k], log_steps=True) == pytest.approx(5.0)


def test_match_solver_finds_the_steps_a_gd_stack_computes(batch):
    """A 'model' whose layers are GD steps 1, 2, 4 of the same solver matches steps 1, 2, 4 exactly
    (similarity 1), doubles per layer, and its loss-matched steps are those steps."""
    gd_steps = np.array([1, 2, 4, 8])
    solver_y = jnp.stack([solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lm.smooth_lr(batch.x_ctx), steps=int(k))
                          for k in gd_steps])  # [4, B, M]
    model_y = solver_y[None, :3]  # [S=1, L=3, B, M]: layer l is GD step 2^(l-1)
    u_model = lm.unit_residuals(model_y, batch.y_query[None, None])
    model_loss = np.asarray([[float(compare.loss(y, batch.y_query)) for y in model_y[0]]])  # [1, 3]
    entry = lm.match_solver(u_model, solver_y, batch.y_query, gd_steps, model_loss, log_steps=True, sim_min=0.5)
    assert entry["best_step"] == [[1, 2, 4]]
    np.testing.assert_allclose(entry["best_similarity"], [[1.0, 1.0, 1.0]], atol=1e-12)
    assert entry["doubling_per_layer"]["mean"] == pytest.approx(1.0)
    assert entry["reliable_layers"] == [[1, 2, 3]] and entry["reliable_fit"]["mean"] == pytest.approx(1.0)
    np.testing.assert_allclose(entry["loss_matched_step"], [[1.0, 2.0, 4.0]], rtol=1e-9)
    assert np.all(np.diff(entry["loss"]) < 0)
    # with an impossible threshold no layer is reliable, and no fit is made
    strict = lm.match_solver(u_model, solver_y, batch.y_query, gd_steps, model_loss, log_steps=True, sim_min=1.5)
    assert strict["reliable_layers"] == [[]] and strict["reliable_fit"] is None


def test_match_layers_shapes_and_losses_of_an_untrained_stack():
    """An untrained 2-layer stack (init 0.02) predicts ~0: every layer's loss is the zero predictor's;
    the similarity matrices have one row per seed and layer and one column per solver step."""
    task = tasks.get("linear", d=3, n_ctx=8, input_dist="gaussian")
    train = TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=5, ckpt_every=10)
    config = ExperimentConfig(name="t", task=task, model=ModelConfig(n_layers=2, shared=False, init_scale=0.02),
                              optim=OptimConfig(), train=train)
    out = lm.match_layers(config, runs.initial_params(config), n_tasks=40, n_query=5, newton_steps=1,
                          gd_steps=(1, 2), sim_min=0.5)
    assert out["n_tasks"] == 40 and out["n_query"] == 5 and np.shape(out["model_loss"]) == (2, 2)  # [L, S]
    assert np.shape(out["newton"]["similarity"]) == (2, 2, 2) and np.shape(out["gd"]["similarity"]) == (2, 2, 2)
    np.testing.assert_allclose(out["model_loss"], out["zero_loss"], rtol=0.02)
    assert out["least_squares_loss"] < 1e-6 * out["zero_loss"]  # noiseless tasks, N > d
    assert "doubling_per_layer" in out["gd"] and "doubling_per_layer" not in out["newton"]
