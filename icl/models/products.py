"""Products whose backward passes avoid XLA:CPU's slow cases, shared by the fast paths.

XLA:CPU runs a batched dot that contracts its lhs's rows (the gradient of a batched product with
respect to its right factor, A^T G) 3-4x slower than a transpose followed by a plain product,
and it folds a plain transpose back into the consuming dot. So every backward pass here
materialises the transposes it needs (`transposed`), and returns each cotangent in its primal's
dtype (`like`: float32 data and float64 weights meet in a product of the wider type).

  bmm(a, b)      a [..., i, j] @ b [..., j, k]     per-task products
  bmm_nt(a, b)   a [..., i, j] @ b [..., k, j]^T   per-task products with a transposed right factor
  matmul(x, w)   x [..., i] @ w [i, j]             a weight shared by every leading index
  gram_matrix(x) x^T x for x [..., n, d]           symmetric; backward x (g + g^T)
  softmax(z)     over the last axis                backward y * (g - sum(g y)) in one pass

Used by `icl.models.fast`, `icl.models.gram` and `icl.models.gelu_mlp`; the numbers are those of
the plain formulas (`tests/test_fast_paths.py`, `tests/test_gelu_mlp.py` check them in float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def transposed(x: jax.Array) -> jax.Array:
    """The transpose of the last two axes, materialised (XLA would fold a plain transpose back
    into the consuming dot as a transposed operand, the slow case). A vector's transpose is a
    reshape and stays one."""
    swapped = jnp.swapaxes(x, -1, -2)
    return swapped if 1 in x.shape[-2:] else jax.lax.optimization_barrier(swapped)


def like(cotangent: jax.Array, primal: jax.Array) -> jax.Array:
    """A cotangent in its primal's dtype (mixed inputs, e.g. float32 data and float64 weights,
    meet in a product of the wider type)."""
    return cotangent.astype(primal.dtype)


@jax.custom_vjp
def bmm(a: jax.Array, b: jax.Array) -> jax.Array:
    """Batched a [..., i, j] @ b [..., j, k] -> [..., i, k]."""
    return jnp.matmul(a, b)


def _bmm_fwd(a, b):
    return jnp.matmul(a, b), (a, b)


def _bmm_bwd(res, g):
    a, b = res
    return like(bmm_nt(g, b), a), like(bmm(transposed(a), g), b)


bmm.defvjp(_bmm_fwd, _bmm_bwd)


@jax.custom_vjp
def bmm_nt(a: jax.Array, b: jax.Array) -> jax.Array:
    """Batched a [..., i, j] @ b [..., k, j]^T -> [..., i, k]."""
    return jnp.einsum("...ij,...kj->...ik", a, b)


def _bmm_nt_fwd(a, b):
    return bmm_nt(a, b), (a, b)


def _bmm_nt_bwd(res, g):
    a, b = res
    return like(bmm(g, b), a), like(bmm(transposed(g), a), b)


bmm_nt.defvjp(_bmm_nt_fwd, _bmm_nt_bwd)


@jax.custom_vjp
def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., i] @ w [i, j] -> [..., j] for a weight w shared by every leading index."""
    return x @ w


def _matmul_fwd(x, w):
    return x @ w, (x, w)


def _matmul_bwd(res, g):
    x, w = res
    flat_x, flat_g = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    if w.shape[-1] <= 2:  # a (two-)vector product: XLA reduces x^T g in one pass, no transpose
        return like(g @ w.T, x), like(jnp.einsum("ni,nj->ij", flat_x, flat_g), w)
    return like(g @ w.T, x), like(transposed(flat_x) @ flat_g, w)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


@jax.custom_vjp
def gram_matrix(x: jax.Array) -> jax.Array:
    """x^T x for x [..., n, d] -> [..., d, d] (symmetric), with the transpose materialised."""
    return bmm(transposed(x), x)


def _gram_fwd(x):
    return gram_matrix(x), x


def _gram_bwd(x, g):
    return (like(bmm(x, g + transposed(g)), x),)


gram_matrix.defvjp(_gram_fwd, _gram_bwd)


@jax.custom_vjp
def softmax(logits: jax.Array) -> jax.Array:
    """Softmax over the last axis (the same numbers as `jax.nn.softmax`), whose backward pass is
    y * (g - sum(g * y)): one pass, where differentiating exp(x - max) / sum takes the quotient
    rule through the division (what `jax.nn.softmax` does unless jax_softmax_custom_jvp is set)."""
    return jax.nn.softmax(logits, axis=-1)


def _softmax_fwd(logits):
    y = jax.nn.softmax(logits, axis=-1)
    return y, y


def _softmax_bwd(y, g):
    return (like(y * (g - jnp.sum(g * y, axis=-1, keepdims=True)), y),)


softmax.defvjp(_softmax_fwd, _softmax_bwd)
