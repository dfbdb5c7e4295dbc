"""icl.analysis.online_sgd against closed forms: two steps by hand, GD to first order in the step
(float64, conftest)."""

import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers
from icl.analysis import online_sgd

D, N = 4, 6  # the shapes of the small_linear_batch fixture (conftest)


@pytest.fixture
def batch(small_linear_batch):
    return small_linear_batch


def test_online_sgd_two_examples_closed_form(batch):
    lr = 0.3
    x, y, xq = batch.x_ctx[:, :2], batch.y_ctx[:, :2], batch.x_query
    w1 = lr * y[:, 0:1] * x[:, 0]  # [B, d]
    w2 = w1 - lr * (jnp.sum(w1 * x[:, 1], -1) - y[:, 1])[:, None] * x[:, 1]
    expected = jnp.einsum("bmd,bd->bm", xq, w2)
    np.testing.assert_allclose(online_sgd.online_sgd(x, y, xq, lr), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(online_sgd.at_step(lr)(x, y, xq), online_sgd.online_sgd(x, y, xq, lr))


def test_online_sgd_is_gd_to_first_order(batch):
    """alpha = eta / N: online SGD - GD = O(eta^2); halving eta quarters the gap."""
    gaps = []
    for eta in (0.02, 0.01):
        sgd = online_sgd.matched_online_sgd(eta, N)(batch.x_ctx, batch.y_ctx, batch.x_query)
        gd = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=eta, steps=1)
        gaps.append(float(jnp.max(jnp.abs(sgd - gd))))
    assert 3.5 < gaps[0] / gaps[1] < 4.5
