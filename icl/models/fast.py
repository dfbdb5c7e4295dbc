"""Fast exact evaluation of any attention stack (softmax, mixed, LayerNorm, MLP, both layouts).

Shapes: B tasks, C context tokens, M queries, D token width, H heads, k key size, L layers.

The token path of `icl.models.lsa` (`AttentionLayer`) updates all C + M tokens in every layer,
through per-token q, k, v projections, and reads one number per query at the end. This module
computes the same read-outs (`fast_layer_predictions`, the "fast" path of
`LSATransformer.layer_predictions`, which "auto" takes for every stack that is not pure linear)
without the work that cannot affect them:

  * keys and values come from the context only, so the context tokens never depend on the
    queries: they are updated on their own (C tokens), the queries on their own (M tokens), and
    the separate layout keeps its context grouped (x_1..x_N, y_1..y_N: every layer sums over
    the context, its order does not matter) instead of interleaving it;
  * the last layer updates no context token, and when it has no MLP it computes only the queries'
    label slot (the read-out), through one number per context token, X (W_V W_O)[:, -1];
  * two plain last layers (no LayerNorm, MLP or clipping: figure 5's softmax + linear stack)
    never form the context after the last but one (`lazy_last_two`): the last layer reads it
    only through a few vectors per task, X' v = X v + sum_h P_h (X (B_h v));
  * q . k and the value-output map are formed once per layer and head, outside the batch, when
    that is cheaper (always at the paper's key size k = D): A_h = W_Q^h W_K^h^T and
    B_h = W_V^h W_O^h [D, D], so the logits are (e A_h) X^T and the update (P X) B_h
    (`merged_costs_less`);
  * per-task products run through `icl.models.products` (`bmm`, `bmm_nt`, `matmul`, `softmax`),
    whose backward passes avoid XLA:CPU's transposed-operand dots (3-4x slower than a
    materialised transpose and a plain product) and take softmax's one-pass form.

Not used, because slower on XLA:CPU: building the separate layout's first-layer products from
its pieces (f(x), y and the one-hot codes: fewer multiply-adds, but more, smaller ops), updating
context and queries as one array, a feature-major embedding MLP, XLA's unrolled threefry.

Everything is the same mathematics as the token path, reassociated; `tests/test_fast_paths.py`
checks values and parameter gradients against the token path in float64 for every family.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from icl.models.gelu_mlp import gelu_mlp, linear_weights
from icl.models.products import bmm, bmm_nt, matmul, softmax


# -- one layer ------------------------------------------------------------------------------------
def merged_costs_less(n_tokens: int, n_ctx: int, token_dim: int, key_size: int) -> tuple[bool, bool]:
    """(merge q.k into A = W_Q W_K^T, merge the values into B = W_V W_O): each when it takes no
    more multiply-adds per task and head than the separate projections.

    Logits: S D^2 (e A) vs S D k + C D k (q and k); the S C D vs S C k of the logits themselves.
    Values: S C D + S D^2 ((P X) B) vs C D k + S C k + S k D ((P (X W_V)) W_O)."""
    s, c, d, k = n_tokens, n_ctx, token_dim, key_size
    merge_qk = s * d * d + s * c * d <= s * d * k + c * d * k + s * c * k
    merge_vo = s * c * d + s * d * d <= c * d * k + s * c * k + s * k * d
    return merge_qk, merge_vo


def _weights(layer):
    return layer.query[...], layer.key[...], layer.value[...], layer.out[...]


def _scores(h_tok: jax.Array, h_ctx: jax.Array, wq: jax.Array, wk: jax.Array, merge_qk: bool, use_softmax: bool) -> jax.Array:
    """Attention weights of tokens [B, S, D] over the context [B, C, D] for one head: [B, S, C]."""
    if merge_qk:
        logits = bmm_nt(matmul(h_tok, wq @ wk.T), h_ctx)
    else:
        logits = bmm_nt(matmul(h_tok, wq), matmul(h_ctx, wk))
    if use_softmax:
        return softmax(logits / math.sqrt(wq.shape[-1]))
    return logits


def attention_update(layer, h_tok: jax.Array, h_ctx: jax.Array, scale: float = 1.0) -> jax.Array:
    """The attention update [B, S, D] of tokens h_tok [B, S, D] (normed) reading h_ctx [B, C, D]."""
    wq, wk, wv, wo = _weights(layer)
    n_heads, d, k = wq.shape
    merge_qk, merge_vo = merged_costs_less(h_tok.shape[1], h_ctx.shape[1], d, k)
    mixed, maps = [], []
    for h in range(n_heads):
        scores = _scores(h_tok, h_ctx, wq[h], wk[h], merge_qk, layer.softmax)
        if merge_vo:
            mixed.append(bmm(scores, h_ctx))  # [B, S, D]
            maps.append(wv[h] @ wo[h])  # [D, D]
        else:
            mixed.append(bmm(scores, matmul(h_ctx, wv[h])))  # [B, S, k]
            maps.append(wo[h])  # [k, D]
    mixed = mixed[0] if n_heads == 1 else jnp.concatenate(mixed, axis=-1)
    out = maps[0] if n_heads == 1 else jnp.concatenate(maps, axis=0)
    return matmul(mixed, out * scale if scale != 1.0 else out)


def attention_label_update(layer, h_tok: jax.Array, h_ctx: jax.Array, scale: float = 1.0) -> jax.Array:
    """The label slot of `attention_update` only: [B, S]. Each head's values enter through one
    number per context token, X (W_V^h W_O^h[:, -1])."""
    wq, wk, wv, wo = _weights(layer)
    n_heads, d, k = wq.shape
    merge_qk, _ = merged_costs_less(h_tok.shape[1], h_ctx.shape[1], d, k)
    label_maps = jnp.einsum("hdk,hk->dh", wv, wo[:, :, -1])  # [D, H]
    if scale != 1.0:
        label_maps = label_maps * scale
    values = matmul(h_ctx, label_maps)  # [B, C, H]
    total = None
    for h in range(n_heads):
        scores = _scores(h_tok, h_ctx, wq[h], wk[h], merge_qk, layer.softmax)  # [B, S, C]
        head = bmm(scores, values[..., h : h + 1])[..., 0]
        total = head if total is None else total + head
    return total


def _norm(layer, tokens):
    return layer.norm(tokens) if layer.norm is not None else tokens


def _finish(layer, tokens: jax.Array) -> jax.Array:
    """The MLP block and the clipping after the attention residual."""
    cfg = layer.config
    if cfg.mlp:
        h = layer.mlp_norm(tokens) if layer.mlp_norm is not None else tokens
        tokens = tokens + gelu_mlp(h, *linear_weights(layer.mlp_in), *linear_weights(layer.mlp_out))
    if cfg.clip_activations > 0:
        tokens = jnp.clip(tokens, -cfg.clip_activations, cfg.clip_activations)
    return tokens


def _scale(layer, n_ctx: int) -> float:
    return 1.0 / n_ctx if layer.config.frozen_gd_lr > 0 else 1.0


# -- the last two layers, without the context tokens after the last but one ------------------------
def lazy_last_two(layer_a, layer_b, ctx: jax.Array, queries: jax.Array, scale_a: float = 1.0, scale_b: float = 1.0):
    """The queries after layer_a [B, M, D] and the label slot after layer_b [B, M], for two plain
    attention layers (no LayerNorm, MLP or clipping), without forming the context after layer_a.

    layer_b reads the context X' = X + sum_h P_h X B_h (layer_a's update, P_h its attention
    weights [C, C], B_h = W_V^h W_O^h) only through X' v for a few vectors v per task: v = the
    queries' q A_j (its logits) and the label columns of its value maps. Each is
    X' v = X v + sum_h P_h (X (B_h v)), matrix-vector products instead of the [C, D] matrices
    P_h X and (P_h X) B_h, and their backward passes."""
    wq, wk, wv, wo = _weights(layer_a)
    n_heads_a, d, k_a = wq.shape
    n_ctx = ctx.shape[1]
    queries = queries + attention_update(layer_a, queries, ctx, scale_a)
    merge_a = merged_costs_less(n_ctx, n_ctx, d, k_a)[0]
    weights = [_scores(ctx, ctx, wq[h], wk[h], merge_a, layer_a.softmax) for h in range(n_heads_a)]  # [B, C, C]
    maps = [(wv[h] @ wo[h]) * scale_a for h in range(n_heads_a)]  # B_h [D, D]

    wq2, wk2, wv2, wo2 = _weights(layer_b)
    n_heads_b, _, k_b = wq2.shape
    merge_b = merged_costs_less(queries.shape[1], n_ctx, d, k_b)[0]
    label = jnp.einsum("hdk,hk->dh", wv2, wo2[:, :, -1]) * scale_b  # [D, Hb]: the label columns
    values = matmul(ctx, label)  # [B, C, Hb]: X v for the (shared) label vectors
    for p_h, b_h in zip(weights, maps, strict=True):
        values = values + bmm(p_h, matmul(ctx, b_h @ label))  # + P_h X B_h v
    slot = queries[..., -1]
    for j in range(n_heads_b):  # one product per head and per kind of row: single rows are XLA's fast case
        row = matmul(queries, wq2[j] @ wk2[j].T) if merge_b else matmul(matmul(queries, wq2[j]), wk2[j].T)  # q A_j
        logits = bmm_nt(row, ctx)  # [B, M, C]: (X v)^T
        for p_h, b_h in zip(weights, maps, strict=True):
            logits = logits + bmm_nt(bmm_nt(matmul(row, b_h.T), ctx), p_h)  # + (P_h X B_h v)^T
        scores = softmax(logits / math.sqrt(k_b)) if layer_b.softmax else logits
        slot = slot + bmm(scores, values[..., j : j + 1])[..., 0]
    return queries, slot


def lazy_applies(config, n_layers: int) -> bool:
    """`lazy_last_two` runs the last two layers: plain attention layers (no LayerNorm, MLP, clip)."""
    return n_layers >= 2 and not (config.layernorm or config.mlp or config.clip_activations > 0)


def fast_embed(model):
    """`model.embed` through `gelu_mlp` (the same numbers, in row blocks)."""
    if not model.config.embed_dim:
        return model.embed
    weights = (*linear_weights(model.embed_in), *linear_weights(model.embed_out))
    return lambda x: gelu_mlp(x, *weights)


# -- the stack ------------------------------------------------------------------------------------
def fast_layer_predictions(model, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array, n_layers: int) -> jax.Array:
    """The read-outs [L, B, M] of `model.layer_predictions(..., path="tokens")`, computed as the
    module docstring says. Inputs already checked: x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d].

    The context tokens are kept grouped by kind (separate layout: x_1..x_N, y_1..y_N) instead of
    interleaved: every layer sums over the context, so its order does not matter."""
    cfg = model.config
    *ctx_parts, queries = model.token_parts(x_ctx, y_ctx, x_query, embed=fast_embed(model))
    ctx = ctx_parts[0] if len(ctx_parts) == 1 else jnp.concatenate(ctx_parts, axis=1)
    n_ctx = ctx.shape[1]
    layer_of = lambda i: model.layers[0 if cfg.shared else i]
    lazy = lazy_applies(cfg, n_layers)
    preds = []
    n_full = n_layers - (2 if lazy else 1)  # the layers that update the context
    for i in range(n_full):
        layer = layer_of(i)
        scale = _scale(layer, n_ctx)
        h_ctx, h_q = _norm(layer, ctx), _norm(layer, queries)
        queries, ctx = (
            _finish(layer, queries + attention_update(layer, h_q, h_ctx, scale)),
            _finish(layer, ctx + attention_update(layer, h_ctx, h_ctx, scale)),
        )
        preds.append(-queries[..., -1])
    layer = layer_of(n_layers - 1)
    scale = _scale(layer, n_ctx)
    if lazy:
        queries, slot = lazy_last_two(layer_of(n_layers - 2), layer, ctx, queries, _scale(layer_of(n_layers - 2), n_ctx), scale)
        preds.append(-queries[..., -1])
    elif cfg.mlp:  # the queries' full update, then the MLP
        h_ctx, h_q = _norm(layer, ctx), _norm(layer, queries)
        slot = _finish(layer, queries + attention_update(layer, h_q, h_ctx, scale))[..., -1]
    else:  # only the read-out of the last layer is needed
        h_ctx, h_q = _norm(layer, ctx), _norm(layer, queries)
        slot = queries[..., -1] + attention_label_update(layer, h_q, h_ctx, scale)
        if cfg.clip_activations > 0:
            slot = jnp.clip(slot, -cfg.clip_activations, cfg.clip_activations)
    preds.append(-slot)
    return jnp.stack(preds)
