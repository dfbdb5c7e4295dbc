"""icl/solvers/online.py (one-pass online SGD over the context) against a naive Python loop in
float64, with masks, every prefix, its default step and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.analysis import online_sgd as analysis_online_sgd

ATOL = 1e-12  # float64, the same arithmetic in another order


def _data(seed, b=5, n=9, d=3, m=4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n, d))
    w = rng.standard_normal((b, d))
    y = np.einsum("bnd,bd->bn", x, w) + 0.3 * rng.standard_normal((b, n))
    return x, y, rng.standard_normal((b, m, d))


def naive_online_sgd(x, y, xq, lr, mask=None):
    """w <- w - lr (w . x_i - y_i) x_i for the present examples in order, one task at a time."""
    out = np.zeros(xq.shape[:2])
    for b in range(len(x)):
        w = np.zeros(x.shape[2])
        for i in range(x.shape[1]):
            if mask is None or mask[b, i] > 0:
                w = w - lr * (w @ x[b, i] - y[b, i]) * x[b, i]
        out[b] = xq[b] @ w
    return out


def test_online_sgd_equals_naive_loop():
    x, y, xq = _data(0)
    for lr in (0.05, 0.3):
        np.testing.assert_allclose(solvers.online_sgd(x, y, xq, lr=lr), naive_online_sgd(x, y, xq, lr), atol=ATOL)
    w = solvers.online_sgd_weights(x, y, 0.3, np.ones(y.shape))
    np.testing.assert_allclose(jnp.einsum("bmd,bd->bm", xq, w), naive_online_sgd(x, y, xq, 0.3), atol=ATOL)


def test_mask_skips_examples():
    x, y, xq = _data(1)
    mask = (np.random.default_rng(2).random(y.shape) < 0.5).astype(float)
    got = solvers.online_sgd(x, y, xq, lr=0.2, mask=mask)
    np.testing.assert_allclose(got, naive_online_sgd(x, y, xq, 0.2, mask), atol=ATOL)
    # a skipped example is exactly an absent one: drop it from the sequence
    keep = mask[0] > 0
    alone = solvers.online_sgd(x[:1, keep], y[:1, keep], xq[:1], lr=0.2)
    np.testing.assert_allclose(got[:1], alone, atol=ATOL)


def test_every_prefix_in_one_call():
    x, y, xq = _data(3)
    got = solvers.prefix_predictions("online_sgd(lr=0.2)", x, y, xq)  # [B, N, M]
    for n in range(1, x.shape[1] + 1):
        np.testing.assert_allclose(got[:, n - 1], naive_online_sgd(x[:, :n], y[:, :n], xq, 0.2), atol=ATOL)


def test_closed_forms():
    """One example: w_1 = lr y_1 x_1. Orthonormal examples at lr = 1 (|x_i| = 1): each step fits
    its example exactly and leaves the others alone, so w_N = sum_i y_i x_i."""
    x, y, xq = _data(4, n=1)
    np.testing.assert_allclose(solvers.online_sgd(x, y, xq, lr=0.3),
                               np.einsum("bmd,bd->bm", xq, 0.3 * y[:, :1] * x[:, 0]), atol=ATOL)
    q = np.linalg.qr(np.random.default_rng(5).standard_normal((4, 4)))[0]
    xs, ys = q.T[None], np.array([[1.0, -2.0, 0.5, 3.0]])  # rows orthonormal
    w = ys[0] @ xs[0]  # [d] sum_i y_i x_i
    np.testing.assert_allclose(solvers.online_sgd(xs, ys, np.eye(4)[None], lr=1.0), w[None], atol=ATOL)


def test_single_query_jit_and_analysis_module_use_the_solver():
    x, y, xq = _data(6)
    full = solvers.online_sgd(x, y, xq, lr=0.1)
    np.testing.assert_allclose(solvers.online_sgd(x, y, xq[:, 0], lr=0.1), full[:, 0], atol=ATOL)
    np.testing.assert_allclose(jax.jit(solvers.online_sgd)(x, y, xq, 0.1), full, atol=ATOL)
    assert analysis_online_sgd.online_sgd is solvers.online_sgd
    np.testing.assert_allclose(analysis_online_sgd.matched_online_sgd(0.9, 9)(x, y, xq), full, atol=ATOL)


def test_default_step_is_one_over_trace():
    """lr = 1 / tr Sigma: 1 / d for the decision-tree family's N(0, I_d) inputs (estimated from
    1,024 tasks of 100 examples: ~4e-4 relative sd), exact for a linear task's covariance."""
    linear = tasks.get("linear", d=4, input_dist="gaussian", covariance="diagonal", condition_number=3.0)
    _, hp = compare.solver_predictor("online_sgd", linear, jax.random.key(0))
    assert hp["lr"] == pytest.approx(1.0 / np.trace(linear.input_covariance), rel=1e-12)
    _, hp = compare.solver_predictor("online_sgd", tasks.get("decision_tree"), jax.random.key(0))
    assert hp["lr"] == pytest.approx(1 / 20, rel=3e-3)


def test_bad_step_fails_with_one_line():
    x, y, xq = _data(7)
    with pytest.raises(ValueError, match="online_sgd: lr must be > 0 and finite, got 0"):
        solvers.online_sgd(x, y, xq, lr=0)
    with pytest.raises(ValueError, match="mask must be"):
        solvers.online_sgd(x, y, xq, lr=0.1, mask=np.ones(4))
