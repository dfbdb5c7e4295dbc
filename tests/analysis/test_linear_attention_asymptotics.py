"""icl.analysis.linear_attention_asymptotics: the exact test errors against Monte Carlo, the ridge
Gamma against brute-force least squares (ridge, minimum norm, nested training sets), the n -> inf
solution as the minimiser of the pool error, the best fresh Gamma, the peak / crossing helpers,
and a one-layer LSA whose read-off Gamma is the reduced model's (the claim 18 configs)."""

import jax
import numpy as np
import pytest

from icl import runs, train, weights
from icl.analysis import linear_attention_asymptotics as la, task_pool
from icl.experiments import claim18_asymptotics as study

D, L, RHO = 3, 5, 0.3


def _gamma(seed=0, d=D):
    return 0.3 * np.eye(d) + 0.2 * np.random.default_rng(seed).standard_normal((d, d))


@pytest.mark.parametrize("s", [1.0, 1.0 / D])
def test_error_given_task_matches_monte_carlo(s):
    rng = np.random.default_rng(1)
    gamma, w = _gamma(), np.array([1.0, -0.5, 2.0])
    xc, yc, xq, yq = la.sample_sequences(rng, 400_000, D, L, RHO, s, pool=w[None])
    sq = (yq - la.predict(gamma, xc, yc, xq, s)) ** 2
    exact = la.error_given_task(gamma, w, L, RHO, s)
    assert sq.mean() == pytest.approx(exact, abs=4 * sq.std() / np.sqrt(sq.size))


@pytest.mark.parametrize("s", [1.0, 1.0 / D])
def test_fresh_and_pool_errors(s):
    rng = np.random.default_rng(2)
    gamma = _gamma(1)
    xc, yc, xq, yq = la.sample_sequences(rng, 400_000, D, L, RHO, s)
    sq = (yq - la.predict(gamma, xc, yc, xq, s)) ** 2
    assert sq.mean() == pytest.approx(la.fresh_error(gamma, L, RHO, s), abs=4 * sq.std() / np.sqrt(sq.size))
    pool = la.sample_pool(rng, 4, D)
    assert la.pool_error(gamma, pool, L, RHO, s) == pytest.approx(np.mean([la.error_given_task(gamma, w, L, RHO, s) for w in pool]))
    # the zero predictor and the features' inner product
    assert la.fresh_error(np.zeros((D, D)), L, RHO, s) == pytest.approx(la.best_fresh(D, L, RHO, s)["zero"])
    h = la.features(xc[:50], yc[:50], xq[:50], s)
    np.testing.assert_allclose(h @ gamma.ravel(), la.predict(gamma, xc[:50], yc[:50], xq[:50], s), rtol=1e-12)


def test_best_fresh_is_the_minimum():
    s = 1 / D
    ref = la.best_fresh(D, L, RHO, s)
    best = ref["gamma_scale"] * np.eye(D)
    assert la.fresh_error(best, L, RHO, s) == pytest.approx(ref["error"])
    np.testing.assert_allclose(la.gamma_infinite_fresh(D, L, RHO, s), best)
    rng = np.random.default_rng(3)
    for _ in range(20):
        assert la.fresh_error(best + 0.05 * rng.standard_normal((D, D)), L, RHO, s) > ref["error"]


@pytest.mark.parametrize("n", [5, 40])  # below and above d^2 = 9 (n = 5, lam = 0: the minimum-norm interpolant)
@pytest.mark.parametrize("lam", [0.0, 0.01, 1.0])
def test_fit_gamma_is_ridge(n, lam):
    s = 1 / D
    rng = np.random.default_rng(4)
    xc, yc, xq, yq = la.sample_sequences(rng, n, D, L, RHO, s)
    h = la.features(xc, yc, xq, s)
    gamma = la.fit_gamma(h, yq, lam, s)
    if lam == 0:
        brute = np.linalg.pinv(h) @ yq
    else:  # ridge as least squares on rows augmented by sqrt(n s lam) I
        a = np.vstack([h, np.sqrt(n * s * lam) * np.eye(D * D)])
        brute = np.linalg.lstsq(a, np.concatenate([yq, np.zeros(D * D)]), rcond=None)[0]
    np.testing.assert_allclose(gamma.ravel(), brute, rtol=1e-7, atol=1e-9)
    if lam == 0 and n < D * D:
        np.testing.assert_allclose(h @ gamma.ravel(), yq, atol=1e-9)  # interpolates


