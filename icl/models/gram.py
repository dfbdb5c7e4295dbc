"""Fast exact evaluation of pure linear-attention stacks: a token form, a Gram (map) form and, for
one or two unclipped layers, a vector form.

Shapes: B tasks, N context tokens, M queries, T = N + M, D token width, H heads, L layers.

Without LayerNorm, MLP or softmax, a linear attention layer maps **every**
token by the same matrix. In the row convention of `icl.models.lsa` (q = e W_q, ...), with the
context Gram matrix C = sum_{i<=N} e_i^T e_i [D, D], A_h = W_q^h (W_k^h)^T and B_h = W_v^h W_o^h
(both formed once per layer, outside the batch),

    e_j <- e_j + sum_h ((e_j A_h) C) B_h = e_j (I + sum_h A_h C B_h) = e_j M.

Exact ways to run L such layers (`METHODS`, and `VECTORS`):

  "tokens"  keep the T tokens and apply the line above through the kernel K_h = (E A_h) X^T
            [T, N] (X = E_ctx): E <- E + sum_h (K_h X) B_h. O(L T D (N + D) H) per task.
  "maps"    keep only C: after a layer it is M^T C M, so C is formed once (O(N D^2)) and each
            further layer costs O(D^3 H) (M, then M^T C M), independent of N: better when
            N >> D (long contexts). The last layer moves the queries only, q <- q + sum_h
            ((q A_h) C) B_h, so no M is formed there.
  "vectors" (L <= 2, no clipping) C of the input context only; the two-layer read-out
            q1[-1] + sum_j (q1 A_j) M1^T C M1 b_j (q1 = q M1, b_j the last column of the second
            layer's B_j) is evaluated right to left as row vectors times C, so no per-task
            D x D matrix is ever multiplied by another, and C, a function of the data alone
            (without an embedding), needs no gradient. "auto" takes it for every two-layer
            unclipped stack, where it runs faster than "tokens".

In all, the last layer computes only the read-out (label) slot of the queries, with the last
column of each B_h. The per-task products of the layers that move every token, and of
"vectors", are `icl.models.products`' `bmm` / `bmm_nt` / `matmul`, whose backward passes avoid
XLA:CPU's slow transposed-operand dots; the one-row products of the last layer stay plain
einsums (their backward passes are outer products, which XLA:CPU runs at least as fast as the
custom ones).

Activation clipping (`clip_activations`, the official recipe for deep stacks) clips every token
after each layer; the token form applies it as it goes (the map form cannot, so a clipped stack
always takes "tokens", which still avoids `AttentionLayer`'s per-token q, k, v projections).

"auto" (`choose_method`, for other than two unclipped layers) takes the method with fewer
multiply-adds: "tokens" for deep stacks when (N + M)(N + D) <= 2 D^2, and for one layer when
2 M <= D (K then costs O(M N D), less than forming C). `tests/test_gram.py` checks "tokens" and
"maps", `tests/test_fast_paths.py` "vectors", against the token-space model in float64.

Why "tokens" at the paper's size: the step is bound by memory traffic, not arithmetic, and the
kernel form moves fewer bytes than forming C; with one head the head axis is dropped (its layout
changes cost 20-30% more bytes). Not used, because slower on XLA:CPU: forming C per layer
(E <- E + ((E A) C) B), `AttentionLayer`'s q/k/v form, splitting the batch into chunks with
lax.map, replacing the batched 11 x 11 dots by unrolled broadcast-multiply-adds (or by a
feature-major, batch-minor layout of them) and "vectors" for one layer.
`benchmarks/bench_depth_paths.py` times the forms side by side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl.models.fast import fast_embed
from icl.models.products import bmm, bmm_nt, gram_matrix, matmul

METHODS = ("tokens", "maps")


def supports_gram(config) -> bool:
    """True when every layer is a pure linear attention map (both fast forms are exact)."""
    return (
        config.attention == "linear"
        and not config.layernorm
        and not config.mlp
        and config.token_layout == "paired"
        and not config.first_layer_softmax
    )


def choose_method(n_ctx: int, n_query: int, token_dim: int, n_layers: int) -> str:
    """The "auto" rule: the method with fewer forward multiply-adds per task and head.

    Token form: 2 S D (N + D) per layer that moves S tokens (E A, K = (E A) X^T, K X, then B);
    S = T = N + M for all layers but the last, S = M for the last. Map form: N D^2 once (C),
    then about 4 D^3 per layer but the last (A C, (A C) B, C M, M^T (C M)) and 2 M D^2 for the
    last ((q A) C, then B). Hence:
      one layer:   "tokens" when 2 M <= D (no C at all), else "maps";
      deeper:      "tokens" when T (N + D) <= 2 D^2 (the middle layers dominate), else "maps".
    The backward pass scales both by about 2. At the paper's size (N = 10, M = 1, D = 11) every
    depth takes "tokens"; from N = 11 on, deeper stacks take "maps". The measured crossover:
    `benchmarks/bench_depth_paths.py`.
    """
    if n_layers == 1:
        return "tokens" if 2 * n_query <= token_dim else "maps"
    return "tokens" if (n_ctx + n_query) * (n_ctx + token_dim) <= 2 * token_dim**2 else "maps"


def products(query: jax.Array, key: jax.Array, value: jax.Array, out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A_h = W_q^h (W_k^h)^T and B_h = W_v^h W_o^h: [H, D, D] each, from [H, D, k] / [H, k, D] weights."""
    a = jnp.einsum("hdk,hek->hde", query, key)
    b = jnp.einsum("hdk,hke->hde", value, out)
    return a, b


