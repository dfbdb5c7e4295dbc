"""icl.analysis.algorithm_fits: the algorithms, their distances, and matching a learner to the closest."""

import dataclasses
import functools

import jax
import numpy as np
import pytest

from icl import experiments, solvers
from icl.analysis import algorithm_fits
from icl.experiments import claim3_algorithm_transition as claim3


class Learner:
    """A stand-in for a trained model: any solver as `predict`."""

    def __init__(self, predict):
        self.predict = predict


@pytest.fixture(scope="module")
def noisy():
    config = dataclasses.replace(experiments.get("claim3_s1_L1", "quick"),
                                 task=dataclasses.replace(claim3.task(1.0), d=3, n_ctx=6))
    batch = dataclasses.replace(config.task, n_query=12).sample(jax.random.key(0), 200)
    preds, hparams = algorithm_fits.algorithms(config, (1, 2), 200)
    fits = {k: algorithm_fits.fit(f, batch) for k, f in preds.items()}
    return config, batch, preds, hparams, fits


def test_the_algorithms_of_a_noisy_task(noisy):
    _, _, preds, hparams, _ = noisy
    assert list(preds) == ["gd1", "gd2", "ridge", "ls"]
    assert hparams["ridge"] == {"lam": 1.0}  # sigma^2 / tau^2
    assert hparams["gd2"]["steps"] == 2 and 0 < hparams["gd2"]["lr"] <= algorithm_fits.GD_LR_RANGE * hparams["gd1"]["lr"]


def test_a_noiseless_task_has_no_ridge():
    config = experiments.get("claim3_s0_L1", "quick")
    preds, hparams = algorithm_fits.algorithms(config, (1,), 64)
    assert list(preds) == ["gd1", "ls"] and hparams["ls"] == {}


def test_algorithm_table_has_every_pair_once(noisy):
    _, batch, _, _, fits = noisy
    table = algorithm_fits.algorithm_table(fits, batch)
    assert list(table["algorithm_distances"]) == ["gd1|gd2", "gd1|ridge", "gd1|ls", "gd2|ridge", "gd2|ls", "ridge|ls"]
    assert table["algorithm_loss"]["ridge"] < table["algorithm_loss"]["ls"]  # Bayes-optimal beats interpolation
    assert all(v["spd"] > 0 and v["ilwd"] > 0 for v in table["algorithm_distances"].values())


def test_a_learner_that_is_ridge_is_matched_to_ridge(noisy):
    _, batch, preds, _, fits = noisy
    lam = float(claim3.LAM_GRID[20])
    models = [Learner(functools.partial(solvers.ridge, lam=1.0)), Learner(functools.partial(solvers.ridge, lam=lam))]
    rows = algorithm_fits.model_distances(models, batch, fits, claim3.LAM_GRID)
    assert rows["spd_ridge"][0] == pytest.approx(0.0, abs=1e-12) and rows["ilwd_ridge"][0] == pytest.approx(0.0, abs=1e-12)
    assert rows["best_ridge_lam"][1] == lam and rows["best_ridge_ilwd"][1] == pytest.approx(0.0, abs=1e-12)
    assert rows["linear_residual"][0] == pytest.approx(0.0, abs=1e-12)  # ridge is linear in the query
    out, stats = algorithm_fits.summarise(rows, list(preds), plateau_loss=np.inf)
    assert out["closest_per_seed"]["spd"][0] == "ridge" and out["closest_per_seed"]["ilwd"][0] == "ridge"
    assert out["off_plateau"]["seeds"] == [0, 1]
    assert stats["loss"]["values"] == rows["loss"] and set(stats) == set(rows)


def test_summarise_closest_by_mean_and_plateau():
    rows = {"loss": [0.1, 0.9], "spd_a": [1.0, 0.0], "spd_b": [0.5, 0.4], "ilwd_a": [0.0, 3.0], "ilwd_b": [1.0, 1.0],
            "best_ridge_lam": [0.5, 2.0]}
    out, _ = algorithm_fits.summarise(rows, ["a", "b"], plateau_loss=0.5)
    assert out["closest_per_seed"] == {"spd": ["b", "a"], "ilwd": ["a", "b"]}
    assert out["closest_by_mean"] == {"spd": "b", "ilwd": "b"}  # spd means 0.5 / 0.45, ilwd 1.5 / 1.0
    assert out["off_plateau"]["seeds"] == [0] and out["off_plateau"]["closest"] == {"spd": "b", "ilwd": "a"}
    assert out["off_plateau"]["best_ridge_lam_median"] == 0.5
