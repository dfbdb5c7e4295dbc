"""icl.analysis.transient_ridge: the distance (claim 4's dPM), the running median, the transient
rule on synthetic curves (a transient, a ridge run that stays, direct memorisation, a near-zero
early model, a rise without a fall), the verdict rule, and the claim's configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers, tasks
from icl.analysis import transient_ridge as tr
from icl.experiments import claim19_transient_ridge as study

STEPS = np.arange(0, 2050, 50)
T = STEPS / STEPS[-1]


def test_distance_is_mean_squared_prediction_difference():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 5, 4)), rng.standard_normal((5, 4))
    np.testing.assert_allclose(tr.distance(jnp.asarray(a), jnp.asarray(b)), ((a - b[None]) ** 2).mean(axis=(1, 2)), rtol=1e-6)
    assert float(tr.distance(jnp.asarray(b), jnp.asarray(b))) == 0.0


def test_references_on_a_small_pool():
    task = tasks.get("linear_pool", d=3, n_ctx=12, n_query=2, pool_size=4, pool_seed=0, noise_std=0.5, weight_std=1.0)
    batch = task.sample(jax.random.key(0), 64)
    refs = tr.references(batch, task.pool, lam=0.25, noise_std=0.5)
    np.testing.assert_allclose(refs["ridge"], solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=0.25), rtol=1e-6)
    assert refs["dmmse"].shape == batch.y_query.shape
    # on its own pool dMMSE beats ridge
    assert np.mean((refs["dmmse"] - batch.y_query) ** 2) < np.mean((refs["ridge"] - batch.y_query) ** 2)


def test_smooth_removes_a_single_spike():
    y = np.ones(9)
    y[4] = 100.0
    np.testing.assert_allclose(tr.smooth(y), np.ones(9))


def _curves(ridge, dmmse):
    return tr.transient(STEPS, ridge, dmmse, ridge_sq=8.0)


def test_a_transient_is_detected():
    ridge = 0.3 + 8 * np.exp(-T / 0.05) + 3 * np.clip(T - 0.4, 0, None)  # down to ~0.3, then up to ~2.1
    dmmse = 6.0 - 5.0 * np.clip(T - 0.4, 0, None) / 0.6 + 2 * np.exp(-T / 0.05)
    r = _curves(ridge, dmmse)
    assert r["ridge_like"] and r["rises"] and r["falls"] and r["transient"]
    assert 300 <= r["min_step"] <= 900
    assert r["crossed"]


def test_a_ridge_run_that_stays_is_not_transient():
    ridge = 0.4 + 8 * np.exp(-T / 0.1)
    dmmse = np.full_like(T, 4.5)
    r = _curves(ridge, dmmse)
    assert r["ridge_like"] and not r["rises"] and not r["transient"] and not r["crossed"]


def test_direct_memorisation_is_not_transient():
    ridge = 6.0 + 4 * np.exp(-T / 0.1)
    dmmse = 0.5 + 8 * np.exp(-T / 0.1)
    r = _curves(ridge, dmmse)
    assert not r["ridge_like"] and not r["transient"] and r["crossed"]


def test_a_near_zero_model_is_not_ridge_like_even_when_nearer_ridge():
    # the distances of an early, small model: below d_dmmse but most of E[ridge^2] = 8
    ridge = 6.0 - T + 4 * np.clip(T - 0.5, 0, None)
    dmmse = 9.0 - 5 * T
    r = _curves(ridge, dmmse)
    assert r["d_ridge_min"] < r["d_dmmse_at_min"] and not r["ridge_like"] and not r["transient"]


def test_a_rise_without_the_move_to_dmmse_is_not_transient():
    ridge = 0.3 + 8 * np.exp(-T / 0.05) + 3 * np.clip(T - 0.4, 0, None)
    dmmse = np.full_like(T, 5.0)
    r = _curves(ridge, dmmse)
    assert r["ridge_like"] and r["rises"] and not r["falls"] and not r["transient"]


def test_transient_rejects_bad_curves():
    with pytest.raises(ValueError):
        tr.transient(STEPS, np.ones(len(STEPS)), np.ones(len(STEPS) - 1), 8.0)
    with pytest.raises(ValueError):
        tr.transient(STEPS, np.zeros(len(STEPS)), np.ones(len(STEPS)), 8.0)


@pytest.mark.parametrize("by_role, expected", [
    ({"small": [(0, 3)], "intermediate": [(2, 3), (0, 3)], "large": [(0, 3)]}, "held"),
    ({"small": [(0, 3)], "intermediate": [(1, 3), (1, 3)], "large": [(0, 3)]}, "held in part"),
    ({"small": [(0, 3)], "intermediate": [(3, 3)], "large": [(2, 3)]}, "held in part"),
    ({"small": [(2, 3)], "intermediate": [(0, 3)], "large": [(0, 3)]}, "did not hold"),
    ({"intermediate": [(0, 2)]}, "did not hold"),
    ({"intermediate": [(1, 2)]}, "held in part"),  # one of two is not a majority
])
def test_verdict(by_role, expected):
    assert tr.verdict(by_role) == expected


def test_verdict_rejects_unknown_roles():
    with pytest.raises(ValueError):
        tr.verdict({"medium": [(1, 1)]})


def test_study_configs():
    full, quick = study.configs("full"), study.configs("quick")
    assert set(full) == set(study.ROLES) and set(quick) <= set(full)
    for k, c in full.items():
        assert c.task.pool_size == k and c.train.steps == study.FULL_STEPS and c.train.eval_every == study.EVAL_EVERY["full"]
        assert c.optim.warmup_steps == c.train.steps // 10 and f"_k{k}_" in c.name and c.optim.schedule == "constant"
    assert study.pool_task(16).pool[:4].tolist() == study.pool_task(4).pool.tolist()  # nested pools
    assert all(c.train.steps < study.FULL_STEPS for c in quick.values())
    with pytest.raises(ValueError):
        study.config(8)
