"""The kernel_gp task family (claim 20): inputs uniform on the sphere, labels whose empirical
covariance is the kernel's Gram matrix (Monte Carlo), the kernels themselves, one-line errors for
bad fields, finiteness in float32 at the study's sizes, its configs. (The shared contract,
tests/test_tasks.py, picks the family up with its defaults.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import experiments, tasks
from icl.precision import at_dtype
from icl.tasks.kernel_gp import KERNELS, dot_product_kernel

B = 40000


def _task(**fields):
    return tasks.get("kernel_gp", **{"d": 3, "n_ctx": 4, "n_query": 1, **fields})


@pytest.mark.parametrize("kind", KERNELS)
def test_dot_product_kernels(kind):
    x1 = jax.random.normal(jax.random.key(0), (2, 4, 3))
    x2 = jax.random.normal(jax.random.key(1), (2, 5, 3))
    s = np.einsum("bpd,bqd->bpq", x1, x2)
    expected = {"linear": 0.7 * s, "relu": np.maximum(0.7 * s, 0.0), "exp": np.exp(0.7 * s)}[kind]
    np.testing.assert_allclose(dot_product_kernel(kind, x1, x2, 0.7), expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="kind must be one of"):
        dot_product_kernel("rbf", x1, x2)


def test_inputs_are_uniform_on_the_sphere():
    batch = _task(d=4).sample(jax.random.key(2), 5000)
    x = np.concatenate([np.asarray(batch.x_ctx), np.asarray(batch.x_query)], 1).reshape(-1, 4)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-12)
    # uniform on S^{d-1}: mean 0, covariance I / d (25k points: std error of an entry ~ 0.0015)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), np.eye(4) / 4, atol=0.01)


@pytest.mark.parametrize(("kind", "scale", "noise"), [("linear", 1.0, 0.0), ("relu", 1.0, 0.3), ("exp", 0.5, 0.1), ("exp", 1.5, 0.0)])
def test_label_covariance_is_the_kernel(kind, scale, noise):
    """Given the inputs, E[y y^T] = label_covariance + noise^2 I, where label_covariance is
    K + jitter I (the kernel's Gram matrix) for "linear" and "exp", |K| + jitter I for "relu".
    Monte Carlo over B tasks: the normalised products y_i y_j / sqrt(C_ii C_jj) have mean
    C_ij / sqrt(C_ii C_jj) and variance 1 + rho^2 <= 2, so their average over B = 40k tasks is
    within 6 sqrt(2 / B) ~ 0.042 of it (every pair); the whitened labels' covariance is I within 0.04
    (std error of an entry ~ 0.007)."""
    task = _task(kernel=kind, kernel_scale=scale, noise_std=noise)
    batch = task.sample(jax.random.key(3), B)
    x = np.concatenate([np.asarray(batch.x_ctx), np.asarray(batch.x_query)], 1)  # [B, P, d]
    y = np.concatenate([np.asarray(batch.y_ctx), np.asarray(batch.y_query)], 1)  # [B, P]
    gram = np.asarray(task.gram(jnp.asarray(x)))
    label_cov = np.asarray(task.label_covariance(jnp.asarray(x)))
    if kind == "relu":  # the matrix absolute value of the Gram matrix, which is indefinite
        evals, evecs = np.linalg.eigh(gram)
        np.testing.assert_allclose(label_cov, np.einsum("bpk,bk,bqk->bpq", evecs, np.abs(evals), evecs) + task.jitter * np.eye(5),
                                   atol=1e-12)
    else:
        np.testing.assert_allclose(label_cov, gram + task.jitter * np.eye(5), atol=1e-14)
    cov = label_cov + noise**2 * np.eye(x.shape[1])
    sd = np.sqrt(np.einsum("bpp->bp", cov))  # [B, P]
    z = y / sd  # unit variance per point
    corr = cov / (sd[:, :, None] * sd[:, None, :])
    empirical = np.einsum("bp,bq->pq", z, z) / B
    np.testing.assert_allclose(empirical, corr.mean(0), atol=6 * np.sqrt(2 / B))
    # whitened labels are standard normal: L^{-1} y ~ N(0, I) per task
    white = np.linalg.solve(np.linalg.cholesky(cov), y[..., None])[..., 0]
    np.testing.assert_allclose(np.cov(white.T), np.eye(x.shape[1]), atol=0.04)
    assert batch.w is None


def test_relu_is_not_a_psd_kernel_and_its_labels_still_have_a_valid_covariance():
    """Why "relu" draws with |K|: at d = 5 the Gram matrix of 21 points on the sphere is indefinite."""
    task = tasks.get("kernel_gp", d=5, n_ctx=20, kernel="relu")
    g = jax.random.normal(jax.random.key(11), (50, 21, 5))
    x = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    assert float(jnp.linalg.eigvalsh(task.gram(x)).min(-1).max()) < -0.05  # every one indefinite
    assert float(jnp.linalg.eigvalsh(task.label_covariance(x)).min()) >= task.jitter * 0.999
    factor = task.factor(x)
    np.testing.assert_allclose(jnp.einsum("bpk,bqk->bpq", factor, factor), task.label_covariance(x), atol=1e-12)


def test_the_linear_kernel_is_linear_regression():
    """k = c x . x' is the law of y = w . x, w ~ N(0, c I): noiseless labels lie in the span of x."""
    task = _task(kernel="linear", kernel_scale=2.0, n_ctx=8, jitter=1e-12)
    batch = task.sample(jax.random.key(4), 20)
    x = np.concatenate([np.asarray(batch.x_ctx), np.asarray(batch.x_query)], 1)
    y = np.concatenate([np.asarray(batch.y_ctx), np.asarray(batch.y_query)], 1)
    w = np.stack([np.linalg.lstsq(xb, yb, rcond=None)[0] for xb, yb in zip(x, y, strict=True)])
    np.testing.assert_allclose(np.einsum("bpd,bd->bp", x, w), y, atol=1e-5)


def test_a_pure_function_of_the_key_and_jittable():
    task = _task(kernel="relu", noise_std=0.1)
    a, b = task.sample(jax.random.key(5), 7), task.sample(jax.random.key(5), 7)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    c = jax.jit(task.sample, static_argnums=1)(jax.random.key(5), 7)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-12), a, c)


