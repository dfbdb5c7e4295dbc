"""LSA weights that provably implement gradient descent (von Oswald et al. 2023, Prop. 1).

In the column convention `e_j <- e_j + P W_V sum_i e_i (W_K e_i)^T (W_Q e_j)` with tokens
e = [x, y] in R^(d+1) and I the d x d identity:

  GD:   W_K = W_Q = [[I, 0], [0, 0]],  W_V = [[0, 0], [w0^T, -1]],   P = (lr/N) [[0, 0], [0, 1]]
  GD++: as GD but W_V = [[I, 0], [w0^T, -1]] and P = [[-gamma I, 0], [0, lr/N]]

One GD layer maps every token's y-slot to `y_j - dW x_j` with `dW = -lr grad L(w0)`; the query
slot starts at `-w0 . x_q` (the paper's convention; 0 when w0 = 0) and ends at `-(w0 + dW) . x_q`.
Since the context slots keep the residuals (minus w0's part), K identical layers are K GD steps.
A GD++ layer also maps every x to `(I - gamma X^T X) x` (see `solvers.gd_plus_plus`).

The model stores row-convention weights: query = W_Q^T, key = W_K^T, value = W_V^T, out = P^T.
The models are `ConstructedLSA`s: their forward pass runs at "highest" matmul precision on
every backend, also inside the caller's jit (`icl.precision`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl.checks import check_int
from icl.models.lsa import LSATransformer, ModelConfig
from icl.precision import highest


class ConstructedLSA(LSATransformer):
    """An LSA transformer whose forward pass runs at "highest" matmul precision (`icl.precision`)."""

    layer_predictions = highest(LSATransformer.layer_predictions)


def _lsa_model(d: int, layers: int, w_q, w_k, w_v, p, w0, dtype) -> ConstructedLSA:
    """A linear, 1-head, key-size d+1 LSA model whose every layer has the given column weights, in
    `dtype` (None: JAX's default float, float64 when x64 is on, else float32)."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    config = ModelConfig(n_layers=layers, shared=False, n_heads=1, key_size=d + 1, attention="linear")
    model = ConstructedLSA(config, d, rngs=nnx.Rngs(0))
    for layer in model.layers:
        layer.query[...] = jnp.asarray(w_q.T[None], dtype)
        layer.key[...] = jnp.asarray(w_k.T[None], dtype)
        layer.value[...] = jnp.asarray(w_v.T[None], dtype)
        layer.out[...] = jnp.asarray(p.T[None], dtype)
    if w0 is not None:
        model.w0[...] = jnp.asarray(w0, dtype)
    return model


def _blocks(d: int, w0, x_value: float, x_out: float, y_out: float):
    """The column-convention (W_Q, W_K, W_V, P) shared by the GD and GD++ constructions."""
    w_kq = np.zeros((d + 1, d + 1))
    w_kq[:d, :d] = np.eye(d)
    w_v = np.zeros((d + 1, d + 1))
    w_v[:d, :d] = x_value * np.eye(d)
    w_v[d, :d] = 0.0 if w0 is None else np.asarray(w0, np.float64)
    w_v[d, d] = -1.0
    p = np.zeros((d + 1, d + 1))
    p[:d, :d] = x_out * np.eye(d)
    p[d, d] = y_out
    return w_kq, w_kq, w_v, p


def _check(d, n_ctx, layers):
    check_int("construction", 1, d=d, n_ctx=n_ctx, layers=layers)


def gd_model(d: int, n_ctx: int, lr: float, layers: int = 1, w0=None, dtype=None) -> ConstructedLSA:
    """An LSA model computing `layers` GD steps with rate lr (paper convention) from w0 [d]."""
    _check(d, n_ctx, layers)
    if w0 is not None and np.shape(w0) != (d,):
        raise ValueError(f"construction: w0 must have shape ({d},), got {np.shape(w0)}")
    blocks = _blocks(d, w0, x_value=0.0, x_out=0.0, y_out=lr / n_ctx)
    return _lsa_model(d, layers, *blocks, w0=w0, dtype=dtype)


def gd_plus_plus_model(
    d: int, n_ctx: int, lr: float, gamma: float, layers: int = 1, dtype=None
) -> ConstructedLSA:
    """An LSA model computing `layers` GD++ steps (see `solvers.gd_plus_plus`)."""
    _check(d, n_ctx, layers)
    blocks = _blocks(d, None, x_value=1.0, x_out=-gamma, y_out=lr / n_ctx)
    return _lsa_model(d, layers, *blocks, w0=None, dtype=dtype)
