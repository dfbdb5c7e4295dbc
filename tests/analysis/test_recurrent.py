"""icl.analysis.recurrent: the fixed-scale learners against naive loops and the constructions,
and the fits recovering the learner a constructed model computes."""

import jax
import numpy as np
import pytest

from icl.analysis import recurrent
from icl.models import linear_attention as la


def sequence(key, b=200, t=9, d=3):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))


def test_decayed_gd_against_a_naive_loop_and_the_construction():
    x, y = sequence(jax.random.key(0), b=4)
    xn, yn = np.asarray(x), np.asarray(y)
    for gamma in (1.0, 0.7):
        want = np.zeros_like(yn)
        for t in range(x.shape[1]):
            for j in range(t):
                want[:, t] += gamma ** (t - 1 - j) * yn[:, j] * (xn[:, j] @ xn[:, t].T).diagonal()
        np.testing.assert_allclose(recurrent.decayed_gd(x, y, gamma), want, rtol=1e-12, atol=1e-12)
        model = la.gd_model(3, lr=0.6, n_ref=8, decay=gamma).predict_prefixes(x, y)
        np.testing.assert_allclose(model, 0.6 / 8 * want, rtol=1e-12, atol=1e-12)


def test_fits_recover_the_learner_of_a_constructed_model():
    x, y = sequence(jax.random.key(1))
    model = la.gd_model(3, lr=0.6, n_ref=8, decay=0.8).predict_prefixes(x, y)
    fits = recurrent.fit_learners(model, x, y)
    assert fits["weighted_gd"]["decay"] == 0.8
    assert fits["weighted_gd"]["scale"] == pytest.approx(0.6 / 8, rel=1e-12)
    result = recurrent.match(model, recurrent.fitted_predictions(fits, x, y))
    assert result["best"] == "weighted_gd"
    assert result["learners"]["weighted_gd"]["mean_preds_diff"] < 1e-20
    assert result["learners"]["weighted_gd"]["matched_from"] == 1
    assert result["learners"]["gd_fixed_scale"]["mean_preds_diff"] > 1e-4  # the undecayed fit cannot match
    sgd = recurrent.online_sgd(x, y, 0.2 / 3)
    assert recurrent.fit_learners(sgd, x, y)["online_sgd"]["lr"] == pytest.approx(0.2 / 3)


def test_matched_from_and_best_scale():
    assert recurrent.matched_from(np.array([0.0, 0.5, 0.97, 0.99, 0.96]), 0.95) == 2
    assert recurrent.matched_from(np.array([0.0, 0.99, 0.5]), 0.95) is None
    assert recurrent.matched_from(np.array([0.0, 0.99, 0.99]), 0.95) == 1
    base = np.array([[1.0, 2.0], [3.0, 0.0]])
    assert recurrent.best_scale(2.5 * base, base) == pytest.approx(2.5)
    assert recurrent.best_scale(base, 0 * base) == 0.0