def test_learning_curve_is_nested_fits():
    s, lams, ns = 1 / D, [0.0, 0.1], [4, 9, 30]
    pool = la.sample_pool(np.random.default_rng(5), 2, D)
    out = la.learning_curve(np.random.default_rng(6), D, L, RHO, ns, lams, s, pool=pool, chunk=7)
    # the stream is drawn in chunks of 7 (then the remainder), so rebuild it the same way
    rng, parts, done = np.random.default_rng(6), [], 0
    for n in ns:
        while done < n:
            m = min(7, n - done)
            parts.append(la.sample_sequences(rng, m, D, L, RHO, s, pool))
            done += m
    xc, yc, xq, yq = (np.concatenate([p[i] for p in parts]) for i in range(4))
    h = la.features(xc, yc, xq, s)
    for j, n in enumerate(ns):
        for i, lam in enumerate(lams):
            g = la.fit_gamma(h[:n], yq[:n], lam, s)
            assert out["fresh"][i, j] == pytest.approx(la.fresh_error(g, L, RHO, s), rel=1e-7)
            assert out["pool"][i, j] == pytest.approx(la.pool_error(g, pool, L, RHO, s), rel=1e-7)


@pytest.mark.parametrize("k", [2, 12])  # fewer and more tasks than d
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_gamma_infinite_minimises_the_pool_objective(k, lam):
    s = 1 / D
    pool = la.sample_pool(np.random.default_rng(7), k, D)
    g = la.gamma_infinite(pool, L, RHO, s, lam)

    def objective(gamma):
        return la.pool_error(gamma, pool, L, RHO, s) + s * lam * np.sum(gamma**2)

    rng = np.random.default_rng(8)
    for _ in range(20):
        assert objective(g + 1e-3 * rng.standard_normal((D, D))) >= objective(g) - 1e-15
    if k < D and lam == 0:  # acts on the pool's span only
        basis = np.linalg.svd(pool)[2][k:]
        np.testing.assert_allclose(g @ basis.T, 0, atol=1e-12)


def test_gamma_infinite_is_the_large_n_limit():
    s = 1.0
    pool = la.sample_pool(np.random.default_rng(9), 4, D)
    xc, yc, xq, yq = la.sample_sequences(np.random.default_rng(10), 300_000, D, L, RHO, s, pool=pool)
    g = la.fit_gamma(la.features(xc, yc, xq, s), yq, 0.0, s)
    g_inf = la.gamma_infinite(pool, L, RHO, s)
    assert np.linalg.norm(g - g_inf) / np.linalg.norm(g_inf) < 0.02
    assert la.pool_error(g, pool, L, RHO, s) == pytest.approx(la.pool_error(g_inf, pool, L, RHO, s), rel=1e-3)


def test_peak_gap_and_crossing():
    x = np.geomspace(0.1, 10, 21)
    y = 1 / (np.abs(np.log(x / 1.3)) + 0.1)
    p = la.peak(x, y)
    assert p["interior"] and p["x"] == pytest.approx(1.3, rel=0.1) and p["height"] == pytest.approx(y.max())
    assert not la.peak(x, -x)["interior"]
    np.testing.assert_allclose(la.memorisation_gap([1.0, 2.0], [0.5, 2.0]), [0.5, 0.0])
    kap = np.array([0.25, 0.5, 1.0, 2.0])
    assert la.kappa_crossing(kap, [0.9, 0.7, 0.3, 0.1], 0.5) == pytest.approx(np.sqrt(0.5))
    assert la.kappa_crossing(kap, [0.9, 0.8, 0.7, 0.6], 0.5) is None
    assert la.kappa_crossing(kap, [0.4, 0.3, 0.2, 0.1], 0.5) == 0.25


