"""icl.analysis.interpolation: the model interpolated towards the GD construction, and the
out-of-distribution input-scale sweep."""

import jax
import numpy as np

from icl import runs, solvers, tasks, train
from icl.analysis import interpolation
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

ETA = 1.7
# Everything here runs in float64 (tests/conftest.py) and is a few dozen sums and products of O(1)
# numbers, so the model, the interpolated model and the GD step agree to ~30 roundings of 1.1e-16
# (measured: <= 3e-16 of max |y_hat| for predictions, exactly 0 for the losses and cosines). 1e-13
# keeps a margin of 30x over that and stays ~1e6 below float32's rounding (~1e-7): a computation
# that silently fell back to float32, or any real difference, fails.
TOL = 1e-13


def assert_close(got, want) -> None:
    """|got - want| <= TOL * max |want| (relative to the scale, not element by element)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * np.abs(want).max())


def _config(n_seeds: int = 2) -> ExperimentConfig:
    return ExperimentConfig(
        name="interp", task=tasks.get("linear", d=3, n_ctx=6),
        model=ModelConfig(n_layers=1, attention="linear", init_scale=0.3),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=n_seeds, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=64),
    )


def _predictions(config, params, batch) -> list[np.ndarray]:
    return [np.asarray(m.predict(batch.x_ctx, batch.y_ctx, batch.x_query)) for m in train.seed_models(config, params)]


def test_end_points_are_the_model_and_one_gd_step(key):
    """t = 0 is the trained model (the (cA, B / c) rescaling leaves its function unchanged);
    t = 1 is the construction, one GD step at eta; a GD model stays GD at t = 1/2."""
    config = _config()
    params = runs.initial_params(config)
    batch = config.task.sample(key, 32)
    gd = np.asarray(solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=ETA))
    for got, want in zip(_predictions(config, interpolation.interpolated_params(config, params, ETA, t=0.0), batch),
                         _predictions(config, params, batch), strict=True):
        assert_close(got, want)
    gd_params = interpolation.interpolated_params(config, params, ETA, t=1.0)
    for got in _predictions(config, gd_params, batch):
        assert_close(got, gd)
    for got in _predictions(config, interpolation.interpolated_params(config, gd_params, ETA), batch):
        assert_close(got, gd)


def test_halfway_is_not_an_end_point(key):
    config = _config(n_seeds=1)
    params = runs.initial_params(config)
    batch = config.task.sample(key, 32)
    mid = _predictions(config, interpolation.interpolated_params(config, params, ETA), batch)[0]
    gd = np.asarray(solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=ETA))
    assert np.abs(mid - gd).max() > 1e-3 and np.abs(mid - _predictions(config, params, batch)[0]).max() > 1e-3


def test_piece_metrics_of_the_gd_construction():
    config = _config()
    gd_params = interpolation.interpolated_params(config, runs.initial_params(config), ETA, t=1.0)
    batch = config.task.sample(jax.random.key(3), 64)
    m = interpolation.piece_metrics(train.Trainer(config), gd_params, batch, ETA)
    assert set(m) == {"model_loss", "gd_loss", "interp_loss", "interp_model_cos", "model_cos"}
    assert_close(m["model_loss"], [m["gd_loss"]] * 2)
    assert_close(m["interp_loss"], [m["gd_loss"]] * 2)
    assert_close(m["model_cos"], [1.0, 1.0])
    assert_close(m["interp_model_cos"], [1.0, 1.0])


def test_ood_sweep_follows_gd_at_every_scale():
    """A model that is one GD step at eta has GD's loss at every input scale, and the loss grows
    with the scale (eta was fitted at alpha = 1, and the targets scale too)."""
    config = _config()
    gd_params = interpolation.interpolated_params(config, runs.initial_params(config), ETA, t=1.0)
    alphas = np.array([0.5, 1.0, 2.0])
    out = interpolation.ood_sweep(config, gd_params, ETA, alphas, n_tasks=256)
    assert out["alphas"] == [0.5, 1.0, 2.0] and len(out["gd"]) == 3
    for kind in ("model", "interpolated"):
        values = np.asarray(out[kind]["values"])  # [A, S]
        assert values.shape == (3, 2)
        for row, gd in zip(values, out["gd"], strict=True):  # each scale against its own GD loss
            assert_close(row, [gd, gd])
    assert out["gd"][0] < out["gd"][1] < out["gd"][2]


def test_piece_table_orders_steps_numerically():
    row = lambda v: {"model_loss": [v], "interp_loss": [v + 1], "interp_model_cos": [1.0], "model_cos": [0.5], "gd_loss": v / 2}
    table = interpolation.piece_table({"1000": row(3.0), "200": row(2.0), "0": row(1.0)})
    assert table["steps"] == [0, 200, 1000]
    assert table["model_loss"] == [[1.0], [2.0], [3.0]] and table["gd_loss"] == [0.5, 1.0, 1.5]
