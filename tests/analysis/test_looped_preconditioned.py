"""icl.analysis.looped_preconditioned: multi-step preconditioned GD, Gamma fits, and a looped
GD-type layer that is exactly l steps of it."""

import dataclasses

import numpy as np
import pytest

from icl import runs, solvers, tasks, train
from icl.analysis import looped_preconditioned as lp
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

D, N_CTX, LOOPS = 3, 8, 3


@pytest.fixture
def batch(key):
    task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=5.0, n_query=4)
    return task.sample(key, 32)


def _gamma():
    return np.array([[0.05, 0.01, 0.0], [0.01, 0.08, -0.02], [0.0, -0.02, 0.04]])


def test_pgd_weights_closed_form(batch):
    g = _gamma()
    got = np.asarray(lp.pgd_weights(batch.x_ctx, batch.y_ctx, g, 4))  # [4, B, d]
    x, y = np.asarray(batch.x_ctx), np.asarray(batch.y_ctx)
    for b in range(x.shape[0]):
        s, u = x[b].T @ x[b], x[b].T @ y[b]
        m = np.eye(D) - g @ s
        for steps in range(1, 5):  # w_l = sum_{k<l} (I - Gamma S)^k Gamma X^T y
            want = sum(np.linalg.matrix_power(m, k) for k in range(steps)) @ g @ u
            np.testing.assert_allclose(got[steps - 1, b], want, rtol=1e-9, atol=1e-12)


def test_pgd_one_step_and_gd_special_cases(batch):
    g = _gamma()
    np.testing.assert_allclose(lp.pgd_predictor(g, 1)(batch.x_ctx, batch.y_ctx, batch.x_query),
                               solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, g), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lp.gd_predictor(0.3, 5, N_CTX)(batch.x_ctx, batch.y_ctx, batch.x_query),
                               solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.3, steps=5), rtol=1e-9, atol=1e-12)


def test_pgd_converges_to_least_squares(batch):
    # Gamma = S^-1 is one Newton step: least squares after a single step, and a fixed point after
    x, y = batch.x_ctx, batch.y_ctx
    w = lp.pgd_weights(x[:1], y[:1], np.linalg.inv(np.asarray(x[0]).T @ np.asarray(x[0])), 3)
    want = solvers.ridge_weights(x[:1], y[:1], 0.0)
    for step in range(3):
        np.testing.assert_allclose(w[step], want, rtol=1e-8, atol=1e-10)


def test_fit_gamma_recovers_gamma(batch):
    g = _gamma()
    y_hat = lp.pgd_predictor(g, 1)(batch.x_ctx, batch.y_ctx, batch.x_query)
    np.testing.assert_allclose(lp.fit_gamma(batch, y_hat), g, atol=1e-10)


def test_matrix_cosine():
    a = np.diag([1.0, 2.0, 3.0])
    assert lp.matrix_cosine(a, 2 * a) == pytest.approx(1.0)
    assert lp.matrix_cosine(a, -a) == pytest.approx(-1.0)
    assert lp.matrix_cosine(np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(0.0)
    assert lp.matrix_cosine(a, np.eye(3)) == pytest.approx(6.0 / (np.sqrt(14.0) * np.sqrt(3.0)))


def test_match_gd_lr_recovers_lr(batch):
    y_hat = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.37, steps=2)
    assert lp.match_gd_lr(batch, y_hat, 2, 2.0) == pytest.approx(0.37, abs=1e-5)


def _looped_config(name="looped"):
    return ExperimentConfig(
        name=name, task=tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=5.0, n_query=4),
        model=ModelConfig(n_layers=LOOPS, shared=True, attention="linear"),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=256),
    )


def _gd_type_layer(gamma, extra=0.0):
    """A shared layer with A = [[-gamma, 0], [0, 0]], B = e_y e_y^T (+ extra on B's x block)."""
    a, b = np.zeros((D + 1, D + 1)), np.zeros((D + 1, D + 1))
    a[:D, :D], b[D, D] = -gamma, 1.0
    b[:D, :D] = extra * np.eye(D)
    eye = np.eye(D + 1)[None]
    return {"layers": {0: {"query": a[None], "key": eye, "value": b[None], "out": eye}}}