def test_claim18_configs_and_a_layer_at_the_reduced_gamma(preconditioner_layer):
    """The registered runs (noise in the codebase's units, pool sizes, quick mode); a one-layer LSA
    built to predict x_q^T Gamma_r X^T y is the reduced model with Gamma = N Gamma_r: its read-off,
    predictions and errors on fresh and pool tasks agree with the closed forms."""
    full, quick = study.configs("full"), study.configs("quick")
    assert sorted(full) == list(study.POOL_SIZES) and quick[8].train.steps == study.QUICK.steps
    cfg = quick[8]
    assert cfg.task.noise_std == pytest.approx(np.sqrt(study.D * study.RHO)) and cfg.task.pool_size == 8
    n, d = cfg.task.n_ctx, cfg.task.d
    pool = cfg.task.pool
    g_inf = la.gamma_infinite(pool, n, cfg.task.noise_std**2, 1.0)
    params = runs.stack_seeds([preconditioner_layer(g_inf / n)] * cfg.train.n_seeds)
    model = train.seed_models(cfg, params)[0]
    np.testing.assert_allclose(n * weights.preconditioner(model.layers[0], d)["gamma"], g_inf, rtol=1e-6, atol=1e-9)
    batch = cfg.task.sample(jax.random.key(0), 4000)
    y = np.asarray(task_pool.model_predictions(cfg, params, batch), np.float64)[0, :, 0]
    xc, yc, xq, yq = (np.asarray(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query[:, 0], batch.y_query[:, 0]))
    np.testing.assert_allclose(y, la.predict(g_inf, xc, yc, xq, 1.0), rtol=1e-4, atol=1e-4)
    sq = (y - yq) ** 2
    assert sq.mean() == pytest.approx(la.pool_error(g_inf, pool, n, cfg.task.noise_std**2, 1.0), abs=4 * sq.std() / np.sqrt(sq.size))


def test_gamma_infinite_with_mean():
    """The (Gamma, a) optimum: its exact errors match Monte Carlo, it minimises the pool error over
    (Gamma, a), and it never loses to Gamma_inf on the pool (a = 0 is in its class)."""
    s = 1.0
    pool = la.sample_pool(np.random.default_rng(11), 2, D) + 1.0  # a pool with a clear mean
    g, a = la.gamma_infinite_with_mean(pool, L, RHO, s)

    def objective(gamma, a_):
        return la.error_with_mean(gamma, a_, pool, L, RHO, s)

    rng = np.random.default_rng(12)
    for _ in range(20):
        assert objective(g + 1e-3 * rng.standard_normal((D, D)), a + 1e-3 * rng.standard_normal(D)) >= objective(g, a) - 1e-12
    g_inf = la.gamma_infinite(pool, L, RHO, s)
    assert objective(g, a) < la.pool_error(g_inf, pool, L, RHO, s)
    assert la.error_with_mean(g_inf, np.zeros(D), None, L, RHO, s) == pytest.approx(la.fresh_error(g_inf, L, RHO, s))
    for tasks in (pool, None):
        xc, yc, xq, yq = la.sample_sequences(np.random.default_rng(13), 400_000, D, L, RHO, s, pool=tasks)
        sq = (yq - la.predict(g, xc, yc, xq, s) - xq @ a) ** 2
        assert sq.mean() == pytest.approx(la.error_with_mean(g, a, tasks, L, RHO, s), abs=4 * sq.std() / np.sqrt(sq.size))
