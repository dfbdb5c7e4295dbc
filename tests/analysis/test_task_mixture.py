"""icl.analysis.task_mixture: the supports, each Gaussian component's posterior mean and marginal
likelihood against closed forms, the sparse and mixture posteriors against Monte Carlo over the
prior (importance weights = likelihoods), the limits p_dense = 0 / 1 and k = d, the held-out sets,
and the evaluation of an untrained model against direct computation (float64, conftest). The setup
is claim 15's (`icl.experiments.claim15_task_mixture`)."""

import dataclasses
import math

import jax
import numpy as np
import pytest

from icl import runs, solvers, tasks
from icl.analysis import task_mixture as tm
from icl.experiments import claim15_task_mixture as study


def test_supports():
    s = tm.supports(5, 2)
    assert s.shape == (10, 5) and np.all(s.sum(1) == 2)
    assert len({row.tobytes() for row in s}) == 10
    np.testing.assert_array_equal(tm.supports(3, 3), np.ones((1, 3)))
    with pytest.raises(ValueError, match="1 <= k <= d"):
        tm.supports(3, 4)


def _logpdf(y, cov):
    """log N(y; 0, cov), the textbook formula."""
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return -0.5 * y @ np.linalg.inv(cov) @ y - 0.5 * logdet - 0.5 * len(y) * math.log(2 * math.pi)


@pytest.mark.parametrize("n", [2, 5, 8])
def test_gaussian_component_matches_closed_forms(key, n):
    """Posterior mean = ridge on the mask's columns (the d x d form, lam = sigma^2 / tau^2, zero
    off the mask); log marginal likelihood = log N(y; 0, tau^2 X_m X_m^T + sigma^2 I)."""
    tau, sigma, d = 1.3, 0.4, 5
    batch = tasks.get("linear_mixture", d=d, n_ctx=n, k=2, noise_std=sigma, weight_std=tau).sample(key, 6)
    mask = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    w, lml = tm.gaussian_component(batch.x_ctx, batch.y_ctx, mask, tau, sigma)
    cols = np.flatnonzero(mask)
    for b in range(6):
        x, y = np.asarray(batch.x_ctx[b]), np.asarray(batch.y_ctx[b])
        xs = x[:, cols]
        w_s = np.linalg.solve(xs.T @ xs + (sigma / tau) ** 2 * np.eye(len(cols)), xs.T @ y)
        expect = np.zeros(d)
        expect[cols] = w_s
        np.testing.assert_allclose(w[b], expect, rtol=1e-9, atol=1e-12)
        cov = tau**2 * xs @ xs.T + sigma**2 * np.eye(n)
        assert float(lml[b]) == pytest.approx(_logpdf(y, cov), rel=1e-10)


def test_dense_posterior_is_ridge(key):
    batch = study.task_for(n_query=3).sample(key, 20)
    w, _ = tm.dense_posterior(batch.x_ctx, batch.y_ctx, study.WEIGHT_STD, study.NOISE_STD)
    y_ridge = solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=study.LAM)
    np.testing.assert_allclose(np.einsum("bmd,bd->bm", batch.x_query, w), y_ridge, rtol=1e-9, atol=1e-12)


def _monte_carlo(x, y, p_dense, k, tau, sigma, rng, n_samples=400_000):
    """Importance sampling from the mixture prior, weights = likelihoods: (E[w | X, y],
    P(dense | X, y), the marginal likelihood of the sparse prior, P(S | X, y) by support index)."""
    d = x.shape[1]
    masks = tm.supports(d, k)
    dense = rng.random(n_samples) < p_dense
    idx = rng.integers(len(masks), size=n_samples)
    m = np.where(dense[:, None], 1.0, masks[idx])
    w = tau * rng.standard_normal((n_samples, d)) * m
    r = y[None] - w @ x.T  # [S, N]
    lik = np.exp(-0.5 * np.sum(r**2, 1) / sigma**2) / (2 * math.pi * sigma**2) ** (len(y) / 2)
    e_w = (lik[:, None] * w).sum(0) / lik.sum()
    p_d = lik[dense].sum() / lik.sum()
    ml_sparse = lik[~dense].mean()
    p_s = np.array([lik[~dense & (idx == c)].sum() for c in range(len(masks))]) / lik[~dense].sum()
    return e_w, p_d, ml_sparse, p_s


def test_sparse_posterior_matches_monte_carlo():
    """p_dense = 0: the exact sum over supports against importance sampling from the sparse prior."""
    rng = np.random.default_rng(0)
    d, k, n, tau, sigma = 4, 2, 3, 1.0, 0.5
    task = tasks.get("linear_mixture", d=d, n_ctx=n, k=k, p_dense=0.0, noise_std=sigma, weight_std=tau)
    batch = task.sample(jax.random.key(5), 3)
    sp = tm.sparse_posterior(batch.x_ctx, batch.y_ctx, k, tau, sigma)
    for b in range(3):
        e_w, _, ml, p_s = _monte_carlo(np.asarray(batch.x_ctx[b]), np.asarray(batch.y_ctx[b]), 0.0, k, tau, sigma, rng)
        np.testing.assert_allclose(sp["w"][b], e_w, atol=0.03)
        np.testing.assert_allclose(sp["p_support"][b], p_s, atol=0.02)
        assert float(np.exp(sp["log_ml"][b])) == pytest.approx(ml, rel=0.03)


