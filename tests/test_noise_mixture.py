"""The noise_mixture task family: a noise std per task, drawn from a set or a range (claim 17).
Its sampling statistics, that `sample_with_noise` returns the very batch `sample` draws and the
sigma it used, one-line errors for bad fields, its baselines and configs. (The shared contract,
tests/test_tasks.py, picks the family up with its defaults.)"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, experiments, tasks
from icl.config import ExperimentConfig
from icl.tasks.base import default_baselines

B = 40000


def _task(**fields):
    return tasks.get("noise_mixture", **{"d": 3, "n_ctx": 8, **fields})


def test_sample_with_noise_is_sample_and_sigma():
    task = _task(noise_levels=(0.5, 2.0, 4.0), n_query=2)
    batch, sigma = task.sample_with_noise(jax.random.key(0), 7)
    again = task.sample(jax.random.key(0), 7)
    jax.tree.map(np.testing.assert_array_equal, batch, again)
    assert sigma.shape == (7,) and sigma.dtype == batch.x_ctx.dtype
    assert set(np.asarray(sigma).tolist()) <= {0.5, 2.0, 4.0}
    jitted = jax.jit(task.sample_with_noise, static_argnums=1)(jax.random.key(0), 7)
    np.testing.assert_allclose(jitted[1], sigma)


@pytest.mark.parametrize("levels", [(1.0, 3.0), (0.0, 0.5, 1.0, 2.0)])
def test_choice_draws_each_level_equally_often_and_labels_carry_that_noise(levels):
    task = _task(noise_levels=levels, n_query=2, weight_std=1.5)
    batch, sigma = task.sample_with_noise(jax.random.key(1), B)
    sigma = np.asarray(sigma)
    k = len(levels)
    for v in levels:
        share = np.mean(sigma == v)
        assert share == pytest.approx(1 / k, abs=4 * np.sqrt((1 / k) * (1 - 1 / k) / B))
    # the residual y - w . x is sigma_t eps, on context and query points alike
    resid_ctx = np.asarray(batch.y_ctx - jnp.einsum("bnd,bd->bn", batch.x_ctx, batch.w))
    resid_q = np.asarray(batch.y_query - jnp.einsum("bmd,bd->bm", batch.x_query, batch.w))
    for v in levels:
        on = sigma == v
        for resid in (resid_ctx, resid_q):
            var = np.mean(resid[on] ** 2)
            assert var == pytest.approx(v**2, abs=0.03 * max(v**2, 1e-3) + 1e-12)
    # x ~ N(0, I) and w ~ N(0, tau^2 I), whatever the noise
    x = np.asarray(batch.x_ctx).reshape(-1, 3)
    np.testing.assert_allclose(x.mean(0), 0, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), np.eye(3), atol=0.01)
    np.testing.assert_allclose(np.asarray(batch.w).std(0), 1.5, rtol=0.02)


def test_uniform_draws_sigma_uniformly_in_the_range():
    task = _task(noise_dist="uniform", noise_levels=(0.5, 3.0))
    _, sigma = task.sample_with_noise(jax.random.key(2), B)
    sigma = np.asarray(sigma)
    assert sigma.min() >= 0.5 and sigma.max() <= 3.0
    assert sigma.mean() == pytest.approx(1.75, abs=4 * 2.5 / np.sqrt(12 * B))
    assert sigma.var() == pytest.approx(2.5**2 / 12, rel=0.03)
    counts, _ = np.histogram(sigma, bins=5, range=(0.5, 3.0))
    np.testing.assert_allclose(counts / B, 0.2, atol=4 * np.sqrt(0.2 * 0.8 / B))


@pytest.mark.parametrize(("fields", "expected"), [
    (dict(noise_levels=(1.0, 3.0)), 5.0),
    (dict(noise_levels=(0.0, 0.5, 1.0, 2.0)), (0 + 0.25 + 1 + 4) / 4),
    (dict(noise_dist="uniform", noise_levels=(0.0, 3.0)), 3.0),
    (dict(noise_dist="uniform", noise_levels=(1.0, 2.0)), 7 / 3),
])
def test_noise_variance_is_the_mean_of_sigma_squared(fields, expected):
    task = _task(**fields)
    assert task.noise_variance == pytest.approx(expected)
    _, sigma = task.sample_with_noise(jax.random.key(3), B)
    assert float(np.mean(np.asarray(sigma) ** 2)) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize(("fields", "match"), [
    (dict(noise_dist="gaussian"), r"noise_mixture task: noise_dist must be one of \('choice', 'uniform'\), got 'gaussian'"),
    (dict(noise_levels=()), "noise_mixture task: noise_levels must be a non-empty tuple of numbers, got ()"),
    (dict(noise_levels=1.0), "noise_mixture task: noise_levels must be a non-empty tuple of numbers, got 1.0"),
    (dict(noise_levels=(1.0, "a")), "noise_mixture task: noise_levels must be a non-empty tuple of numbers"),
    (dict(noise_levels=(True, 1.0)), "noise_mixture task: noise_levels must be a non-empty tuple of numbers"),
    (dict(noise_levels=(1.0, -0.5)), r"noise_mixture task: noise_levels must be >= 0 \(noise stds\), got \(1.0, -0.5\)"),
    (dict(noise_levels=(1.0, float("nan"))), "noise_mixture task: noise_levels must be finite"),
    (dict(noise_dist="uniform", noise_levels=(0.0, 1.0, 2.0)), r"noise_dist='uniform' takes noise_levels=\(lo, hi\) with lo < hi"),
    (dict(noise_dist="uniform", noise_levels=(2.0, 1.0)), r"noise_dist='uniform' takes noise_levels=\(lo, hi\) with lo < hi"),
    (dict(weight_std=-1.0), "noise_mixture task: weight_std must be a number >= 0"),
    (dict(d=0), "noise_mixture task: d must be"),
    (dict(n_ctx=2.5), "noise_mixture task: n_ctx must be"),
    (dict(noise_std=0.5), "task family 'noise_mixture' has no parameter"),
])
def test_bad_fields_are_one_line_errors(fields, match):
    with pytest.raises(ValueError, match=match) as error:
        _task(**fields)
    assert "\n" not in str(error.value)


def test_levels_are_stored_as_a_tuple_of_floats():
    task = _task(noise_levels=[1, 3])
    assert task.noise_levels == (1.0, 3.0) and hash(task) == hash(_task(noise_levels=(1.0, 3.0)))
    assert dataclasses.replace(task, noise_levels=(2,)).noise_levels == (2.0,)


def test_baselines_and_the_default_ridge_lambda():
    task = _task(noise_levels=(1.0, 3.0), weight_std=2.0)
    assert default_baselines(task) == ("ridge", "least_squares", "gd", "gd_plus_plus")
    _, hparams = compare.solver_predictor("ridge", task, jax.random.key(0))
    assert hparams["lam"] == pytest.approx(5.0 / 4.0)  # E[sigma^2] / tau^2
    _, spec = compare.solver_predictor("ridge(lam=0.3)", task, jax.random.key(0))
    assert spec["lam"] == 0.3
    _, gd = compare.solver_predictor("gd", task, jax.random.key(0))
    assert 0 < gd["lr"] < 1  # the optimal one-step rate, estimated on the task's own tasks


def test_claim17_configs_round_trip():
    for name in ("claim17_mixed_noise_choice", "claim17_mixed_noise_uniform"):
        for mode in ("full", "quick"):
            config = experiments.get(name, mode=mode)
            assert ExperimentConfig.from_dict(config.to_dict()) == config
            assert config.task.family == "noise_mixture"
