"""icl.analysis.depth: layer-by-layer comparison, solver losses, the plateau filter, diverged runs."""

import dataclasses

import jax
import numpy as np
import pytest

from icl import experiments, runs, train
from icl.analysis import depth

HP = {"gd_lr": 0.8, "gd_plus_plus_lr": 0.9, "gd_plus_plus_gamma": 0.1}


@pytest.fixture(scope="module")
def stack():
    base = experiments.get("tiny")
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, n_layers=2, init_scale=0.3),
                                 train=dataclasses.replace(base.train, n_seeds=2))
    return config, runs.initial_params(config), config.task.sample(jax.random.key(4), 64)


def test_compare_layers_matches_layer_l_with_l_solver_steps(stack):
    config, params, batch = stack
    out = depth.compare_layers(config, params, batch, HP)
    assert len(out["layers"]) == 2 and out["final"] == out["layers"][-1]
    for l, row in enumerate(out["layers"]):
        assert row.keys() >= {"loss", "gd_loss", "gd_plus_plus_loss", "model_cos_gd", "preds_diff_gd_plus_plus"}
        assert len(row["loss"]) == 2 and len(row["model_cos_gd"]) == 2  # per seed
        assert row["gd_loss"] == pytest.approx(depth.solver_losses(batch, l + 1, HP)["gd_loss"], rel=1e-10)
        assert row["gd_plus_plus_loss"] == pytest.approx(depth.solver_losses(batch, l + 1, HP)["gd_plus_plus_loss"], rel=1e-10)
        assert all(-1 <= c <= 1 for c in row["model_cos_gd"])


def test_solver_losses_at_gamma_zero_agree():
    batch = experiments.get("tiny").task.sample(jax.random.key(1), 128)
    out = depth.solver_losses(batch, 3, {"gd_lr": 0.5, "gd_plus_plus_lr": 0.5, "gd_plus_plus_gamma": 0.0})
    assert out["gd_loss"] == pytest.approx(out["gd_plus_plus_loss"], rel=1e-10)


def test_off_plateau_averages_over_the_seeds_below_the_threshold():
    off, out = depth.off_plateau([0.1, 0.5, 0.2], 0.35, {"loss": [0.1, 0.5, 0.2], "cos": [1.0, 0.0, 0.5]})
    assert off.tolist() == [True, False, True]
    assert out == {"seeds": [0, 2], "loss": pytest.approx(0.15), "cos": pytest.approx(0.75)}
    _, none = depth.off_plateau([0.5, 0.6], 0.35, {"loss": [0.5, 0.6]})
    assert none == {"seeds": []}


def test_summarise_reports_stats_and_the_off_plateau_seeds():
    row = {"loss": [0.1, 0.5], "gd_loss": 0.2, "gd_plus_plus_loss": 0.15, "model_cos_gd": [0.9, 0.7],
           "model_cos_gd_plus_plus": [0.99, 0.5]}
    result = {"final": row, "layers": [row], "diverged": None, "log": [{"step": 10}, {"step": 20}],
              "train_steps_per_s": 5.0, "train_wall_s": 3.0}
    out = depth.summarise(result, 0.35)
    assert out["final"]["loss"]["mean"] == pytest.approx(0.3) and out["final"]["gd_loss"] == 0.2
    assert out["per_layer"][0]["model_cos_gd"]["max"] == 0.9
    assert out["off_plateau"] == {"seeds": [0], "median_loss": pytest.approx(0.3), "loss": 0.1,
                                  "model_cos_gd": 0.9, "model_cos_gd_plus_plus": 0.99}
    assert out["final_log_step"] == 20


def test_a_diverged_run_is_evaluated_at_its_last_good_checkpoint(tmp_path):
    base = experiments.get("tiny")
    config = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=20, eval_every=10, ckpt_every=10,
                                                             eval_tasks=64, final_eval_tasks=64))
    _, run = runs.train_run(config, tmp_path)

    def diverging(_):
        raise train.TrainingDiverged("loss is nan at step 30")

    summary, params, message = runs.train_or_last_good(config, tmp_path, diverging)
    assert summary == {"diverged_at_checkpoint": 20} and message == "loss is nan at step 30"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(run.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    summary, params, message = runs.train_or_last_good(config, tmp_path)  # finished: reused
    assert message is None and summary["model"]
