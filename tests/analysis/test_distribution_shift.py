"""icl.analysis.distribution_shift: closed forms under task / covariate shift against Monte Carlo and
naive loops, the shifted test distributions, the evaluation and the verdict."""

import dataclasses

import jax
import numpy as np
import pytest

from icl import runs, solvers, tasks, train
from icl.analysis import distribution_shift as ds, gamma_star

D, N_CTX = 3, 8


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.3 * np.eye(d)


def _monte_carlo(gamma, sigma, n, mean, w_std, noise, n_tasks, seed=0):
    """Squared errors 0.5 (x_q^T Gamma X^T y - y_q)^2 of one preconditioned step, sampled with numpy
    (independent of the library's samplers): [n_tasks]."""
    rng = np.random.default_rng(seed)
    d = sigma.shape[0]
    chol = np.linalg.cholesky(sigma)
    x = rng.standard_normal((n_tasks, n + 1, d)) @ chol.T
    w = mean[None] + w_std * rng.standard_normal((n_tasks, d))
    y = np.einsum("bnd,bd->bn", x, w) + noise * rng.standard_normal((n_tasks, n + 1))
    xc, yc, xq, yq = x[:, :n], y[:, :n], x[:, n], y[:, n]
    y_hat = np.einsum("bd,de,be->b", xq, gamma, np.einsum("bnd,bn->bd", xc, yc))
    return 0.5 * (y_hat - yq) ** 2, xc, yc, xq, yq


def test_shifted_loss_is_preconditioned_loss_without_shift():
    rng = np.random.default_rng(0)
    for n, noise, tau in ((4, 0.0, 1.0), (8, 0.5, 1.0), (20, 1.0, 2.0)):
        sigma, gamma = _spd(rng, D), rng.standard_normal((D, D)) * 0.1  # a non-symmetric Gamma
        got = ds.shifted_loss(gamma, sigma, n, tau**2 * np.eye(D), noise)
        assert got == pytest.approx(solvers.preconditioned_loss(gamma, sigma, n, noise, tau), rel=1e-12)
    with pytest.raises(ValueError, match="equal square"):
        ds.shifted_loss(np.eye(D), np.eye(D + 1), 4, np.eye(D))


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_shifted_loss_monte_carlo(noise):
    """A non-symmetric Gamma, another covariance and w with a mean and another scale: the closed form
    within 4 standard errors of 200,000 sampled tasks."""
    rng = np.random.default_rng(1)
    sigma, gamma = _spd(rng, D), 0.05 * rng.standard_normal((D, D)) + 0.08 * np.eye(D)
    mean, w_std = np.array([1.0, -0.5, 2.0]), 1.5
    sq = _monte_carlo(gamma, sigma, N_CTX, mean, w_std, noise, 200_000)[0]
    want = ds.shifted_loss(gamma, sigma, N_CTX, ds.second_moment(D, mean, w_std), noise)
    assert abs(sq.mean() - want) < 4 * sq.std() / np.sqrt(sq.size)


