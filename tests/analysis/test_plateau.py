"""icl.analysis.plateau: escape steps, the value path of a stalled layer, the per-setting summary."""

import numpy as np
import pytest

from icl import runs, tasks
from icl.analysis import plateau
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

D = 3

# three seeds: one escapes at 100 and reaches GD at 150, one escapes at 200, one never escapes
LOG = [
    {"step": 0, "loss": [0.40, 0.41, 0.40], "ref_loss": [0.20, 0.20]},
    {"step": 100, "loss": [0.25, 0.39, 0.40], "ref_loss": [0.20, 0.20]},
    {"step": 150, "loss": [0.205, 0.38, 0.40], "ref_loss": [0.20, 0.20]},
    {"step": 200, "loss": [0.20, 0.29, 0.39], "ref_loss": [0.20, 0.20]},
]


def _config(n_seeds: int = 3) -> ExperimentConfig:
    return ExperimentConfig(
        name="plateau", task=tasks.get("linear", d=D, n_ctx=5), model=ModelConfig(n_layers=1, attention="linear", init_scale=0.3),
        train=TrainConfig(steps=200, batch_size=8, n_seeds=n_seeds, eval_every=50, ckpt_every=200, eval_tasks=64, final_eval_tasks=64),
    )


def _layer_params(a: np.ndarray, b: np.ndarray) -> dict:
    """One-head layer with W_q W_k^T = a and W_v W_o = b (key = out = I)."""
    eye = np.eye(D + 1)[None]
    return {"layers": {0: {"query": a[None], "key": eye, "value": b[None], "out": eye}}}


def test_first_steps():
    assert plateau.first_step_below(LOG, lambda r: plateau.ESCAPE_LOSS) == [100, 200, -1]
    assert plateau.first_step_near_gd(LOG) == [150, -1, -1]  # 0.205 < 1.05 x 0.2
    assert plateau.first_step_near_gd(LOG, factor=1.01) == [200, -1, -1]
    assert plateau.first_step_below(LOG, lambda r: 0.1) == [-1, -1, -1]


def test_value_path_of_the_gd_construction_and_of_a_shortcut():
    """The GD construction (A_xx = I, B_yy = -lr/N) has b_x = 0, a_xy = 0, b_y != 0; the rank-one
    shortcut reads x through b_x and a_xy."""
    gd_a, gd_b = np.zeros((D + 1, D + 1)), np.zeros((D + 1, D + 1))
    gd_a[:D, :D], gd_b[D, D] = np.eye(D), -0.5
    cut_a, cut_b = np.zeros((D + 1, D + 1)), np.zeros((D + 1, D + 1))
    cut_a[:D, D], cut_b[:D, D] = [3.0, 4.0, 0.0], [0.0, 0.6, 0.8]
    params = runs.stack_seeds([_layer_params(gd_a, gd_b), _layer_params(cut_a, cut_b)])
    vp = plateau.value_path(_config(n_seeds=2), params)
    np.testing.assert_allclose(vp["b_x_norm"], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(vp["a_xy_norm"], [0.0, 5.0], atol=1e-12)
    np.testing.assert_allclose(vp["b_y"], [-0.5, 0.0], atol=1e-12)


def test_summarise_and_groups():
    config = _config()
    summary = {"seeds": [0, 1, 2], "model": {"loss": [0.2, 0.29, 0.39]}, "solvers": {"gd": {"loss": 0.2}},
               "train_steps_per_s": 10.0, "wall_s": 1.0}
    row = plateau.summarise(config, LOG, summary, runs.initial_params(config))
    assert row["escape_step"] == [100, 200, -1] and row["n_escaped"] == 2
    assert row["escape_quantiles"][50] == pytest.approx(150.0) and row["escape_quantiles"][10] == pytest.approx(110.0)
    assert row["fraction_escaping_at_or_after_1500"] is None  # 200 steps: the question does not apply
    assert row["plateau_loss_median"] == pytest.approx(np.median([0.25, 0.39, 0.40, 0.205, 0.38, 0.40, 0.20, 0.29, 0.39]))
    assert row["stuck_seeds"] == [2]
    assert row["final_loss"]["mean"] == pytest.approx(np.mean([0.2, 0.29, 0.39]))
    assert row["log"]["gd_loss"] == [0.2] * 4
    groups = plateau.value_path_by_group(row)
    assert groups["stuck at the end"]["n"] == 1 and groups["escaped"]["n"] == 2
    assert groups["stuck at the end"]["a_xy_norm"] == pytest.approx(row["value_path"]["a_xy_norm"][2])


def test_late_fraction_counts_never_escaping_seeds():
    config = _config()
    config = ExperimentConfig(name="late", task=config.task, model=config.model,
                              train=TrainConfig(steps=2000, batch_size=8, n_seeds=3, eval_every=50, ckpt_every=2000))
    log = [dict(r) for r in LOG] + [{"step": 1600, "loss": [0.2, 0.2, 0.25], "ref_loss": [0.2, 0.2]}]
    summary = {"seeds": [0, 1, 2], "model": {"loss": [0.2, 0.2, 0.2]}, "solvers": {"gd": {"loss": 0.2}}, "train_steps_per_s": 1.0}
    row = plateau.summarise(config, log, summary, runs.initial_params(config))
    assert row["escape_step"] == [100, 200, 1600]
    assert row["fraction_escaping_at_or_after_1500"] == pytest.approx(1 / 3)
    assert row["stuck_seeds"] == [] and row["train_wall_s"] is None
