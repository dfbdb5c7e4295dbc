"""The two-layer GELU MLP of the embedding and the MLP blocks, computed in row blocks.

    mlp(x) = gelu(x W_in + b_in) W_out + b_out,   x [R, i] (any leading axes), W_in [i, h], W_out [h, o]

with its backward pass by hand:

    u = x W_in + b_in,  G = dL/dmlp(x) [R, o],  dU = gelu'(u) * (G W_out^T)   [R, h]
    dW_out = gelu(u)^T G,  db_out = sum_r G_r,  dW_in = x^T dU,  db_in = sum_r dU_r,  dx = dU W_in^T

The hidden activations [R, h] are the large arrays of the step (figure 4: R = 20,480 context tokens
per seed, h = 160, 13 MB per seed). Written whole they cost more than the arithmetic: fresh
buffers of that size are page-faulted in on every step, and every pass over them streams from
main memory. Here the rows go through in blocks of `rows_per_block(R, h)` (hidden block ~0.5 MB,
in cache): the forward pass keeps nothing but x, the backward pass recomputes u and gelu(u)
block by block and sums the weight gradients over the blocks. The products avoid XLA:CPU's slow
transposed-operand dots as `icl.models.products` does: W_out^T is materialised once, and
dW_out^T = G^T gelu(u) transposes the narrower G block. An input width of 1 (a scalar x, figure
4) makes x W_in a broadcast product.

`tests/test_gelu_mlp.py` checks values, all gradients and second derivatives against the plain
formula in float64, over several blocks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from icl.models.products import like, transposed

HIDDEN_BLOCK = 2**17  # rows x hidden width per block (0.5 MB of float32)
_A, _B = math.sqrt(2 / math.pi), 0.044715  # the tanh form of GELU (jax.nn.gelu's default)


def rows_per_block(n_rows: int, hidden: int, budget: int = HIDDEN_BLOCK) -> int:
    """The largest divisor of n_rows whose block of hidden activations fits `budget` elements
    (at least 1 row)."""
    limit = max(1, budget // hidden)
    return max(c for c in range(1, min(n_rows, limit) + 1) if n_rows % c == 0)


def gelu_and_slope(u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """gelu(u) and gelu'(u) from one tanh: gelu(u) = u (1 + t) / 2, t = tanh(a u (1 + b u^2)),
    gelu'(u) = (1 + t) / 2 + u (1 - t^2) a (1 + 3 b u^2) / 2, a = sqrt(2 / pi), b = 0.044715."""
    u2 = u * u
    t = jnp.tanh(_A * u * (1 + _B * u2))
    half = 0.5 * (1 + t)
    return u * half, half + 0.5 * u * (1 - t * t) * _A * (1 + 3 * _B * u2)


def _pre(x: jax.Array, w_in: jax.Array, b_in: jax.Array) -> jax.Array:
    """u = x W_in + b_in, [c, i] -> [c, h]; a broadcast product for i = 1."""
    return (x * w_in if w_in.shape[0] == 1 else x @ w_in) + b_in[None, :]


def _block(a: jax.Array, i: jax.Array, size: int) -> jax.Array:
    return jax.lax.dynamic_slice_in_dim(a, i * size, size, 0)


@jax.custom_vjp
def _mlp_rows(x, w_in, b_in, w_out, b_out):
    """x [R, i] -> [R, o]."""
    size = rows_per_block(x.shape[0], w_in.shape[1])
    dtype = jnp.result_type(x, w_in, w_out)
    if size == x.shape[0]:
        return jax.nn.gelu(_pre(x, w_in, b_in)) @ w_out + b_out[None, :]

    def body(i, out):
        block = jax.nn.gelu(_pre(_block(x, i, size), w_in, b_in)) @ w_out
        return jax.lax.dynamic_update_slice_in_dim(out, block.astype(dtype), i * size, 0)

    out = jax.lax.fori_loop(0, x.shape[0] // size, body, jnp.zeros((x.shape[0], w_out.shape[1]), dtype))
    return out + b_out[None, :]


def _mlp_rows_fwd(x, w_in, b_in, w_out, b_out):
    return _mlp_rows(x, w_in, b_in, w_out, b_out), (x, w_in, b_in, w_out, b_out)


def _mlp_rows_bwd(res, g):
    x, w_in, b_in, w_out, b_out = res
    size = rows_per_block(x.shape[0], w_in.shape[1])
    w_out_t, w_in_t = transposed(w_out), transposed(w_in)

    def block_grads(xc, gc):
        hidden, slope = gelu_and_slope(_pre(xc, w_in, b_in))  # [c, h]
        d_pre = slope * (gc @ w_out_t).astype(hidden.dtype)  # [c, h]
        d_w_in = jnp.einsum("ci,ch->ih", xc, d_pre) if xc.shape[1] == 1 else transposed(xc) @ d_pre
        return (d_w_in, d_pre.sum(0), transposed(gc) @ hidden), d_pre @ w_in_t

    if size == x.shape[0]:
        (d_w_in, d_b_in, d_w_out_t), dx = block_grads(x, g)
    else:
        def body(i, carry):
            sums, dx = carry
            grads, dx_block = block_grads(_block(x, i, size), _block(g, i, size))
            dx = jax.lax.dynamic_update_slice_in_dim(dx, dx_block.astype(dx.dtype), i * size, 0)
            return jax.tree.map(jnp.add, sums, grads), dx

        zeros = (jnp.zeros_like(w_in, dtype=g.dtype), jnp.zeros_like(b_in, dtype=g.dtype),
                 jnp.zeros(w_out.shape[::-1], g.dtype))
        (d_w_in, d_b_in, d_w_out_t), dx = jax.lax.fori_loop(0, x.shape[0] // size, body, (zeros, jnp.zeros(x.shape, g.dtype)))
    return (like(dx, x), like(d_w_in, w_in), like(d_b_in, b_in), like(d_w_out_t.T, w_out),
            like(g.sum(0), b_out))


_mlp_rows.defvjp(_mlp_rows_fwd, _mlp_rows_bwd)


def gelu_mlp(x: jax.Array, w_in: jax.Array, b_in: jax.Array, w_out: jax.Array, b_out: jax.Array) -> jax.Array:
    """gelu(x W_in + b_in) W_out + b_out for x [..., i] -> [..., o] (flax's `nn.gelu`, the tanh
    form), computed in row blocks with the backward pass of the module docstring."""
    rows = x.reshape(-1, x.shape[-1])
    return _mlp_rows(rows, w_in, b_in, w_out, b_out).reshape(*x.shape[:-1], w_out.shape[-1])


def linear_weights(layer) -> tuple[jax.Array, jax.Array]:
    """(kernel, bias) of an `nnx.Linear` (bias zeros when it has none)."""
    kernel = layer.kernel[...]
    return kernel, (layer.bias[...] if layer.bias is not None else jnp.zeros(kernel.shape[1], kernel.dtype))