def test_second_moment():
    np.testing.assert_allclose(ds.second_moment(2, [1.0, 2.0], 0.5), [[1.25, 2.0], [2.0, 4.25]])
    np.testing.assert_allclose(ds.second_moment(2), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        ds.second_moment(3, [1.0, 2.0])


def test_best_gamma_is_the_minimiser():
    """Gamma* without shift (with its noise correction); a stationary point of the closed form
    (central differences); every random perturbation costs loss; for w ~ N(0, s^2 I) without
    noise it is Gamma* whatever s."""
    rng = np.random.default_rng(2)
    sigma = _spd(rng, D)
    np.testing.assert_allclose(ds.best_gamma(sigma, N_CTX, np.eye(D), 0.5), solvers.gamma_star(sigma, N_CTX, 0.5), rtol=1e-12)
    np.testing.assert_allclose(ds.best_gamma(sigma, N_CTX, 9.0 * np.eye(D)), solvers.gamma_star(sigma, N_CTX), rtol=1e-12)
    m = ds.second_moment(D, [2.0, 0.0, -1.0], 0.8)
    best = ds.best_gamma(sigma, N_CTX, m, 0.6)
    f = lambda g: ds.shifted_loss(g, sigma, N_CTX, m, 0.6)
    h = 1e-5
    grad = np.array([[(f(best + h * e) - f(best - h * e)) / (2 * h) for e in np.eye(D * D).reshape(D * D, D, D)[i * D:(i + 1) * D]]
                     for i in range(D)])
    assert np.abs(grad).max() < 1e-6
    for _ in range(20):
        assert f(best + 0.01 * rng.standard_normal((D, D))) > f(best)


def test_least_squares_loss_monte_carlo():
    """0.5 sigma^2 (1 + d / (N - d - 1)) for any covariance and any w (mean and scale)."""
    rng = np.random.default_rng(3)
    _, xc, yc, xq, yq = _monte_carlo(np.eye(D), 3.0 * _spd(rng, D), N_CTX, np.array([3.0, 1.0, -2.0]), 2.0, 0.8, 100_000)
    w = np.linalg.solve(np.einsum("bnd,bne->bde", xc, xc), np.einsum("bnd,bn->bd", xc, yc)[..., None])[..., 0]
    sq = 0.5 * (np.einsum("bd,bd->b", xq, w) - yq) ** 2
    assert abs(sq.mean() - ds.least_squares_loss(D, N_CTX, 0.8)) < 4 * sq.std() / np.sqrt(sq.size)
    with pytest.raises(ValueError, match="N > d"):
        ds.least_squares_loss(D, D + 1, 1.0)


def test_posterior_mean_against_a_loop(key):
    """(X^T X + lam I)^-1 (X^T y + lam mu) task by task; bayes_ridge at mu = 0; least squares without noise."""
    batch = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", n_query=2).sample(key, 16)
    mu, w_std, noise = np.array([0.5, -1.0, 2.0]), 1.5, 0.6
    got = np.asarray(ds.posterior_mean(batch.x_ctx, batch.y_ctx, batch.x_query, mu, w_std, noise))
    lam = (noise / w_std) ** 2
    for b in range(16):
        x, y = np.asarray(batch.x_ctx[b]), np.asarray(batch.y_ctx[b])
        w = np.linalg.solve(x.T @ x + lam * np.eye(D), x.T @ y + lam * mu)
        np.testing.assert_allclose(got[b], np.asarray(batch.x_query[b]) @ w, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ds.posterior_mean(batch.x_ctx, batch.y_ctx, batch.x_query, np.zeros(D), w_std, noise),
                               solvers.bayes_ridge(batch.x_ctx, batch.y_ctx, batch.x_query, noise, w_std), rtol=1e-10)
    np.testing.assert_allclose(ds.posterior_mean(batch.x_ctx, batch.y_ctx, batch.x_query, mu, w_std, 0.0),
                               solvers.least_squares(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=1e-8, atol=1e-10)


def test_shifted_linear_samples_the_shifted_prior(key):
    base = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=4.0,
                     noise_std=0.5, weight_std=2.0)
    mean = np.array([1.0, -2.0, 0.5])
    shift = ds.ShiftedLinear(base, w_mean=mean, w_scale=0.5)
    batch, plain = shift.sample(key, 50_000), base.sample(key, 50_000)
    np.testing.assert_array_equal(batch.x_ctx, plain.x_ctx)  # the same inputs as the base task
    w = np.asarray(batch.w)
    np.testing.assert_allclose(w.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(w.std(0), np.full(D, 1.0), rtol=0.02)  # w_scale x weight_std
    resid = np.asarray(batch.y_ctx - np.einsum("bnd,bd->bn", batch.x_ctx, batch.w))
    assert resid.std() == pytest.approx(0.5, rel=0.02)
    np.testing.assert_allclose(shift.w_moment, np.outer(mean, mean) + np.eye(D), rtol=1e-12)
    assert (shift.d, shift.n_ctx, shift.noise_std) == (D, N_CTX, 0.5)
    np.testing.assert_allclose(ds.ShiftedLinear(base).w_moment, 4.0 * np.eye(D))
    with pytest.raises(ValueError, match="entries"):
        ds.ShiftedLinear(base, w_mean=[1.0])
    with pytest.raises(ValueError, match="Gaussian"):
        ds.ShiftedLinear(tasks.get("linear", d=D, n_ctx=N_CTX))
    # the sampled loss of a fixed Gamma matches the closed form (the sampler is the distribution the closed form assumes)
    gamma = solvers.gamma_star(base.input_covariance, N_CTX, 0.5, 2.0)
    sq = 0.5 * np.asarray(solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=gamma) - batch.y_query) ** 2
    want = ds.shifted_loss(gamma, base.input_covariance, N_CTX, shift.w_moment, 0.5)
    assert abs(sq.mean() - want) < 4 * sq.std() / np.sqrt(sq.size)


def test_covariate_and_all_shifts():
    task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=5.0)
    lam = task.input_covariance
    cov = ds.covariate_shifts(task, (0.5, 4.0))
    np.testing.assert_allclose(cov["x_scale_0.5"].input_covariance, 0.5 * lam, rtol=1e-12)
    np.testing.assert_allclose(cov["x_scale_4"].input_covariance, 4.0 * lam, rtol=1e-12)
    rotated = cov["x_rotated"].input_covariance
    np.testing.assert_allclose(np.linalg.eigvalsh(rotated), np.linalg.eigvalsh(lam), rtol=1e-10)
    assert np.abs(rotated - lam).max() > 0.1
    np.testing.assert_allclose(cov["x_isotropic"].input_covariance, np.trace(lam) / D * np.eye(D), rtol=1e-12)
    with pytest.raises(ValueError, match="own rotation"):
        ds.covariate_shifts(task, (2.0,), rotation_seed=task.covariance_seed)
    every = ds.make_shifts(task, {"w_mean": (np.ones(D), 1.0), "w_scale": (None, 2.0)}, (2.0,))
    assert {k: v[0] for k, v in every.items()} == {"none": "none", "w_mean": "task", "w_scale": "task", "x_scale_2": "covariate",
                                                  "x_rotated": "covariate", "x_isotropic": "covariate"}
    assert every["w_scale"][1].w_std == 2.0 and every["none"][1].base == task