@pytest.mark.parametrize("kind", KERNELS)
def test_finite_in_float32_at_the_study_sizes(kind):
    from icl.experiments import claim20_kernel_attention as study

    with at_dtype("float32"):
        batch = study.task(kind).sample(jax.random.key(6), 4096)
        for leaf in jax.tree.leaves(batch):
            assert leaf.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(leaf)))
    # noiseless with the default jitter too, where the linear Gram matrix (rank d) is singular
    with at_dtype("float32"):
        batch = tasks.get("kernel_gp", d=5, n_ctx=20, kernel=kind).sample(jax.random.key(7), 4096)
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(batch))


@pytest.mark.parametrize(("fields", "match"), [
    (dict(kernel="rbf"), r"kernel_gp task: kernel must be one of \('linear', 'relu', 'exp'\), got 'rbf'"),
    (dict(kernel_scale=0.0), "kernel_gp task: kernel_scale must be a number > 0, got 0.0"),
    (dict(kernel_scale=True), "kernel_gp task: kernel_scale must be a number > 0, got True"),
    (dict(noise_std=-0.1), "kernel_gp task: noise_std must be a number >= 0"),
    (dict(jitter=-1e-6), "kernel_gp task: jitter must be a number >= 0"),
    (dict(jitter=0.0), r"kernel_gp task: needs jitter > 0 or noise_std > 0"),
    (dict(noise_std=float("nan")), "kernel_gp task: noise_std must be finite"),
    (dict(d=0), "kernel_gp task: d must be"),
    (dict(n_ctx=2.5), "kernel_gp task: n_ctx must be"),
    (dict(weight_std=1.0), "task family 'kernel_gp' has no parameter"),
])
def test_bad_fields_are_one_line_errors(fields, match):
    with pytest.raises(ValueError, match=match) as error:
        _task(**fields)
    assert "\n" not in str(error.value)


def test_noiseless_with_zero_jitter_is_refused_but_noise_alone_is_enough():
    task = _task(jitter=0.0, noise_std=0.2)
    assert task.diagonal == pytest.approx(0.04)
    assert bool(jnp.all(jnp.isfinite(task.sample(jax.random.key(8), 5).y_ctx)))


def test_the_study_registers_the_3_by_3_grid():
    from icl.experiments import claim20_kernel_attention as study

    assert set(experiments.studies()[study.STUDY]) == {f"{study.STUDY}{n}_{a}_{b}" for n in ("", "_n8") for a in KERNELS for b in KERNELS}
    for setting, n_ctx in (("main", 20), ("n8", 8)):
        for (data, h), config in study.configs("quick", setting=setting).items():
            assert config.task.kernel == data and config.model.attention == h and config.model.n_layers == 1
            assert config.task.n_ctx == n_ctx
            assert config.train.steps * config.train.batch_size * config.train.n_seeds <= 200 * 256 * 2
    assert study.configs("full")[("exp", "exp")].task.kernel_scale == 0.5
    with pytest.raises(ValueError, match="setting must be one of"):
        study.configs(setting="n14")