def _products(layer) -> tuple[jax.Array, jax.Array]:
    return products(layer.query[...], layer.key[...], layer.value[...], layer.out[...])


def _maps(a: jax.Array, b: jax.Array, gram: jax.Array) -> jax.Array:
    """M = I + sum_h A_h C B_h for every task: [B, D, D] from C [B, D, D]."""
    eye = jnp.eye(gram.shape[-1], dtype=gram.dtype)[None]  # [1, D, D]
    return eye + jnp.einsum("hde,bef,hfg->bdg", a, gram, b)


def _context_gram(ctx: jax.Array) -> jax.Array:
    return gram_matrix(ctx)  # [B, D, D]: X^T X


def _label_update(tokens: jax.Array, a: jax.Array, gram: jax.Array, b: jax.Array) -> jax.Array:
    """The label slot of the update sum_h ((e A_h) C) B_h of every token: [B, S, D] -> [B, S].

    Only the read-out slot of the last layer is ever used, so only B_h's last column is applied
    (exactly the same numbers as the full update's last slot)."""
    ta = jnp.einsum("bsd,hde->bhse", tokens, a)  # [B, H, S, D]
    return jnp.einsum("bhse,bef,hf->bs", ta, gram, b[..., -1])


def _token_label_update(tokens: jax.Array, ctx: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """The label slot of `_token_update` only: sum_h ((e A_h) X^T) X B_h[:, -1], [B, S, D] -> [B, S].

    Reading the slot off the full [B, S, D] update instead gives the same numbers, but its
    gradient with respect to the queries (a one-hot cotangent times B_h) crashes XLA's TPU
    compiler in float32 from batch 128 on (a broadcast rewritten into invalid HLO; `icl aot`
    reproduces it), and it costs D times the multiply-adds of this last step."""
    if a.shape[0] == 1:
        kernel = jnp.einsum("bse,bne->bsn", tokens @ a[0], ctx)  # [B, S, N]
        return (kernel @ ctx) @ b[0, :, -1]
    kernel = jnp.einsum("bsd,hde,bne->bhsn", tokens, a, ctx)  # [B, H, S, N]
    return jnp.einsum("bhsn,bnd,hd->bs", kernel, ctx, b[..., -1])


def _token_update(tokens: jax.Array, ctx: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """sum_h ((e A_h) X^T) X B_h for every token e: [B, S, D], X = ctx [B, N, D] -> [B, S, D].

    The same as `_update` with C = X^T X, but through the kernel K_h = (E A_h) X^T [S, N], which
    XLA:CPU runs with less memory traffic than forming C. Heads are looped over (no head axis:
    its layout changes cost ~20% more bytes), their K_h X concatenated into one product with the
    stacked B_h. The per-task products are `icl.models.products`' `bmm` / `bmm_nt`, whose backward
    passes avoid XLA:CPU's slow transposed-operand batched dots.
    """
    mixed = [bmm(bmm_nt(matmul(tokens, a[h]), ctx), ctx) for h in range(a.shape[0])]  # K_h X [B, S, D]
    if a.shape[0] == 1:
        return matmul(mixed[0], b[0])
    return matmul(jnp.concatenate(mixed, axis=-1), b.reshape(-1, b.shape[-1]))


def _through(rows: jax.Array, gram: jax.Array, first, second) -> jax.Array:
    """rows (I + sum_h F_h C S_h) for row vectors [B, R, D]: F, S = (A, B) applies a layer's map M,
    F, S = (B^T, A^T) its transpose M^T. Each head costs one per-task product of R rows with C."""
    out = rows
    for f, g in zip(first, second, strict=True):
        out = out + matmul(bmm(matmul(rows, f), gram), g)
    return out


def _vector_stack(weights, ctx: jax.Array, queries: jax.Array) -> jax.Array:
    """The "vectors" method of one or two unclipped layers: [L, B, M].

    With C = X^T X of the input context, the first layer's map M1 = I + sum_h A_h C B_h and
    b = the last column of the second layer's B_j, the read-outs are
        q1 = q M1,     slot = q1[-1] + sum_j (q1 A_j) M1^T C M1 b_j,
    so everything per task is a row vector times C: q A_h C, b_j^T M1^T C and (q1 A_j) M1^T, never
    a D x D product of two per-task matrices. C is formed once and, when the context is data
    (no embedding), needs no gradient: the backward pass is row vectors times C again."""
    gram = gram_matrix(ctx)  # [B, D, D], symmetric
    a1, b1 = weights[0]
    heads1 = range(a1.shape[0])
    if len(weights) == 1:
        label = b1[:, :, -1]  # [H, D]
        update = sum(bmm(matmul(queries, a1[h]), gram) @ label[h] for h in heads1)  # [B, M]
        return jnp.stack([-(queries[..., -1] + update)])
    a2, b2 = weights[1]
    forward = ([a1[h] for h in heads1], [b1[h] for h in heads1])  # M1
    backward = ([b1[h].T for h in heads1], [a1[h].T for h in heads1])  # M1^T
    q1 = _through(queries, gram, *forward)
    label = jnp.broadcast_to(b2[:, :, -1][None], (ctx.shape[0], b2.shape[0], b2.shape[1]))  # [B, Hb, D]
    seen = bmm(_through(label, gram, *backward), gram)  # (C M1 b_j)^T  [B, Hb, D]
    slot = q1[..., -1]
    for j in range(a2.shape[0]):
        rows = _through(matmul(q1, a2[j]), gram, *backward)  # (q1 A_j) M1^T  [B, M, D]
        slot = slot + (rows * seen[:, j : j + 1]).sum(-1)
    return jnp.stack([-q1[..., -1], -slot])


VECTORS = "vectors"  # the method of `_vector_stack`: one or two unclipped layers


def stack_predictions(weights, ctx: jax.Array, queries: jax.Array, method: str = "auto", clip: float = 0.0) -> jax.Array:
    """Minus the query label slot after each of the layers `weights` = [(A [H, D, D], B [H, D, D]), ...].

    ctx [B, N, D] and queries [B, M, D] are the input tokens; returns [L, B, M]. `method` is
    "tokens", "maps" or "auto" (`choose_method`); all give the same numbers up to rounding.
    `clip` > 0 clips every token coordinate to [-clip, clip] after each layer (the model's
    `clip_activations`); a clipped stack is no longer one linear map per layer, so only "tokens"
    runs it (and "auto" picks it).
    """
    if method == "auto":
        if clip == 0 and len(weights) == 2:
            method = VECTORS
        else:
            method = "tokens" if clip > 0 else choose_method(ctx.shape[1], queries.shape[1], ctx.shape[2], len(weights))
    if method == VECTORS:
        if clip > 0 or len(weights) > 2:
            raise ValueError(f"gram: method {VECTORS!r} runs one or two unclipped layers")
        return _vector_stack(weights, ctx, queries)
    if method not in METHODS:
        raise ValueError(f"gram: method must be 'auto' or one of {METHODS}, got {method!r}")
    if clip > 0 and method != "tokens":
        raise ValueError(f"gram: activation clipping needs method 'tokens', got {method!r}")
    clipped = (lambda e: jnp.clip(e, -clip, clip)) if clip > 0 else (lambda e: e)
    preds = []
    if method == "tokens":
        n_ctx = ctx.shape[1]
        tokens = jnp.concatenate([ctx, queries], axis=1)  # [B, T, D]
        for i, (a, b) in enumerate(weights):
            ctx = tokens[:, :n_ctx]
            if i + 1 < len(weights):
                tokens = clipped(tokens + _token_update(tokens, ctx, a, b))
                queries = tokens[:, n_ctx:]
                preds.append(-queries[..., -1])
            else:  # the last layer moves the queries only, and only their label slot is read
                preds.append(-clipped(queries[..., -1] + _token_label_update(queries, ctx, a, b)))
        return jnp.stack(preds)
    gram = _context_gram(ctx)
    for i, (a, b) in enumerate(weights):
        if i + 1 < len(weights):
            m = _maps(a, b, gram)  # [B, D, D]
            queries = queries @ m  # [B, M, D]
            gram = jnp.swapaxes(m, 1, 2) @ gram @ m
            preds.append(-queries[..., -1])
        else:
            preds.append(-(queries[..., -1] + _label_update(queries, a, gram, b)))
    return jnp.stack(preds)


def gram_layer_predictions(model, x_ctx, y_ctx, x_query, n_layers: int | None = None, method: str = "auto") -> jax.Array:
    """The same [L, B, M] read-outs as `model.layer_predictions`, by `stack_predictions`."""
    if not supports_gram(model.config):
        raise ValueError("gram_layer_predictions needs linear attention without LayerNorm or MLP")
    n_ctx = x_ctx.shape[1]
    n_layers = model.config.n_layers if n_layers is None else n_layers
    ctx, queries = model.token_parts(x_ctx, y_ctx, x_query, embed=fast_embed(model))  # [B, N, D], [B, M, D]
    weights = [_products(model.layers[0 if model.config.shared else i]) for i in range(n_layers)]
    if model.config.frozen_gd_lr > 0:  # the frozen GD construction divides its update by N
        weights = [(a, b / n_ctx) for a, b in weights]
    return stack_predictions(weights, ctx, queries, method, model.config.clip_activations)