def test_evaluate_a_layer_at_gamma_star(key, gaussian_lsa_config, preconditioner_layer):
    """A layer that is exactly Gamma*-GD: model / Gamma*-GD = 1 on every shift, its own Gamma is
    Gamma*, the measurements agree with the closed forms; the best Gamma for the shift never loses
    to Gamma* in closed form; task scale without noise: Gamma* is the best (ratio 1)."""
    config = gaussian_lsa_config("shift", D, N_CTX, covariance="rotated", condition_number=5.0)
    star = gamma_star.optimum(config)
    models = train.seed_models(config, runs.stack_seeds([preconditioner_layer(star)] * 2))
    shifts = ds.make_shifts(config.task, {"w_scale_2": (None, 2.0), "w_mean": (np.array([1.0, 1.0, 0.0]), 1.0)}, (3.0,))
    for name, (_, shift) in shifts.items():
        out = ds.evaluate(shift, models, [star, star], star, 0.0, 1.0, key, 4000)
        np.testing.assert_allclose(out["model_over"]["gamma_star_gd"]["values"], [1.0, 1.0], rtol=1e-9)
        np.testing.assert_allclose(out["own_gamma_gd"], out["model"]["values"], rtol=1e-9)
        cf = out["closed_form"]
        assert cf["trained_gammas"] == [pytest.approx(cf["gamma_star_gd"])] * 2 and cf["best_gamma_gd"] <= cf["gamma_star_gd"] + 1e-12
        assert abs(out["measured"]["gamma_star_gd"] - cf["gamma_star_gd"]) < 5 * out["stderr"]["gamma_star_gd"]
        assert cf["least_squares"] == 0.0 and out["measured"]["least_squares"] < 1e-12  # noiseless, N > d
        if name in ("none", "w_scale_2"):
            assert cf["best_gamma_gd"] == pytest.approx(cf["gamma_star_gd"], rel=1e-12)
        if name == "x_scale_3":
            assert out["model_over"]["best_gamma_gd"]["mean"] > 1.5


