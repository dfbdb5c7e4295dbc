"""Gram-space evaluation of pure linear-attention stacks: O(N D^2 + L D^3) per task.

Without LayerNorm, MLP, activation clipping or softmax, a linear attention layer maps **every**
token by the same matrix. In the row convention of `icl.models.lsa` (q = e W_q, ...), with the
context Gram matrix C = sum_{i<=N} e_i^T e_i [D, D], A_h = W_q^h (W_k^h)^T and B_h = W_v^h W_o^h,

    e_j <- e_j + sum_h e_j A_h C B_h = e_j (I + sum_h A_h C B_h) = e_j M,

so after the layer the context Gram matrix is M^T C M. L layers therefore need C once
(O(N D^2)) and then only D x D products per layer, instead of O(N D^2) per layer in token space:
a fast path for long contexts. `tests/test_gram.py` checks it equals the token-space model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def supports_gram(config) -> bool:
    """True when every layer is a pure linear attention map (the Gram recursion is exact)."""
    return (
        config.attention == "linear"
        and not config.layernorm
        and not config.mlp
        and config.clip_activations == 0
        and config.token_layout == "paired"
        and not config.first_layer_softmax
        and config.frozen_gd_lr == 0
    )


def _products(layer) -> tuple[jax.Array, jax.Array]:
    """A_h = W_q^h (W_k^h)^T and B_h = W_v^h W_o^h: [H, D, D] each."""
    a = jnp.einsum("hdk,hek->hde", layer.query[...], layer.key[...])
    b = jnp.einsum("hdk,hke->hde", layer.value[...], layer.out[...])
    return a, b


def layer_maps(layer, gram: jax.Array) -> jax.Array:
    """M = I + sum_h A_h C B_h for every task: [B, D, D] from C [B, D, D]."""
    a, b = _products(layer)
    eye = jnp.eye(gram.shape[-1], dtype=gram.dtype)[None]  # [1, D, D]
    return eye + jnp.einsum("hde,bef,hfg->bdg", a, gram, b)


def gram_layer_predictions(model, x_ctx, y_ctx, x_query, n_layers: int | None = None) -> jax.Array:
    """The same [L, B, M] read-outs as `model.layer_predictions`, computed in Gram space.

    The last layer only moves the queries, `q <- q + sum_h ((q A_h) C) B_h` (O(M D^2)), so a
    one-layer model never forms M.
    """
    if not supports_gram(model.config):
        raise ValueError("gram_layer_predictions needs linear attention without LayerNorm, MLP or clipping")
    n_ctx = x_ctx.shape[1]
    n_layers = model.config.n_layers if n_layers is None else n_layers
    tokens = model.tokens(x_ctx, y_ctx, x_query)  # [B, T, D]
    ctx, queries = tokens[:, :n_ctx], tokens[:, n_ctx:]
    gram = jnp.einsum("bnd,bne->bde", ctx, ctx)  # [B, D, D]
    preds = []
    for i in range(n_layers):
        layer = model.layers[0 if model.config.shared else i]
        if i + 1 < n_layers:
            m = layer_maps(layer, gram)  # [B, D, D]
            queries = queries @ m  # [B, M, D]
            gram = jnp.swapaxes(m, 1, 2) @ gram @ m
        else:
            a, b = _products(layer)
            qa = jnp.einsum("bmd,hde->bhme", queries, a)  # [B, H, M, D]
            queries = queries + jnp.einsum("bhme,bef,hfg->bmg", qa, gram, b)
        preds.append(-queries[..., -1])
    return jnp.stack(preds)