def test_looped_gd_type_layer_is_multistep_pgd(batch):
    config = _looped_config()
    g = _gamma()
    params = runs.stack_seeds([_gd_type_layer(g), _gd_type_layer(g, extra=0.05)])
    models = train.seed_models(config, params)
    preds = models[0].layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, n_layers=LOOPS)
    for k in range(1, LOOPS + 1):  # the construction of the module docstring: loop l = l steps of (1)
        np.testing.assert_allclose(preds[k - 1], lp.pgd_predictor(g, k)(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=1e-8, atol=1e-10)
    assert lp.x_write_share(models[0].layers[0]) == 0.0
    assert lp.x_write_share(models[1].layers[0]) == pytest.approx(0.05 * np.sqrt(D) / np.sqrt(1 + 0.05**2 * D))
    result = lp.summarise(config, params, batch)
    exact = result["seeds"][0]
    for row in exact["loops"]:
        for k in ("pgd_read_off", "pgd_fitted_loop1"):
            assert row[k]["model_cos"] == pytest.approx(1.0, abs=1e-9) and row[k]["preds_diff"] < 1e-9
            assert row[k]["loss"] == pytest.approx(row["model_loss"], rel=1e-9)
    np.testing.assert_allclose(exact["gamma"]["fitted_loop1"]["matrix"], g, atol=1e-9)
    assert exact["gamma"]["read_off"]["cos_identity"] == pytest.approx(lp.matrix_cosine(g, np.eye(D)))
    # the x-writing seed changes the inputs between loops: loop 1 is still one step, later loops are not
    drift = result["seeds"][1]["loops"]
    assert drift[0]["pgd_read_off"]["preds_diff"] < 1e-9 and drift[2]["pgd_read_off"]["preds_diff"] > 1e-4
    assert result["min_model_cos_over_seeds"]["pgd_read_off"][0] == pytest.approx(1.0, abs=1e-9)


def test_gd_lr_on_gd_layer(batch):
    # Gamma = (lr / N) I: plain GD matches every loop with the same lr
    config = dataclasses.replace(_looped_config(), name="gd_looped")
    lr = 0.4
    params = runs.stack_seeds([_gd_type_layer(np.eye(D) * lr / N_CTX)] * 2)
    result = lp.summarise(config, params, batch)
    for row in result["seeds"][0]["loops"]:
        assert row["gd_lr"] == pytest.approx(lr, abs=1e-5) and row["gd"]["model_cos"] == pytest.approx(1.0, abs=1e-8)
    assert np.isfinite(result["seeds"][0]["gamma"]["read_off"]["cos_sigma_inverse"])
    assert len(result["optimal_loop_pgd"]["loss_per_loop"]) == LOOPS
    assert len(result["min_model_cos_over_seeds"]["gd"]) == LOOPS


def test_optimal_loop_gamma_one_step_is_gamma_star(key):
    # L = 1: the best preconditioner on many sampled tasks is Gamma* (closed form), up to Monte Carlo error
    sigma_task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=5.0, n_query=8)
    batch = sigma_task.sample(key, 20000)
    star = np.asarray(solvers.gamma_star(np.asarray(sigma_task.input_covariance), N_CTX))
    got = lp.optimal_loop_gamma(batch, 1, np.eye(D) * 0.01)
    assert np.linalg.norm(got - star) / np.linalg.norm(star) < 0.05
    # L = 2: a stationary point, at least as good as Gamma* and as its best multiple
    two = lp.optimal_loop_gamma(batch, 2, star)
    assert float(lp.pgd_loss(batch, two, 2)) <= min(float(lp.pgd_loss(batch, c * star, 2)) for c in (0.5, 1.0, 1.5, 2.0)) + 1e-12
