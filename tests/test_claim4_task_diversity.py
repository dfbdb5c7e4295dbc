"""Numerics of paper_figures/claim4_task_diversity.py: the chunked dMMSE, the Delta PM and MSE
reductions, the threshold crossover, and the evaluation on an untrained model against closed forms
(float64, see conftest)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper_figures"))

import claim4_task_diversity as c4  # noqa: E402
from icl import solvers, train  # noqa: E402


def test_dmmse_chunked_equals_one_pass(key):
    task = c4.task_for(5, n_query=3)
    batch = task.sample(key, 37)
    whole = solvers.baselines.dmmse(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, c4.NOISE_STD)
    chunked = c4.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, c4.NOISE_STD,
                               max_elements=32 * c4.N_CTX * 5)  # 5 tasks per chunk, last chunk of 2
    assert chunked.shape == (37, 3)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_dmmse_of_a_one_task_pool_is_that_task():
    """K = 1: the posterior is a point mass, so dMMSE predicts w_1 . x_q whatever the context."""
    task = c4.task_for(0, n_query=2)
    batch = task.sample(jax.random.key(3), 11)
    y = c4.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, c4.NOISE_STD)
    np.testing.assert_allclose(y, np.einsum("bmd,d->bm", batch.x_query, task.pool[0]), rtol=1e-12)


def test_pools_are_nested_and_fixed():
    small, large = c4.task_for(3).pool, c4.task_for(6).pool
    assert small.shape == (8, c4.D) and large.shape == (64, c4.D)
    np.testing.assert_array_equal(small, large[:8])
    np.testing.assert_array_equal(large, c4.task_for(6).pool)


def test_mse_and_delta_pm_reduce_tasks_and_queries():
    a = jnp.arange(24.0).reshape(2, 3, 4)  # [S, B, M]
    b = jnp.ones((1, 3, 4))
    np.testing.assert_allclose(c4.delta_pm(a, b), [np.mean((np.arange(12.0) - 1) ** 2), np.mean((np.arange(12.0, 24.0) - 1) ** 2)])
    np.testing.assert_allclose(c4.mse(a[0], b[0]), np.mean((np.arange(12.0) - 1) ** 2))
    assert c4.delta_pm(a, a).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "score, expected",
    [
        ([-1.0, -0.5, 0.5, 1.0], {"log2_k": 2.5, "where": "between", "monotone": True}),
        ([-3.0, -1.0, 1.0, 3.0], {"log2_k": 2.5, "where": "between", "monotone": True}),
        ([-1.0, 0.0, 3.0, -2.0], {"log2_k": 2 + 0.0, "where": "between", "monotone": False}),
        ([0.1, 0.2, 0.3, 0.4], {"log2_k": 1.0, "where": "below_grid", "monotone": True}),
        ([-0.1, -0.2, -0.3, -0.4], {"log2_k": None, "where": "above_grid", "monotone": True}),
    ],
)
def test_crossover(score, expected):
    out = c4.crossover([1, 2, 3, 4], score)
    assert out["where"] == expected["where"] and out["monotone"] == expected["monotone"]
    if expected["log2_k"] is None:
        assert out["log2_k"] is None
    else:
        assert out["log2_k"] == pytest.approx(expected["log2_k"], abs=1e-12)


def test_crossover_interpolates_on_an_uneven_grid():
    # score -2 at log2 K = 4, +1 at log2 K = 10: the line crosses 0 two thirds of the way, at 8
    assert c4.crossover([1, 4, 10], [-5.0, -2.0, 1.0])["log2_k"] == pytest.approx(8.0, abs=1e-12)


def test_crossover_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        c4.crossover([1, 1, 2], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        c4.crossover([1, 2], [0.0])
    with pytest.raises(ValueError, match="finite"):
        c4.crossover([1, 2], [0.0, np.nan])
    with pytest.raises(ValueError, match="log2_k"):
        c4.task_for(-1)
    with pytest.raises(ValueError, match="model must be one of"):
        c4.make_config("gpt", 2, quick=True)


def test_evaluate_matches_closed_forms_on_an_untrained_model():
    """evaluate() on an untrained 2-seed model: its ridge / dMMSE / model numbers equal the same
    quantities computed here directly, and the scores are ln dPM(dMMSE) - ln dPM(ridge)."""
    config = c4.make_config("lsa1", 2, quick=True)
    params, _ = train.Trainer(config).init()
    out = c4.evaluate(config, params, 2, n_tasks=50)
    root = jax.random.key(config.train.eval_seed)
    pool_batch = c4.task_for(2, c4.EVAL_QUERIES).sample(jax.random.fold_in(root, 7), 50)
    y_model = c4.model_predictions(config, params, pool_batch)  # [S, B, M]
    assert y_model.shape == (2, 50, c4.EVAL_QUERIES)
    y_ridge = solvers.ridge(pool_batch.x_ctx, pool_batch.y_ctx, pool_batch.x_query, lam=0.25)
    y_dmmse = solvers.baselines.dmmse(pool_batch.x_ctx, pool_batch.y_ctx, pool_batch.x_query, config.task.pool, 0.5)
    pool = out["pool"]
    assert pool["ridge_mse"] == pytest.approx(float(np.mean((y_ridge - pool_batch.y_query) ** 2)), rel=1e-10)
    assert pool["dmmse_mse"] == pytest.approx(float(np.mean((y_dmmse - pool_batch.y_query) ** 2)), rel=1e-10)
    np.testing.assert_allclose(pool["dpm_ridge"]["values"], np.mean((y_model - y_ridge[None]) ** 2, axis=(1, 2)), rtol=1e-10)
    np.testing.assert_allclose(
        pool["score"], np.log(pool["dpm_dmmse"]["values"]) - np.log(pool["dpm_ridge"]["values"]), rtol=1e-12)
    # dMMSE is Bayes-optimal on its pool: better than ridge there, and far worse on fresh tasks
    assert pool["dmmse_mse"] < pool["ridge_mse"]
    assert out["fresh"]["dmmse_mse"] > 2 * out["fresh"]["ridge_mse"]
    # K = inf has no pool: fresh tasks only, no dMMSE
    inf = c4.evaluate(c4.make_config("lsa1", None, quick=True), params, None, n_tasks=20)
    assert "pool" not in inf and "dmmse_mse" not in inf["fresh"]


def test_thresholds_per_seed():
    rows = [{"log2_K": k, "fresh": {"score": s}} for k, s in ((1, [-1.0, 1.0]), (3, [1.0, 2.0]))]
    rows.append({"log2_K": None, "fresh": {}})
    out = c4.thresholds(rows)
    assert [c["where"] for c in out["per_seed"]] == ["between", "below_grid"]
    assert out["per_seed"][0]["log2_k"] == pytest.approx(2.0)
    assert out["count"] == {"below_grid": 1, "between": 1, "above_grid": 0}


def test_lmmse_with_isotropic_covariance_is_ridge(key):
    """cov = tau^2 I: w = tau^2 X^T (tau^2 X X^T + sigma^2 I)^{-1} y = (X^T X + sigma^2/tau^2 I)^{-1} X^T y."""
    batch = c4.task_for(None, n_query=3).sample(key, 40)
    tau, sigma = 1.7, 0.5
    y = c4.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, tau**2 * np.eye(c4.D), sigma)
    np.testing.assert_allclose(y, solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=(sigma / tau) ** 2), rtol=1e-9, atol=1e-10)


def test_lmmse_of_a_one_task_pool_shrinks_along_that_task(key):
    """K = 1, cov = w1 w1^T: w_hat = c w1 with c = a^T y / (sigma^2 + a^T a), a = X w1 (a scalar
    Gaussian posterior mean along w1), and Sigma_K is the pool's second moment."""
    task = c4.task_for(0, n_query=2)
    w1 = task.pool[0]
    np.testing.assert_allclose(c4.pool_second_moment(task.pool), np.outer(w1, w1), rtol=1e-12)
    batch = task.sample(key, 9)
    y = c4.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, c4.pool_second_moment(task.pool), c4.NOISE_STD)
    a = np.einsum("bnd,d->bn", batch.x_ctx, w1)
    c = np.sum(a * np.asarray(batch.y_ctx), 1) / (c4.NOISE_STD**2 + np.sum(a * a, 1))  # [B]
    np.testing.assert_allclose(y, c[:, None] * np.einsum("bmd,d->bm", batch.x_query, w1), rtol=1e-9)


def test_dmmse_beats_lmmse_beats_ridge_on_a_small_pool(key):
    """On tasks from a pool of K = 8 the Bayes (dMMSE) error is below the best linear one, which is
    below ridge's (ridge is linear in y too); on fresh tasks the order of LMMSE and ridge flips."""
    task = c4.task_for(3, n_query=4)
    batch = task.sample(key, 3000)
    cov = c4.pool_second_moment(task.pool)
    err = {
        "dmmse": c4.mse(c4.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, c4.NOISE_STD), batch.y_query),
        "lmmse": c4.mse(c4.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, cov, c4.NOISE_STD), batch.y_query),
        "ridge": c4.mse(solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=c4.LAM), batch.y_query),
    }
    assert err["dmmse"] < 0.9 * err["lmmse"] and err["lmmse"] < err["ridge"]
    fresh = c4.task_for(None, n_query=4).sample(key, 3000)
    assert c4.mse(c4.lmmse(fresh.x_ctx, fresh.y_ctx, fresh.x_query, cov, c4.NOISE_STD), fresh.y_query) > c4.mse(
        solvers.ridge(fresh.x_ctx, fresh.y_ctx, fresh.x_query, lam=c4.LAM), fresh.y_query)
