"""`icl.models.gelu_mlp` equals the plain formula gelu(x W_in + b_in) W_out + b_out in float64: values,
the gradients of every argument and second derivatives, whole and in row blocks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl.models import gelu_mlp as gm


def plain(x, w_in, b_in, w_out, b_out):
    return jax.nn.gelu(x @ w_in + b_in[None, None]) @ w_out + b_out[None, None]


def _args(n_in, rows=(3, 14), hidden=6, n_out=4, seed=0, x_dtype=jnp.float64):
    k = jax.random.split(jax.random.key(seed), 5)
    return (jax.random.normal(k[0], (*rows, n_in), x_dtype), jax.random.normal(k[1], (n_in, hidden)),
            jax.random.normal(k[2], (hidden,)), jax.random.normal(k[3], (hidden, n_out)), jax.random.normal(k[4], (n_out,)))


def _close(got, want, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=rtol * float(np.abs(want).max()))


@pytest.mark.parametrize("budget", [6 * 42, 6 * 7, 6])  # 1 block of 42 rows, 6 blocks of 7, 42 blocks of 1
@pytest.mark.parametrize("n_in", [1, 3])
def test_values_and_gradients_in_blocks(monkeypatch, budget, n_in):
    monkeypatch.setattr(gm, "HIDDEN_BLOCK", budget)
    args = _args(n_in)
    run = jax.jit(gm.gelu_mlp)
    _close(run(*args), plain(*args))
    cotangent = jax.random.normal(jax.random.key(9), (3, 14, 4))
    got = jax.jit(lambda *a: jax.vjp(gm.gelu_mlp, *a)[1](cotangent))(*args)
    want = jax.jit(lambda *a: jax.vjp(plain, *a)[1](cotangent))(*args)  # jitted (op by op: ~50 s)
    for g, w in zip(got, want, strict=True):
        _close(g, w)
    # second order: a Hessian-vector product through the hand-written backward pass
    hv = lambda f: jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(f(args[0], w, *args[2:]) ** 2))(w) * w))(args[1])
    _close(jax.jit(lambda: hv(gm.gelu_mlp))(), jax.jit(lambda: hv(plain))(), rtol=1e-10)


def test_float32_inputs_with_float64_weights():
    args = _args(2, x_dtype=jnp.float32)
    got = jax.vjp(gm.gelu_mlp, *args)[1](jnp.ones((3, 14, 4)))
    want = jax.vjp(plain, *args)[1](jnp.ones((3, 14, 4)))
    for g, w, a in zip(got, want, args, strict=True):
        assert g.dtype == a.dtype
        _close(g, w, rtol=1e-6 if a.dtype == jnp.float32 else 1e-12)


def test_gelu_and_slope_is_jax_gelu():
    u = jnp.linspace(-8.0, 8.0, 2001, dtype=jnp.float64)
    value, slope = gm.gelu_and_slope(u)
    _close(value, jax.nn.gelu(u))
    _close(slope, jax.vmap(jax.grad(jax.nn.gelu))(u))


@pytest.mark.parametrize(("n_rows", "hidden", "budget", "want"),
                         [(20480, 160, 2**17, 640), (2048, 160, 2**17, 512), (7, 3, 6, 1), (12, 1, 100, 12)])
def test_rows_per_block(n_rows, hidden, budget, want):
    assert gm.rows_per_block(n_rows, hidden, budget) == want
