"""icl.analysis.task_pool: the chunked dMMSE, LMMSE of a pool, the Delta PM and MSE reductions, the
threshold crossover, and the evaluation of an untrained model against closed forms (float64,
conftest). The pools are claim 4's (`icl.experiments.claim4_task_diversity`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import runs, solvers
from icl.analysis import task_pool as tp
from icl.experiments import claim4_task_diversity as study


def test_dmmse_chunked_equals_one_pass(key):
    task = study.task_for(5, n_query=3)
    batch = task.sample(key, 37)
    whole = solvers.baselines.dmmse(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, study.NOISE_STD)
    chunked = tp.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, study.NOISE_STD,
                               max_elements=32 * study.N_CTX * 5)  # 5 tasks per chunk, last chunk of 2
    assert chunked.shape == (37, 3)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)


def test_dmmse_of_a_one_task_pool_is_that_task():
    """K = 1: the posterior is a point mass, so dMMSE predicts w_1 . x_q whatever the context."""
    task = study.task_for(0, n_query=2)
    batch = task.sample(jax.random.key(3), 11)
    y = tp.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, study.NOISE_STD)
    np.testing.assert_allclose(y, np.einsum("bmd,d->bm", batch.x_query, task.pool[0]), rtol=1e-12)


def test_pools_are_nested_and_fixed():
    small, large = study.task_for(3).pool, study.task_for(6).pool
    assert small.shape == (8, study.D) and large.shape == (64, study.D)
    np.testing.assert_array_equal(small, large[:8])
    np.testing.assert_array_equal(large, study.task_for(6).pool)


def test_mse_and_delta_pm_reduce_tasks_and_queries():
    a = jnp.arange(24.0).reshape(2, 3, 4)  # [S, B, M]
    b = jnp.ones((1, 3, 4))
    np.testing.assert_allclose(tp.delta_pm(a, b), [np.mean((np.arange(12.0) - 1) ** 2), np.mean((np.arange(12.0, 24.0) - 1) ** 2)])
    np.testing.assert_allclose(tp.mse(a[0], b[0]), np.mean((np.arange(12.0) - 1) ** 2))
    assert tp.delta_pm(a, a).tolist() == [0.0, 0.0]


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
    out = tp.crossover([1, 2, 3, 4], score)
    assert out["where"] == expected["where"] and out["monotone"] == expected["monotone"]
    if expected["log2_k"] is None:
        assert out["log2_k"] is None
    else:
        assert out["log2_k"] == pytest.approx(expected["log2_k"], abs=1e-12)


def test_crossover_interpolates_on_an_uneven_grid():
    # score -2 at log2 K = 4, +1 at log2 K = 10: the line crosses 0 two thirds of the way, at 8
    assert tp.crossover([1, 4, 10], [-5.0, -2.0, 1.0])["log2_k"] == pytest.approx(8.0, abs=1e-12)


def test_crossover_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        tp.crossover([1, 1, 2], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        tp.crossover([1, 2], [0.0])
    with pytest.raises(ValueError, match="finite"):
        tp.crossover([1, 2], [0.0, np.nan])
    with pytest.raises(ValueError, match="log2_k"):
        study.task_for(-1)
    with pytest.raises(ValueError, match="model must be one of"):
        study.config("gpt", 2, "quick")


def test_evaluate_matches_closed_forms_on_an_untrained_model():
    """evaluate() on an untrained 2-seed model: its ridge / dMMSE / model numbers equal the same
    quantities computed here directly, and the scores are ln dPM(dMMSE) - ln dPM(ridge)."""
    config = study.config("lsa1", 2, "quick")
    params = runs.initial_params(config)
    fresh_task, pool_task = study.task_for(None, study.EVAL_QUERIES), study.task_for(2, study.EVAL_QUERIES)
    out = tp.evaluate(config, params, fresh_task, pool_task, 50, study.LAM, study.NOISE_STD)
    pool_batch = pool_task.sample(jax.random.fold_in(jax.random.key(config.train.eval_seed), 7), 50)
    y_model = tp.model_predictions(config, params, pool_batch)  # [S, B, M]
    assert y_model.shape == (2, 50, study.EVAL_QUERIES)
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
    inf = tp.evaluate(study.config("lsa1", None, "quick"), params, fresh_task, None, 20, study.LAM, study.NOISE_STD)
    assert "pool" not in inf and "dmmse_mse" not in inf["fresh"]


def test_thresholds_per_seed():
    rows = [{"log2_K": k, "fresh": {"score": s}} for k, s in ((1, [-1.0, 1.0]), (3, [1.0, 2.0]))]
    rows.append({"log2_K": None, "fresh": {}})
    out = tp.thresholds(rows)
    assert [c["where"] for c in out["per_seed"]] == ["between", "below_grid"]
    assert out["per_seed"][0]["log2_k"] == pytest.approx(2.0)
    assert out["count"] == {"below_grid": 1, "between": 1, "above_grid": 0}


def test_lmmse_with_isotropic_covariance_is_ridge(key):
    """cov = tau^2 I: w = tau^2 X^T (tau^2 X X^T + sigma^2 I)^{-1} y = (X^T X + sigma^2/tau^2 I)^{-1} X^T y."""
    batch = study.task_for(None, n_query=3).sample(key, 40)
    tau, sigma = 1.7, 0.5
    y = tp.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, tau**2 * np.eye(study.D), sigma)
    np.testing.assert_allclose(y, solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=(sigma / tau) ** 2), rtol=1e-9, atol=1e-10)


def test_lmmse_of_a_one_task_pool_shrinks_along_that_task(key):
    """K = 1, cov = w1 w1^T: w_hat = c w1 with c = a^T y / (sigma^2 + a^T a), a = X w1 (a scalar
    Gaussian posterior mean along w1), and Sigma_K is the pool's second moment."""
    task = study.task_for(0, n_query=2)
    w1 = task.pool[0]
    np.testing.assert_allclose(tp.pool_second_moment(task.pool), np.outer(w1, w1), rtol=1e-12)
    batch = task.sample(key, 9)
    y = tp.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, tp.pool_second_moment(task.pool), study.NOISE_STD)
    a = np.einsum("bnd,d->bn", batch.x_ctx, w1)
    c = np.sum(a * np.asarray(batch.y_ctx), 1) / (study.NOISE_STD**2 + np.sum(a * a, 1))  # [B]
    np.testing.assert_allclose(y, c[:, None] * np.einsum("bmd,d->bm", batch.x_query, w1), rtol=1e-9)


