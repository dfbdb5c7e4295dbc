"""icl.analysis.tuning: the 1-d minimiser, GD / GD++ tuning against closed forms, the validation search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.analysis import tuning


@pytest.fixture(scope="module")
def batch():
    return tasks.get("linear", d=4, n_ctx=8).sample(jax.random.key(3), 256)


def test_minimise_1d_finds_an_interior_minimum_to_high_precision():
    f = lambda t: (t - 0.3137) ** 2 + 1.0
    assert tuning.minimise_1d(f, 0.0, 1.0) == pytest.approx(0.3137, abs=1e-7)


def test_minimise_1d_stays_in_the_interval_when_the_minimum_is_at_an_end():
    t = tuning.minimise_1d(lambda t: (t + 1.0) ** 2, 0.0, 2.0, n_grid=21)
    assert 0.0 <= t < 1e-6


def test_minimise_1d_ignores_non_finite_values():
    f = lambda t: jnp.where(t > 0.8, jnp.nan, (t - 0.5) ** 2)
    assert tuning.minimise_1d(f, 0.0, 1.0, n_grid=51) == pytest.approx(0.5, abs=1e-6)


def test_tune_gd_one_step_is_the_closed_form_rate(batch):
    """One GD step predicts lr * a (a = solvers.gd_direction), so the best lr is sum a y / sum a^2."""
    a = solvers.gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query)
    best = float(jnp.sum(a * batch.y_query) / jnp.sum(a * a))
    assert tuning.tune_gd(batch, 1, 3 * best) == pytest.approx(best, rel=1e-5)


def test_tune_gd_beats_its_neighbours(batch):
    lr = tuning.tune_gd(batch, 3, 20.0)

    def loss(rate):
        return float(compare.loss(solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=rate, steps=3), batch.y_query))

    assert loss(lr) <= min(loss(0.98 * lr), loss(1.02 * lr))


def test_tune_gd_plus_plus_one_step_is_gd(batch):
    lr, gamma = tuning.tune_gd_plus_plus(batch, 1, 20.0)
    assert gamma == 0.0
    assert lr == pytest.approx(tuning.tune_gd(batch, 1, 20.0), rel=1e-6)


def test_tune_gd_plus_plus_is_at_least_as_good_as_gd(batch):
    """GD++ at gamma = 0 is GD, so its fitted (lr, gamma) cannot lose to GD's tuned lr."""
    hp = tuning.tune_depth(batch, 2, 20.0)
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    gd = compare.loss(solvers.gd(xc, yc, xq, lr=hp["gd_lr"], steps=2), batch.y_query)
    pp = compare.loss(solvers.gd_plus_plus(xc, yc, xq, lr=hp["gd_plus_plus_lr"], gamma=hp["gd_plus_plus_gamma"], steps=2), batch.y_query)
    assert float(pp) <= float(gd) + 1e-9
    assert hp["gd_plus_plus_gamma"] != 0.0


def test_grid_search_takes_the_first_lowest_finite_point():
    losses = {"a": 3.0, "b": float("nan"), "c": 1.0, "d": float("-inf"), "e": 1.0}
    best, values = tuning.grid_search(losses.get, list(losses))
    assert best == "c"
    assert values[0] == 3.0 and np.isnan(values[1])


def test_grid_search_with_no_finite_loss_fails_loudly():
    with pytest.raises(ValueError, match="finite"):
        tuning.grid_search(lambda _: float("inf"), [1, 2])


def test_tune_solver_picks_the_validation_minimum_and_reports_its_test_loss():
    task = tasks.get("linear", d=5, n_ctx=6, input_dist="gaussian", noise_std=1.0)
    val, test = task.sample(jax.random.key(1), 600), task.sample(jax.random.key(2), 600)
    grid = [{"lam": lam} for lam in (0.0, 0.1, 1.0, 10.0, 100.0)]
    out = tuning.tune_solver(solvers.ridge, grid, val, test)
    assert len(out["validation_losses"]) == len(grid)
    assert out["hparams"] == grid[int(np.argmin(out["validation_losses"]))]
    assert out["hparams"] == {"lam": 1.0}  # the Bayes-optimal lam = sigma^2 / tau^2
    direct = compare.loss(solvers.ridge(test.x_ctx, test.y_ctx, test.x_query, lam=1.0), test.y_query)
    assert out["loss"] == pytest.approx(float(direct))
