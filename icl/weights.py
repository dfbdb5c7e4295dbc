"""LSA weights in product space: read them, align them, edit them.

A 1-head linear attention layer's function depends on its weights only through the products
A = W_q W_k^T and B = W_v W_o (row convention): update_j = sum_i (e_j A e_i^T) e_i B, so (cA, B/c)
is the same layer for any c != 0 (the "gauge"). `layer_products` reads (A, B), `preconditioner`
the parts of A and B that act on a query [x_q, 0] (the Gamma of one preconditioned GD step),
`gauge` the c that aligns one layer with another, and `interpolate` builds the model halfway (or
any t) between two stacks in this space (von Oswald et al. 2023, Sec. 3). numpy, float64, host.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def layer_products(layer) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of a 1-head linear attention layer, the only products its function depends on:
    update_j = sum_i (e_j A e_i^T) e_i B with A = W_q W_k^T, B = W_v W_o (row convention), so
    (cA, B/c) is the same layer for any c != 0."""
    q, k, v, o = (np.asarray(p[...], np.float64) for p in (layer.query, layer.key, layer.value, layer.out))
    if q.shape[0] != 1:
        raise ValueError(f"layer_products needs a 1-head layer, got {q.shape[0]} heads")
    return q[0] @ k[0].T, v[0] @ o[0]


def preconditioner(layer, d: int) -> dict[str, np.ndarray]:
    """The parts of a linear attention layer acting on a query [x_q, 0] (summed over heads).

    With A_h = W_q^h (W_k^h)^T, B_h = W_v^h W_o^h (row convention), C = sum_i [x_i, y_i]^T [x_i, y_i]
    and read-out minus the label slot, the layer predicts
        y_hat = x_q^T Gamma X^T y  -  x_q^T A_xx X^T X b_x  -  (x_q . a_xy) y^T y b_y,
        Gamma = -sum_h (b_y^h A_xx^h + a_xy^h (b_x^h)^T),
    where A_xx = A[:d, :d], a_xy = A[:d, d], b_x = B[:d, d], b_y = B[d, d]. Gamma is the
    preconditioner of one GD step (`solvers.preconditioned_gd`, no 1/N): every term linear in
    X^T y. The other two terms are 0 for the GD construction (and at the optimum of Gaussian
    tasks, Ahn et al. 2023).
    Returns {"gamma" [d, d], "a_xx" [H, d, d], "a_xy" [H, d], "b_x" [H, d], "b_y" [H]}.
    """
    q, k, v, o = (np.asarray(p[...], np.float64) for p in (layer.query, layer.key, layer.value, layer.out))
    if q.shape[1] != d + 1:
        raise ValueError(f"preconditioner: the layer's tokens have size {q.shape[1]}, expected d + 1 = {d + 1} (paired, no embedding)")
    a = np.einsum("hdk,hek->hde", q, k)  # [H, D, D]
    b = np.einsum("hdk,hke->hde", v, o)  # [H, D, D]
    parts = {"a_xx": a[:, :d, :d], "a_xy": a[:, :d, d], "b_x": b[:, :d, d], "b_y": b[:, d, d]}
    gamma = -np.einsum("h,hde->de", parts["b_y"], parts["a_xx"]) - np.einsum("hd,he->de", parts["a_xy"], parts["b_x"])
    return {"gamma": gamma, **parts}


def gauge(a: np.ndarray, a_target: np.ndarray) -> float:
    """The c of the gauge (A, B) -> (cA, B/c) that brings A closest to a_target in Frobenius norm:
    c = <A, A*> / <A, A> (1 for A = 0)."""
    return float(np.sum(a * a_target) / np.sum(a * a)) if np.any(a) else 1.0


def interpolate(model, target, t: float = 0.5):
    """An LSA model whose every layer is `(1 - t) * model + t * target` in product space (A, B),
    after rescaling model's (A, B) -> (cA, B/c) with c the least-squares fit of cA to target's A
    (the alignment of W_K^T W_Q and P W_V in von Oswald et al. 2023, Sec. 3).

    Both models must be 1-head linear LSA stacks of equal depth over the same d (e.g. a trained
    model and `constructions.gd_model`). The result uses key size D with W_k = W_o = I.
    """
    from flax import nnx

    from icl.models import LSATransformer, ModelConfig

    if model.config.attention != "linear" or target.config.attention != "linear":
        raise ValueError("interpolate: both models must use linear attention")
    if model.config.n_layers != target.config.n_layers or model.d != target.d:
        raise ValueError("interpolate: models must have the same depth and input dimension")
    n_layers = model.config.n_layers
    token_dim = model.config.token_dim(model.d)
    config = ModelConfig(n_layers=n_layers, key_size=token_dim, attention="linear")
    mid = LSATransformer(config, model.d, rngs=nnx.Rngs(0))
    dtype = model.layers[0].query[...].dtype
    eye = np.eye(token_dim)[None]
    for i in range(n_layers):
        a, b = layer_products(model.layers[0 if model.config.shared else i])
        a_t, b_t = layer_products(target.layers[0 if target.config.shared else i])
        c = gauge(a, a_t)
        layer = mid.layers[i]
        layer.query[...] = jnp.asarray(((1 - t) * c * a + t * a_t)[None], dtype)
        layer.key[...] = jnp.asarray(eye, dtype)
        layer.value[...] = jnp.asarray(((1 - t) * b / c + t * b_t)[None], dtype)
        layer.out[...] = jnp.asarray(eye, dtype)
    mid.w0[...] = jnp.asarray(np.asarray(target.w0[...]) * t + np.asarray(model.w0[...]) * (1 - t), dtype)
    return mid
