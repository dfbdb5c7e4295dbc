"""Every solver against a naive NumPy loop and against the closed forms it converges to."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers, tasks

ATOL = 1e-10  # float64


def _data(seed, b=6, n=7, d=4, m=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (b, n, d))
    w = rng.standard_normal((b, d))
    y = np.einsum("bnd,bd->bn", x, w) + 0.1 * rng.standard_normal((b, n))
    xq = rng.uniform(-1, 1, (b, m, d))
    return x, y, xq


def naive_gd(x, y, xq, lr, steps, w0):
    out = np.zeros(xq.shape[:2])
    for t in range(x.shape[0]):
        w = np.array(w0, dtype=np.float64)
        for _ in range(steps):
            grad = sum((w @ x[t, i] - y[t, i]) * x[t, i] for i in range(x.shape[1])) / x.shape[1]
            w = w - lr * grad
        out[t] = xq[t] @ w
    return out


def naive_ridge(x, y, xq, lam):
    return np.stack([xq[t] @ np.linalg.solve(x[t].T @ x[t] + lam * np.eye(x.shape[2]), x[t].T @ y[t]) for t in range(len(x))])


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_gd_matches_loop(steps):
    x, y, xq = _data(0)
    w0 = np.linspace(-1, 1, x.shape[2])
    got = solvers.gd(x, y, xq, lr=0.3, steps=steps, w0=w0)
    np.testing.assert_allclose(got, naive_gd(x, y, xq, 0.3, steps, w0), atol=ATOL)


def test_gd_single_query_shape_and_jit():
    x, y, xq = _data(1)
    one = solvers.gd(x, y, xq[:, 0], lr=0.5)
    assert one.shape == (x.shape[0],)
    jitted = jax.jit(solvers.gd, static_argnames="steps")(x, y, xq[:, 0], lr=0.5, steps=1)
    np.testing.assert_allclose(one, jitted, atol=ATOL)
    # one step from 0 is (lr/N) sum_i y_i x_i . x_q (the paper's convention)
    expected = 0.5 / x.shape[1] * np.einsum("bn,bnd,bd->b", y, x, xq[:, 0])
    np.testing.assert_allclose(one, expected, atol=ATOL)


def test_gd_plus_plus_matches_loop():
    x, y, xq = _data(2)
    lr, gamma, steps = 0.4, 0.05, 3
    expected = np.zeros(xq.shape[:2])
    for t in range(len(x)):
        xs, r, xqs, rq = x[t].copy(), y[t].copy(), xq[t].copy(), np.zeros(xq.shape[1])
        for _ in range(steps):
            new_r = r - lr / len(xs) * np.array([sum(r[i] * xs[i] @ xs[j] for i in range(len(xs))) for j in range(len(xs))])
            rq = rq - lr / len(xs) * np.array([sum(r[i] * xs[i] @ q for i in range(len(xs))) for q in xqs])
            cov = xs.T @ xs
            xs, xqs, r = xs - gamma * xs @ cov, xqs - gamma * xqs @ cov, new_r
        expected[t] = -rq
    np.testing.assert_allclose(solvers.gd_plus_plus(x, y, xq, lr=lr, gamma=gamma, steps=steps), expected, atol=ATOL)
    # gamma = 0 is plain GD
    np.testing.assert_allclose(
        solvers.gd_plus_plus(x, y, xq, lr=lr, gamma=0.0, steps=steps), solvers.gd(x, y, xq, lr=lr, steps=steps), atol=ATOL
    )


def test_preconditioned_gd():
    x, y, xq = _data(3)
    gamma = np.random.default_rng(0).standard_normal((4, 4))
    expected = np.einsum("bmd,de,bne,bn->bm", xq, gamma, x, y)
    np.testing.assert_allclose(solvers.preconditioned_gd(x, y, xq, gamma), expected, atol=ATOL)
    lr, n = 0.7, x.shape[1]
    np.testing.assert_allclose(
        solvers.preconditioned_gd(x, y, xq, lr / n * np.eye(4)), solvers.gd(x, y, xq, lr=lr), atol=ATOL
    )


@pytest.mark.parametrize("lam", [0.01, 1.0, 10.0])
def test_ridge_matches_normal_equations(lam):
    x, y, xq = _data(4)
    np.testing.assert_allclose(solvers.ridge(x, y, xq, lam), naive_ridge(x, y, xq, lam), atol=ATOL)


def test_bayes_ridge_is_ridge_with_noise_ratio():
    x, y, xq = _data(5)
    np.testing.assert_allclose(
        solvers.bayes_ridge(x, y, xq, noise_std=0.5, weight_std=2.0), naive_ridge(x, y, xq, 0.0625), atol=ATOL
    )


@pytest.mark.parametrize("n,d", [(12, 4), (4, 4), (3, 6)])
def test_convergence_to_least_squares(n, d):
    """GD with many small steps, ridge with lam -> 0 and Newton–Schulz all reach min-norm LS."""
    x, y, xq = _data(6, n=n, d=d)
    ls = np.stack([xq[t] @ np.linalg.pinv(x[t]) @ y[t] for t in range(len(x))])
    np.testing.assert_allclose(solvers.least_squares(x, y, xq), ls, atol=1e-9)
    np.testing.assert_allclose(solvers.ridge(x, y, xq, 1e-12), ls, atol=1e-8)
    for steps in (40, 200):  # stays converged long after convergence, singular S included
        np.testing.assert_allclose(solvers.newton(x, y, xq, steps=steps), ls, atol=1e-8)
    # GD from 0 stays in the row space of X, so it too converges to the min-norm solution.
    # Its error decays like (1 - lr * lambda_min+ / N)^K: take K so that this is below 1e-12.
    eig = [np.linalg.eigvalsh(x[t] @ x[t].T / n) for t in range(len(x))]  # nonzero spectrum of X^T X / N
    lam_max, lam_min = max(e.max() for e in eig), min(e[e > 1e-10].min() for e in eig)
    lr = 1.0 / lam_max
    steps = int(np.ceil(np.log(1e-12) / np.log(1 - lr * lam_min)))
    np.testing.assert_allclose(solvers.gd(x, y, xq, lr=lr, steps=steps), ls, atol=1e-9)


def test_least_squares_finite_in_float32_at_n_equals_d():
    """The normal equations fail on ~1e-4 of N = d tasks in float32; the SVD path stays finite."""
    task = tasks.get("linear", d=10, n_ctx=10)
    batch = jax.tree.map(lambda a: a.astype(jnp.float32), task.sample(jax.random.key(0), 20000))
    y_hat = solvers.least_squares(batch.x_ctx, batch.y_ctx, batch.x_query)
    assert bool(jnp.all(jnp.isfinite(y_hat)))
    assert float(jnp.median(jnp.abs(y_hat - batch.y_query))) < 1e-3


def test_newton_matches_schulz_loop():
    x, y, xq = _data(7)
    steps = 4
    expected = np.zeros(xq.shape[:2])
    for t in range(len(x)):
        s = x[t].T @ x[t]
        m = s.T / np.linalg.norm(s @ s.T)
        for _ in range(steps):
            m = m @ (2 * np.eye(len(s)) - s @ m)
        expected[t] = xq[t] @ m @ x[t].T @ y[t]
    np.testing.assert_allclose(solvers.newton(x, y, xq, steps=steps), expected, atol=ATOL)


def test_optimal_gd_lr_is_the_scan_minimum():
    task = tasks.get("linear", d=10, n_ctx=10)
    key = jax.random.key(11)
    eta = solvers.optimal_gd_lr(task, key, 20000)
    batch = task.sample(key, 20000)
    grid = np.linspace(eta - 1.0, eta + 1.0, 2001)
    loss = lambda g: jnp.mean((solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=g) - batch.y_query) ** 2)
    losses = jax.jit(jax.vmap(loss))(grid[::50])  # 41 rates, one program
    fine = grid[::50][int(np.argmin(losses))]
    assert abs(fine - eta) <= 0.05 + 1e-12  # the scan's resolution
    # exact minimiser on the same sample: the loss is a parabola in lr, its derivative vanishes at eta
    a = solvers.gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query)
    assert abs(float(jnp.sum(a * (eta * a - batch.y_query)))) < 1e-8 * float(jnp.sum(a * a))


def test_optimal_gd_lr_gaussian_closed_form():
    """For x ~ N(0, I), w ~ N(0, I), no noise: lr* = N / (N + d + 1) (Gamma* = I / (N + d + 1))."""
    d, n = 5, 8
    task = tasks.get("linear", d=d, n_ctx=n, n_query=8, input_dist="gaussian")
    estimates = [solvers.optimal_gd_lr(task, jax.random.key(s), 50000) for s in range(4)]
    spread = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - n / (n + d + 1)) < max(4 * spread, 2e-3)
    np.testing.assert_allclose(solvers.gamma_star(np.eye(d), n), np.eye(d) / (n + d + 1), atol=1e-15)


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(noise_std=0.5),
        dict(covariance="diagonal", condition_number=5.0, noise_std=0.3, weight_std=1.5),
        dict(covariance="rotated", condition_number=4.0),
    ],
)
def test_gamma_star_is_the_best_preconditioner(params):
    """Fit Gamma by least squares on y_q ~ x_q^T Gamma X^T y over many tasks: it is Gamma*."""
    d, n = 3, 6
    task = tasks.get("linear", d=d, n_ctx=n, n_query=4, input_dist="gaussian", **params)
    batch = task.sample(jax.random.key(7), 200000)
    xty = np.einsum("bnd,bn->bd", batch.x_ctx, batch.y_ctx)
    feats = np.einsum("bmd,be->bmde", batch.x_query, xty).reshape(-1, d * d)
    fitted = np.linalg.lstsq(feats, np.asarray(batch.y_query).reshape(-1), rcond=None)[0].reshape(d, d)
    star = solvers.gamma_star(task.input_covariance, n, task.noise_std, task.weight_std)
    # Monte-Carlo error of the fit over 800k queries is ~1-2% of |Gamma*|
    np.testing.assert_allclose(fitted, star, atol=0.06 * np.abs(star).max())


def test_registry_and_shape_errors():
    assert {"gd", "least_squares", "ridge", "newton", "gd_plus_plus"} <= set(solvers.names())
    with pytest.raises(ValueError, match="unknown solver 'sgd'.*known solvers: .*gd"):
        solvers.get("sgd")
    x, y, xq = _data(8)
    with pytest.raises(ValueError, match="y_ctx must be"):
        solvers.gd(x, y[:, :-1], xq, lr=1.0)
    with pytest.raises(ValueError, match="x_query must be"):
        solvers.least_squares(x, y, xq[..., :-1])
    with pytest.raises(ValueError, match="x_ctx must be"):
        solvers.ridge(x[0], y, xq, 1.0)
    with pytest.raises(ValueError, match="steps must be an integer"):
        solvers.gd(x, y, xq, lr=1.0, steps=-1)
    with pytest.raises(ValueError, match="gamma_matrix must be"):
        solvers.preconditioned_gd(x, y, xq, np.eye(3))



@pytest.mark.parametrize("name, hparams, match", [
    ("ridge", dict(lam=-1.0), "ridge: lam must be >= 0"),
    ("ridge", dict(lam=float("nan")), "ridge: lam must be >= 0 and finite"),
    ("ridge", dict(lam=np.inf), "ridge: lam must be >= 0 and finite"),
    ("ridge", dict(lam=np.float32(-0.5)), "ridge: lam must be >= 0"),
    ("bayes_ridge", dict(noise_std=-0.1), "bayes_ridge: noise_std must be >= 0"),
    ("bayes_ridge", dict(noise_std=np.nan), "bayes_ridge: noise_std must be >= 0 and finite"),
    ("bayes_ridge", dict(noise_std=0.1, weight_std=0.0), "bayes_ridge: weight_std must be > 0"),
    ("gd", dict(lr=0.1, steps=-1), "steps must be an integer >= 0"),
])
def test_out_of_range_hyperparameters_raise(name, hparams, match):
    """Python / NumPy numbers out of range raise a one-line error; lam = 0 (least squares) is fine
    and a traced lam is not checked (jit still works)."""
    x, y, xq = _data(8)
    with pytest.raises(ValueError, match=match) as err:
        solvers.get(name)(x, y, xq, **hparams)
    assert "\n" not in str(err.value)


def test_ridge_accepts_zero_and_traced_lam():
    x, y, xq = _data(8)
    np.testing.assert_allclose(solvers.ridge(x, y, xq, 0), solvers.least_squares(x, y, xq), atol=ATOL)
    np.testing.assert_allclose(jax.jit(lambda lam: solvers.ridge(x, y, xq, lam))(0.3), naive_ridge(x, y, xq, 0.3), atol=ATOL)

@pytest.mark.parametrize("n_test", [3, 8, 20])
def test_preconditioned_loss_matches_monte_carlo(n_test):
    """The closed form against the sampled loss of an arbitrary (non-symmetric) Gamma on noisy,
    rotated, ill-conditioned tasks, at context lengths other than the one Gamma suits."""
    d = 3
    task = tasks.get("linear", d=d, n_ctx=n_test, n_query=4, input_dist="gaussian", covariance="rotated",
                     condition_number=6.0, noise_std=0.7, weight_std=1.3)
    gamma = np.random.default_rng(3).standard_normal((d, d)) * 0.05 + 0.04 * np.eye(d)
    batch = task.sample(jax.random.key(11), 100000)
    y_hat = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=jnp.asarray(gamma))
    sq = 0.5 * np.asarray(y_hat - batch.y_query) ** 2  # [B, M]
    per_task = sq.mean(1)
    stderr = per_task.std() / np.sqrt(per_task.size)
    expected = solvers.preconditioned_loss(gamma, task.input_covariance, n_test, task.noise_std, task.weight_std)
    assert abs(per_task.mean() - expected) < 4 * stderr, (per_task.mean(), expected, stderr)


@pytest.mark.parametrize("noise_std, weight_std", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.5), (2.0, 3.0), (0.5, 0.2)])
def test_gamma_star_is_the_moment_solution(noise_std, weight_std):
    """Gamma* = E[w u^T] E[u u^T]^{-1} (u = X^T y), from the Gaussian moments alone:
    E[w u^T] = tau^2 N Sigma and E[u u^T] = tau^2 (N(N+1) Sigma^2 + N tr(Sigma) Sigma) + sigma^2 N Sigma.
    The noise-to-signal term sigma^2 / tau^2 moves Gamma* by >= 1 % of |Gamma*| in every noisy
    case here (checked below), and computing it with tau = 1 by >= 1 % when tau != 1: the
    tolerance, float64 rounding of two 4x4 solves (1e-12 of |Gamma*|), is far below both."""
    d, n = 4, 5
    sigma = tasks.get("linear", d=d, n_ctx=n, input_dist="gaussian", covariance="rotated", condition_number=6.0).input_covariance
    sigma = np.asarray(sigma, np.float64)
    tau2, s2 = weight_std**2, noise_std**2
    e_wu = tau2 * n * sigma
    e_uu = tau2 * (n * (n + 1) * sigma @ sigma + n * np.trace(sigma) * sigma) + s2 * n * sigma
    want = np.linalg.solve(e_uu.T, e_wu.T).T  # E[w u^T] E[u u^T]^{-1}
    got = solvers.gamma_star(sigma, n, noise_std, weight_std)
    tol = 1e-12 * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    if noise_std:
        effects = [np.abs(solvers.gamma_star(sigma, n) - want).max()]  # no noise term
        if weight_std != 1:  # the noise term with tau = 1
            effects.append(np.abs(np.linalg.inv((n + 1) * sigma + (np.trace(sigma) + s2) * np.eye(d)) - want).max())
        assert min(effects) > 0.01 * np.abs(want).max() > 1e9 * tol


@pytest.mark.parametrize("noise_std", [0.0, 1.5])
def test_gamma_star_minimises_the_closed_form_loss(noise_std):
    """Gamma* is a stationary point of preconditioned_loss (central differences) and every
    random perturbation raises the loss (it is convex in Gamma)."""
    d, n = 4, 7
    sigma = tasks.get("linear", d=d, n_ctx=n, input_dist="gaussian", covariance="rotated", condition_number=8.0).input_covariance
    star = solvers.gamma_star(sigma, n, noise_std, 1.0)
    f = lambda g: solvers.preconditioned_loss(g, sigma, n, noise_std, 1.0)
    eps = 1e-5
    basis = np.eye(d * d).reshape(d * d, d, d)
    grad = np.array([[(f(star + eps * e) - f(star - eps * e)) / (2 * eps) for e in basis[i * d:(i + 1) * d]] for i in range(d)])
    assert np.abs(grad).max() < 1e-7
    rng = np.random.default_rng(0)
    assert all(f(star + 0.01 * rng.standard_normal((d, d))) > f(star) for _ in range(20))
    with pytest.raises(ValueError, match="equal square matrices"):
        solvers.preconditioned_loss(np.eye(2), sigma, n)
