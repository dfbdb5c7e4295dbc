"""icl.analysis.gamma_star: Gamma read off a layer, distances to Gamma*, the rank-one share."""

import numpy as np
import pytest

from icl import runs, solvers
from icl.analysis import gamma_star

D, N_CTX = 3, 8


def test_distance_and_best_multiple():
    basis = np.diag([1.0, 2.0, 3.0])
    np.testing.assert_allclose(gamma_star.best_multiple(2.5 * basis, basis), 2.5 * basis)
    assert gamma_star.relative_distance(1.1 * basis, basis) == pytest.approx(0.1)
    # the best multiple is the orthogonal projection: the residual is orthogonal to the basis
    g = np.arange(9.0).reshape(3, 3)
    assert np.sum((g - gamma_star.best_multiple(g, basis)) * basis) == pytest.approx(0.0, abs=1e-9)


def test_gammas_and_rank_one_share(gaussian_lsa_config, preconditioner_layer):
    config = gaussian_lsa_config("gamma", D, N_CTX)
    g = np.array([[0.1, 0.02, 0.0], [0.02, 0.2, 0.0], [0.0, 0.0, 0.05]])
    a_xy, b_x = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.5, 0.0])
    params = runs.stack_seeds([preconditioner_layer(g), preconditioner_layer(g, a_xy, b_x)])
    got = gamma_star.gammas(config, params)
    np.testing.assert_allclose(got[0], g, atol=1e-12)
    np.testing.assert_allclose(got[1], g - np.outer(a_xy, b_x), atol=1e-12)  # Gamma = -(b_y A_xx + a_xy b_x^T)
    share = gamma_star.rank_one_share(config, params)
    assert share[0] == pytest.approx(0.0) and share[1] == pytest.approx(0.5 / np.linalg.norm(got[1]))


def test_distances_isotropic_diagonal_and_noisy(gaussian_lsa_config, preconditioner_layer):
    iso = gaussian_lsa_config("gamma", D, N_CTX)
    star = solvers.gamma_star(np.eye(D), N_CTX)
    d = gamma_star.distances(iso, star)
    assert d["gamma_star"] == 0.0 and d["best_multiple_of_identity"] == pytest.approx(0.0, abs=1e-12)
    assert d["best_multiple_of_sigma_inverse"] == pytest.approx(0.0, abs=1e-12) and "noiseless_gamma_star" not in d
    diagonal = gaussian_lsa_config("gamma", D, N_CTX, covariance="diagonal", condition_number=20.0)
    d = gamma_star.distances(diagonal, np.eye(D))
    assert d["trained_from_multiple_of_identity"] == pytest.approx(0.0, abs=1e-12)
    assert d["best_multiple_of_identity"] > 0.1 and d["best_multiple_of_sigma_inverse"] > 0.01
    noisy = gaussian_lsa_config("gamma", D, N_CTX, covariance="diagonal", condition_number=20.0, noise_std=2.0)
    star = gamma_star.optimum(noisy)
    d = gamma_star.distances(noisy, star)
    assert d["gamma_star"] == 0.0 and d["noiseless_gamma_star"] > 0.05 and d["noiseless_vs_noisy_gamma_star"] > 0.05
    np.testing.assert_allclose(gamma_star.optimum(noisy, noisy=False), solvers.gamma_star(noisy.task.input_covariance, N_CTX))
    at_star = runs.stack_seeds([preconditioner_layer(star)] * 2)
    assert gamma_star.distances_to_optimum(noisy, at_star) == pytest.approx([0.0, 0.0], abs=1e-12)


def test_summarise_converged_seeds_and_extra_terms(gaussian_lsa_config, preconditioner_layer):
    """Seed 0 sits at Gamma*, seed 1 at 2 Gamma*: only seed 0 converges; a model without the extra
    terms has the same loss as preconditioned GD with its own Gamma (share 0)."""
    config = gaussian_lsa_config("gamma", D, N_CTX)
    star = gamma_star.optimum(config)
    params = runs.stack_seeds([preconditioner_layer(star), preconditioner_layer(2 * star)])
    summary = {"model": {"loss": [0.5, 0.6]}, "solvers": {"gd": {"loss": 0.55}, "least_squares": {"loss": 0.1}},
               "zero_loss": 1.5, "wall_s": 1.0}
    curve = {"steps": [10], "distance": [[0.0, 1.0]]}
    out = gamma_star.summarise(config, summary, params, curve, (4, N_CTX), "isotropic")
    assert out["converged_seeds"] == [0] and out["distance_of_converged_seeds"] == [pytest.approx(0.0)]
    assert out["distances"]["gamma_star"]["values"] == pytest.approx([0.0, 1.0])
    np.testing.assert_allclose(out["extra_terms_loss_share"]["values"], [0.0, 0.0], atol=1e-5)
    assert out["loss"]["closed_form_gamma_star"] == pytest.approx(solvers.preconditioned_loss(star, np.eye(D), N_CTX))
    assert out["setting"] == "isotropic" and out["task"]["covariance"] == config.task.covariance
    assert [r["n_test"] for r in out["length_shift"]["rows"]] == [4, N_CTX]
