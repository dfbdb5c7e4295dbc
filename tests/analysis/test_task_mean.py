"""icl.analysis.task_mean: one GD step from w0 with a non-zero task mean in closed form (against
Monte Carlo), its optimal rate, least squares, the GD-beta fit of predictions (exact on GD steps),
the gap and verdict rules, the summary on a hand-made layer, and the `weight_mean` field."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, runs, solvers, tasks, trainer
from icl.analysis import task_mean as tm
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

D, N_CTX = 4, 8


def _task(n_ctx=N_CTX, **fields):
    return tasks.get("linear", d=D, n_ctx=n_ctx, input_dist="gaussian", **fields)


@pytest.mark.parametrize(("fields", "w0_shift"), [
    (dict(weight_mean=1.0), 0.0),  # from 0: |mu - w0|^2 = d
    (dict(weight_mean=1.0), 1.0),  # from mu
    (dict(weight_mean=-0.5, weight_std=1.5, noise_std=0.7), 0.25),  # w0 between, with noise
])
@pytest.mark.parametrize("lr", [0.3, 0.8])
def test_one_step_loss_matches_monte_carlo(fields, w0_shift, lr):
    task = _task(**fields)
    w0 = jnp.full((D,), task.weight_mean * w0_shift)
    batch = task.sample(jax.random.key(1), 200000)
    sq = np.asarray((solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, w0=w0) - batch.y_query) ** 2)
    offset_sq = D * (task.weight_mean * (1 - w0_shift)) ** 2
    exact = tm.one_step_loss(lr, D, N_CTX, offset_sq, task.weight_std**2, task.noise_std)
    assert 0.5 * sq.mean() == pytest.approx(exact, abs=4 * 0.5 * sq.std() / np.sqrt(sq.size))


@pytest.mark.parametrize(("offset_sq", "w_var", "noise"), [(0.0, 1.0, 0.0), (5.0, 1.0, 0.0), (2.0, 0.5, 0.8)])
def test_optimal_lr_minimises_the_loss(offset_sq, w_var, noise):
    lr = tm.optimal_lr(D, N_CTX, offset_sq, w_var, noise)
    grid = np.linspace(0.01, 2, 2000)
    losses = [tm.one_step_loss(g, D, N_CTX, offset_sq, w_var, noise) for g in grid]
    assert lr == pytest.approx(grid[int(np.argmin(losses))], abs=2e-3)
    assert tm.one_step_loss(lr, D, N_CTX, offset_sq, w_var, noise) <= min(losses) + 1e-12
    if noise == 0:
        assert lr == pytest.approx(N_CTX / (N_CTX + D + 1))
        assert tm.one_step_loss(lr, D, N_CTX, offset_sq, w_var) == pytest.approx(
            0.5 * (offset_sq + D * w_var) * (D + 1) / (N_CTX + D + 1))


def test_least_squares_loss_matches_monte_carlo():
    task = _task(n_ctx=12, noise_std=0.6, weight_mean=2.0)
    batch = task.sample(jax.random.key(2), 100000)
    sq = np.asarray((solvers.least_squares(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query) ** 2)
    assert 0.5 * sq.mean() == pytest.approx(tm.least_squares_loss(D, 12, 0.6), abs=4 * 0.5 * sq.std() / np.sqrt(sq.size))
    assert tm.least_squares_loss(D, N_CTX) == 0.0
    with pytest.raises(ValueError, match="N >= d"):
        tm.least_squares_loss(D, D - 1)
    with pytest.raises(ValueError, match="N > d"):
        tm.least_squares_loss(D, D + 1, 0.5)


def test_reference_and_gap():
    ref = tm.reference(_task(weight_mean=1.0))
    assert ref["mu_norm"] == pytest.approx(np.sqrt(D)) and ref["zero"] == pytest.approx(0.5 * 2 * D)
    assert ref["lr_from_zero"] == pytest.approx(ref["lr_from_mean"]) == pytest.approx(N_CTX / (N_CTX + D + 1))
    assert ref["gd_from_zero"] / ref["gd_from_mean"] == pytest.approx((D + D) / D)
    assert ref["least_squares"] == 0.0
    assert tm.gap_closed(ref["gd_from_zero"], ref["gd_from_zero"], ref["gd_from_mean"]) == 0.0
    assert tm.gap_closed(ref["gd_from_mean"], ref["gd_from_zero"], ref["gd_from_mean"]) == pytest.approx(1.0)
    assert tm.gap_closed(1.5, 2.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="x ~ N"):
        tm.reference(tasks.get("linear", d=D, n_ctx=N_CTX, weight_mean=1.0))  # uniform inputs


@pytest.mark.parametrize(("w0", "lr"), [(np.zeros(D), 0.6), (np.array([1.0, -0.5, 2.0, 0.3]), 0.45)])
def test_fit_gd_init_recovers_a_gd_step(w0, lr):
    batch = _task(weight_mean=1.0, n_query=2).sample(jax.random.key(3), 500)
    y_hat = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, w0=jnp.asarray(w0))
    fit = tm.fit_gd_init(y_hat, batch)
    np.testing.assert_allclose(fit["w0"], w0, atol=1e-8)
    assert float(fit["lr"]) == pytest.approx(lr) and float(fit["r2"]) == pytest.approx(1.0)
    np.testing.assert_allclose(fit["w0_from_c"], w0, atol=1e-8)


def test_gd_features_by_a_loop():
    batch = _task(n_query=3).sample(jax.random.key(4), 3)
    f = np.asarray(tm.gd_features(batch.x_ctx, batch.y_ctx, batch.x_query))
    x, y, xq = (np.asarray(a) for a in (batch.x_ctx, batch.y_ctx, batch.x_query))
    for b in range(3):
        for m in range(3):
            g = sum(y[b, i] * x[b, i] @ xq[b, m] for i in range(N_CTX)) / N_CTX
            h = sum(np.outer(x[b, i], x[b, i]) for i in range(N_CTX)) @ xq[b, m] / N_CTX
            np.testing.assert_allclose(f[b, m], np.concatenate([xq[b, m], [g], h]), atol=1e-12)


def test_verdict():
    assert tm.lsa_stuck(0.99) and not tm.lsa_stuck(0.9)
    assert tm.verdict([0.0, 0.3], [0.9, 0.85]) == "held"
    assert tm.verdict([0.6, 0.3], [0.9, 0.85]) == "held in part"
    assert tm.verdict([0.0, 0.0], [0.9, 0.5]) == "held in part"
    assert tm.verdict([0.0, 0.0], [0.1, 0.3]) == "did not hold"
    assert tm.verdict([0.85, 0.0], [0.9, 0.9]) == "did not hold"


def test_weight_mean_shifts_w_only():
    """weight_mean = 0 is the old sampler (the field's default); m != 0 adds m to every w, with the
    same x, noise and hence labels y + m sum(x)."""
    base, shifted = _task(noise_std=0.3), _task(noise_std=0.3, weight_mean=0.5)
    assert _task(noise_std=0.3, weight_mean=0.0) == base
    a, b = base.sample(jax.random.key(5), 50), shifted.sample(jax.random.key(5), 50)
    np.testing.assert_array_equal(a.x_ctx, b.x_ctx)
    np.testing.assert_allclose(b.w - a.w, 0.5, atol=1e-12)
    np.testing.assert_allclose(b.y_ctx - a.y_ctx, 0.5 * np.asarray(a.x_ctx).sum(-1), atol=1e-12)


def test_summarise_on_one_gd_step_from_zero(preconditioner_layer):
    """A layer that is exactly one GD step from 0 at the optimal rate: ratio 1 to it, gap 0, model_cos
    1 against it, fitted w0 = 0 and lr = lr*."""
    config = ExperimentConfig(
        name="t", task=_task(weight_mean=1.0), model=ModelConfig(n_layers=1, attention="linear"),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=3000),
        compare_against=("gd", "least_squares"),
    )
    lr = tm.reference(config.task)["lr_from_zero"]
    params = runs.stack_seeds([preconditioner_layer(lr / N_CTX * np.eye(D))] * 2)
    summary = trainer.final_table(config, params, config.compare_against, config.train.final_eval_tasks)
    out = tm.summarise(config, summary, params)
    assert out["over_gd_from_zero"]["mean"] == pytest.approx(1.0, rel=1e-6)
    assert out["gap_closed"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert out["vs"]["gd_from_zero"]["model_cos"]["mean"] == pytest.approx(1.0)
    assert out["vs"]["gd_from_mean"]["model_cos"]["mean"] < 0.99
    assert out["init_fit"]["w0_norm"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert out["init_fit"]["lr"]["mean"] == pytest.approx(lr)
    ref, on = out["closed_form"], out["on_tasks"]
    assert on["gd_from_zero"] == pytest.approx(ref["gd_from_zero"], rel=0.1)
    assert on["gd_from_mean"] == pytest.approx(ref["gd_from_mean"], rel=0.1)
    gdmu = functools.partial(solvers.gd, lr=ref["lr_from_mean"], w0=jnp.ones(D))
    batch = config.task.sample(jax.random.key(6), 100)
    assert float(compare.loss(gdmu(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query)) >= 0
