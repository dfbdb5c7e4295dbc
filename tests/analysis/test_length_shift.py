"""icl.analysis.length_shift: a one-layer LSA at other context lengths, measured and in closed form."""

import numpy as np
import pytest

from icl import runs, solvers, train
from icl.analysis import gamma_star, length_shift

D, N_CTX = 3, 8


def test_a_layer_without_extra_terms_is_preconditioned_gd(key, gaussian_lsa_config, preconditioner_layer):
    config = gaussian_lsa_config("shift", D, N_CTX, covariance="diagonal", condition_number=5.0)
    g = 0.7 * gamma_star.optimum(config)
    model = train.seed_models(config, runs.stack_seeds([preconditioner_layer(g)] * 2))[0]
    batch = config.task.sample(key, 128)
    mean, stderr = length_shift.measured_loss(model, batch)
    assert mean == pytest.approx(length_shift.own_gamma_loss(g, batch), rel=1e-9) and 0 < stderr < mean


def test_rows_match_the_closed_forms(gaussian_lsa_config, preconditioner_layer):
    """At Gamma*(N) the measured loss agrees with the closed form within a few standard errors at
    every N'; Gamma*(N') is never worse than Gamma*(N) at N' (it is the optimum there)."""
    config = gaussian_lsa_config("shift", D, N_CTX, covariance="rotated", condition_number=5.0)
    star = gamma_star.optimum(config)
    params = runs.stack_seeds([preconditioner_layer(star), preconditioner_layer(0.5 * star)])
    out = length_shift.rows(config, params, [star, 0.5 * star], (4, N_CTX, 32), n_tasks=4000, converged=[0])
    sigma = config.task.input_covariance
    for row in out["rows"]:
        n = row["n_test"]
        assert row["closed_form_gamma_star_train_n"] == pytest.approx(solvers.preconditioned_loss(star, sigma, n))
        assert row["closed_form_gamma_star_test_n"] <= row["closed_form_gamma_star_train_n"] + 1e-12
        assert abs(row["model_measured"]["values"][0] - row["closed_form_gamma_star_train_n"]) < 5 * row["model_stderr"]
        assert row["model_measured_converged_seeds"] == [row["model_measured"]["values"][0]]
        np.testing.assert_allclose(row["own_gamma_measured"], row["model_measured"]["values"], rtol=1e-9)
    at_n = out["rows"][1]
    assert at_n["closed_form_gamma_star_test_n"] == pytest.approx(at_n["closed_form_gamma_star_train_n"])