def test_dmmse_beats_lmmse_beats_ridge_on_a_small_pool(key):
    """On tasks from a pool of K = 8 the Bayes (dMMSE) error is below the best linear one, which is
    below ridge's (ridge is linear in y too); on fresh tasks the order of LMMSE and ridge flips."""
    task = study.task_for(3, n_query=4)
    batch = task.sample(key, 3000)
    cov = tp.pool_second_moment(task.pool)
    err = {
        "dmmse": tp.mse(tp.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, task.pool, study.NOISE_STD), batch.y_query),
        "lmmse": tp.mse(tp.lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, cov, study.NOISE_STD), batch.y_query),
        "ridge": tp.mse(solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=study.LAM), batch.y_query),
    }
    assert err["dmmse"] < 0.9 * err["lmmse"] and err["lmmse"] < err["ridge"]
    fresh = study.task_for(None, n_query=4).sample(key, 3000)
    assert tp.mse(tp.lmmse(fresh.x_ctx, fresh.y_ctx, fresh.x_query, cov, study.NOISE_STD), fresh.y_query) > tp.mse(
        solvers.ridge(fresh.x_ctx, fresh.y_ctx, fresh.x_query, lam=study.LAM), fresh.y_query)


def test_quick_runs_are_registered_under_names_of_their_own():
    """The run name carries steps and batch (the cosine schedule depends on them): the quick runs
    are separate registry entries, each reproducing its run exactly."""
    from icl import experiments

    quick, full = study.configs("quick"), study.configs("full")
    assert {c.name for c in quick}.isdisjoint(c.name for c in full)
    for c in quick + full:
        assert experiments.get(c.name) == c
    assert all(c.optim.warmup_steps == c.train.steps // 10 and c.train.ckpt_every == c.train.steps for c in quick + full)