def test_mixture_posterior_matches_monte_carlo():
    rng = np.random.default_rng(1)
    d, k, n, tau, sigma, p = 4, 1, 3, 1.0, 0.5, 0.3
    task = tasks.get("linear_mixture", d=d, n_ctx=n, k=k, p_dense=p, noise_std=sigma, weight_std=tau)
    batch = task.sample(jax.random.key(6), 4)
    post = tm.mixture_posterior(batch.x_ctx, batch.y_ctx, p, k, tau, sigma)
    for b in range(4):
        e_w, p_d, _, _ = _monte_carlo(np.asarray(batch.x_ctx[b]), np.asarray(batch.y_ctx[b]), p, k, tau, sigma, rng)
        np.testing.assert_allclose(post["w"][b], e_w, atol=0.03)
        assert float(post["p_dense"][b]) == pytest.approx(p_d, abs=0.01)


def test_mixture_limits(key):
    """p_dense = 1 gives ridge, 0 the sparse prior's posterior; with k = d the sparse prior is the
    dense one, so the mixture is ridge for any p_dense and P(dense | context) = p_dense."""
    batch = study.task_for().sample(key, 16)
    args = (batch.x_ctx, batch.y_ctx)
    one = tm.mixture_posterior(*args, 1.0, study.K, study.WEIGHT_STD, study.NOISE_STD)
    zero = tm.mixture_posterior(*args, 0.0, study.K, study.WEIGHT_STD, study.NOISE_STD)
    np.testing.assert_allclose(one["w"], one["w_dense"], rtol=1e-12)
    np.testing.assert_allclose(zero["w"], zero["w_sparse"], rtol=1e-12)
    full = tm.mixture_posterior(*args, 0.3, study.D, study.WEIGHT_STD, study.NOISE_STD)
    np.testing.assert_allclose(full["w"], full["w_dense"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(full["p_dense"], 0.3, rtol=1e-10)


def test_bayes_predictor_beats_single_priors_on_its_prior():
    """The posterior mean is optimal on average over the mixture prior: on 20,000 mixture tasks
    its MSE is below ridge's and sparse-Bayes's (each of which wins on its own kind of task)."""
    task = study.task_for(n_query=1)
    sets = {kind: dataclasses.replace(task, p_dense=p).sample(jax.random.key(i), 10_000)
            for i, (kind, p) in enumerate((("dense", 1.0), ("sparse", 0.0)))}
    mse = {}
    for kind, batch in sets.items():
        pred = tm.predictors(batch, study.P_DENSE, study.K, study.WEIGHT_STD, study.NOISE_STD)
        mse[kind] = {q: float(np.mean((pred[q] - batch.y_query) ** 2)) for q in ("mixture", "ridge", "sparse")}
    assert mse["dense"]["ridge"] < mse["dense"]["mixture"] < mse["dense"]["sparse"]
    assert mse["sparse"]["sparse"] < mse["sparse"]["mixture"] < mse["sparse"]["ridge"]
    avg = {q: mse["dense"][q] + mse["sparse"][q] for q in ("mixture", "ridge", "sparse")}
    assert avg["mixture"] < min(avg["ridge"], avg["sparse"])


def test_test_sets_and_evaluate_on_an_untrained_model():
    config = study.config("quick")
    params = runs.initial_params(config)
    sets = tm.test_sets(config, study.task_for(n_query=study.EVAL_QUERIES), 40)
    assert np.all(np.count_nonzero(np.asarray(sets["dense"].w), axis=1) == study.D)
    assert np.all(np.count_nonzero(np.asarray(sets["sparse"].w), axis=1) == study.K)
    assert not np.allclose(sets["dense"].x_ctx, sets["sparse"].x_ctx)
    out = tm.evaluate(config, params, sets, study.P_DENSE, study.K, study.WEIGHT_STD, study.NOISE_STD)
    batch = sets["sparse"]
    y_model = tm.model_predictions(config, params, batch)  # [S, B, M]
    pred = tm.predictors(batch, study.P_DENSE, study.K, study.WEIGHT_STD, study.NOISE_STD)
    row = out["sparse"]
    assert row["mixture_mse"] == pytest.approx(float(np.mean((pred["mixture"] - batch.y_query) ** 2)), rel=1e-10)
    dpm = {q: np.mean((y_model - pred[q][None]) ** 2, axis=(1, 2)) for q in ("mixture", "ridge", "sparse")}
    for q in dpm:
        np.testing.assert_allclose(row[f"dpm_{q}"]["values"], dpm[q], rtol=1e-10)
    np.testing.assert_allclose(row["margin"]["values"],
                               np.log(np.minimum(dpm["ridge"], dpm["sparse"])) - np.log(dpm["mixture"]), rtol=1e-9)
    assert row["p_dense_posterior"] == pytest.approx(float(np.mean(pred["p_dense"])), rel=1e-12)