def test_length_rows_and_normalised(key, gaussian_lsa_config, preconditioner_layer):
    config = gaussian_lsa_config("shift", D, N_CTX, covariance="diagonal", condition_number=5.0, noise_std=0.5)
    star = gamma_star.optimum(config)
    models = train.seed_models(config, runs.stack_seeds([preconditioner_layer(star)] * 2))
    batch = dataclasses.replace(config.task, n_ctx=2 * N_CTX).sample(key, 8)
    np.testing.assert_allclose(ds.normalised(models[0].predict, N_CTX)(batch.x_ctx, batch.y_ctx, batch.x_query),
                               0.5 * models[0].predict(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=1e-12)
    out = ds.length_rows(models, star, config.task, (6, N_CTX, 32), jax.random.key(1), 3000)
    for row in out["rows"]:
        n, cf = row["n_test"], row["closed_form"]
        np.testing.assert_allclose(row["model"]["values"], [row["measured"]["gamma_star_gd"]] * 2, rtol=1e-8)
        np.testing.assert_allclose(row["model_normalised"]["values"], [row["measured"]["gamma_star_gd_normalised"]] * 2, rtol=1e-8)
        lam = config.task.input_covariance
        assert cf["gamma_star_gd_normalised"] == pytest.approx(solvers.preconditioned_loss(star * N_CTX / n, lam, n, 0.5))
        assert cf["best_gamma_gd"] <= min(cf["gamma_star_gd"], cf["gamma_star_gd_normalised"]) + 1e-12
        assert (cf["least_squares"] is None) == (n <= D + 1)
    at_n = out["rows"][1]["closed_form"]
    assert at_n["gamma_star_gd"] == pytest.approx(at_n["gamma_star_gd_normalised"]) == pytest.approx(at_n["best_gamma_gd"])
    far = out["rows"][2]
    assert far["model"]["mean"] > 2 * far["model_normalised"]["mean"]  # without the 1/N the step overshoots


def _result(over_star, over_best, over_ls, ls=0.1):
    r = lambda v: runs.stats([v, v])
    return {"model_over": {"gamma_star_gd": r(over_star), "best_gamma_gd": r(over_best), "least_squares": r(over_ls)},
            "measured": {"least_squares": ls}}


def test_verdict():
    kinds = {"none": "none", "w": "task", "x": "covariate"}
    good = {"none": _result(1.0, 1.0, 4.0), "w": _result(1.01, 1.05, 8.0), "x": _result(0.99, 10.0, 40.0)}
    v = ds.verdict(good, kinds)
    assert v["verdict"] == "held" and v["max_tracking_gap"] == pytest.approx(0.01) and v["covariate_vs_ls_degradation"] == pytest.approx(10)
    assert ds.verdict(good | {"w": _result(1.2, 1.05, 8.0)}, kinds)["verdict"] == "did not hold"  # not Gamma*-GD
    assert ds.verdict(good | {"w": _result(1.0, 1.3, 8.0)}, kinds)["verdict"] == "held in part"  # task shift hurts
    assert ds.verdict(good | {"x": _result(1.0, 1.2, 40.0)}, kinds)["verdict"] == "held in part"  # covariate shift harmless
    assert ds.verdict(good | {"x": _result(1.0, 10.0, 40.0, ls=0.2)}, kinds)["verdict"] == "held in part"  # LS moved
    both = good | {"w": _result(1.0, 1.3, 8.0), "x": _result(1.0, 1.2, 40.0)}
    assert ds.verdict(both, kinds)["verdict"] == "did not hold"
    lengths = lambda losses: {"rows": [{"model_normalised": {"mean": v}} for v in losses]}
    assert ds.verdict(good, kinds, lengths([1.0, 0.7, 0.5]))["verdict"] == "held"
    v = ds.verdict(good, kinds, lengths([1.0, 0.7, 0.9]))
    assert v["verdict"] == "held in part" and not v["length_robust"]
