"""Transformers of linear self-attention (LSA) layers (von Oswald et al. 2023, Sec. 2), in Flax NNX.

Shapes: B tasks, N context examples, M query tokens, C context tokens (N, or 2N for the
"separate" layout), T = C + M, F feature width (d, or embed_dim), D token width, H heads, k key
(= value) size, L layers, P = n_positions.

Tokens: context `e_i = [x_i, y_i]`, query `e_q = [x_q, -w0 . x_q]` (w0 = 0 unless a construction
sets it, so the query is `[x_q, 0]`). Keys and values come from the N context tokens only: the query
never attends to itself nor to other queries. One layer updates every token,

    e_j <- e_j + sum_h W_O^h sum_{i<=N} (W_V^h e_i) (W_K^h e_i)^T (W_Q^h e_j)        (linear)
    e_j <- e_j + sum_h W_O^h sum_{i<=N} softmax_i(q_j . k_i / sqrt(k)) W_V^h e_i      (softmax)
    e_j <- e_j + sum_h W_O^h sum_{i<=N} h(q_j . k_i) W_V^h e_i                        (relu, exp)

with **no** normalisation for "relu" (h(s) = max(s, 0)) and "exp" (h(s) = e^s, no 1/sqrt(k) and no
division by the row sum): the unnormalised kernel attention of Cheng, Chen & Sra (ICML 2024), one
layer of which is one step of functional gradient descent in the RKHS of K(x, x') = h(x^T A x')
(`icl.analysis.kernel_attention`). A masked (invisible) context entry contributes 0, as in the linear
path (h is applied first, then the mask: exp(0) = 1 would otherwise leak).

with **no** 1/N factor (the paper's convention: the constructions fold eta/N into W_O). The model's
prediction is **minus** the last coordinate of the query token after the last layer.

Linear attention is computed as `(sum_i v_i k_i^T) q_j`, the context outer-product sum formed
once per layer and head, O((N + M) k^2) per task instead of O((N + M) N k).

`AttentionLayer` updates every token: the reference ("tokens" path of `layer_predictions`).
Training and evaluation take the same numbers by faster exact routes ("auto"): pure linear
stacks by `icl.models.gram`, linear / softmax stacks by `icl.models.fast` (no work on what cannot reach
the read-out, merged per-layer maps, backward passes without transposed-operand dots);
`tests/test_fast_paths.py` holds them equal to the reference in float64, gradients included.
Stacks with "relu" or "exp" attention have no fast route: "auto" runs them on the token path.

Token layouts (`ModelConfig.token_layout`):
  "paired"   (default, the paper's constructed tokens) `[f(x_i), y_i]`, D = F + 1.
  "separate" (the paper's "classic" tokens, Sec. 4) x_i and y_i in tokens of their own, in the
             order x_1, y_1, ..., x_N, y_N, then the queries; D = F + P + 3 + 1:
               x_i:   [f(x_i), onehot_P(i), 1, 0, 0, 0]
               y_i:   [0,      onehot_P(i), 0, 1, 0, y_i]
               query: [f(x_q), 0,           0, 0, 1, -w0 . f(x_q)]
             i.e. a fixed positional code (the pair index i, N <= P) and three type flags
             (input, label, query). Keys and values still come from the 2N context tokens only,
             so no query sees its own label or another query. A first softmax layer
             (`first_layer_softmax`) can learn to copy y_i into x_i's last slot, after which a
             linear layer can do GD on the x tokens (the y tokens' feature block is 0).

Frozen GD attention (`ModelConfig.frozen_gd_lr > 0`): every attention layer is fixed to the GD
construction (`constructions.gd_model`) on the features f(x) with rate frozen_gd_lr, stored as
`Frozen` variables so training (which updates `nnx.Param` only) leaves it alone; with an
embedding this trains only the embedding: "GD on learned features" (paper Sec. 4).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from icl.models.fast import fast_layer_predictions
from icl.models.gram import gram_layer_predictions, supports_gram
from icl.models.registry import register
from icl.tasks.base import Batch, check_inputs, check_positive_int

PATHS = ("auto", "tokens", "gram", "fast")  # `LSATransformer.layer_predictions(path=...)`
KERNEL_ATTENTIONS = {"relu": jax.nn.relu, "exp": jnp.exp}  # unnormalised h(q . k) (module docstring)
ATTENTIONS = ("linear", "softmax", *KERNEL_ATTENTIONS)


class Frozen(nnx.Variable):
    """A model variable that training never updates (e.g. a construction's w0)."""


@register("lsa")
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of an LSA transformer (model family "lsa", `icl.models.registry`).

    Attributes:
      n_layers: L, the number of attention layers applied.
      shared: one set of layer weights applied L times (a recurrent / looped transformer).
      n_heads: H attention heads per layer.
      key_size: k, the key, query and value size per head; 0 means the token width D.
      attention: "linear" (LSA), "softmax", or an unnormalised kernel attention "relu" / "exp"
        (h(q . k) with no normalisation; `KERNEL_ATTENTIONS`, see the module docstring).
      layernorm: pre-LayerNorm before attention (and before the MLP).
      mlp: add a residual MLP block (width mlp_width * D, GELU) after each attention block.
      mlp_width: width factor of that MLP.
      embed_dim: 0 for raw tokens [x, y]; > 0 embeds x by a 2-layer MLP (hidden embed_hidden,
        GELU) into embed_dim features before tokenising (the paper's non-linear setup).
      embed_hidden: hidden width of the embedding MLP.
      init_scale: weights ~ VarianceScaling(init_scale, fan_in, truncated normal), as the official
        code (0.002 there).
      clip_activations: clip every token coordinate to [-c, c] after each layer (0 = off; the
        official code uses 10 for deep models).
      token_layout: "paired" ([x_i, y_i] tokens) or "separate" (x_i and y_i in their own tokens,
        with a positional code; see the module docstring).
      n_positions: P, width of the one-hot pair-index code of the "separate" layout (N <= P).
      first_layer_softmax: the first layer uses softmax attention, the others `attention`.
      frozen_gd_lr: 0 = attention trained; > 0 = every attention layer is fixed (not trained) to
        one GD step with this rate (paper convention, lr not lr/N) on the features; needs
        attention="linear", 1 head, key_size 0, no layernorm or MLP, the paired layout.
    """

    n_layers: int = 1
    shared: bool = False
    n_heads: int = 1
    key_size: int = 0
    attention: str = "linear"
    layernorm: bool = False
    mlp: bool = False
    mlp_width: int = 4
    embed_dim: int = 0
    embed_hidden: int = 100
    init_scale: float = 0.002
    clip_activations: float = 0.0
    token_layout: str = "paired"
    n_positions: int = 32
    first_layer_softmax: bool = False
    frozen_gd_lr: float = 0.0

    def __post_init__(self):
        check_positive_int("model", **{n: getattr(self, n) for n in ("n_layers", "n_heads", "mlp_width", "embed_hidden", "n_positions")})
        for name in ("key_size", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"model: {name} must be an integer >= 0, got {value!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"model: attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if not self.init_scale > 0:
            raise ValueError(f"model: init_scale must be > 0, got {self.init_scale!r}")
        if not self.clip_activations >= 0:
            raise ValueError(f"model: clip_activations must be >= 0, got {self.clip_activations!r}")
        if self.token_layout not in ("paired", "separate"):
            raise ValueError(f"model: token_layout must be 'paired' or 'separate', got {self.token_layout!r}")
        if self.first_layer_softmax and self.shared:
            raise ValueError("model: first_layer_softmax needs unshared layers (shared=False)")
        if not self.frozen_gd_lr >= 0:
            raise ValueError(f"model: frozen_gd_lr must be >= 0, got {self.frozen_gd_lr!r}")
        if self.frozen_gd_lr > 0:
            problems = [
                text for bad, text in (
                    (self.attention != "linear" or self.first_layer_softmax, "linear attention"),
                    (self.n_heads != 1, "n_heads=1"),
                    (self.key_size != 0, "key_size=0 (the token width)"),
                    (self.layernorm or self.mlp, "no layernorm or mlp"),
                    (self.token_layout != "paired", "token_layout='paired'"),
                ) if bad
            ]
            if problems:
                raise ValueError(f"model: frozen_gd_lr (the GD construction) needs {', '.join(problems)}")

    def build(self, d: int, key: jax.Array | int = 0) -> LSATransformer:
        """An LSA transformer for d-dimensional inputs, initialised from `key`."""
        return LSATransformer(self, d, rngs=nnx.Rngs(params=key))

    def objectives(self) -> tuple[str, ...]:
        """"query" always; "causal" (`LSATransformer.predict_prefixes`) for the paired layout
        with trained attention (frozen GD attention divides by the context size N, which a
        prefix does not have)."""
        if self.token_layout == "paired" and not self.frozen_gd_lr:
            return ("query", "causal")
        return ("query",)

    def splits_on_cpu(self) -> bool:
        """Whether a batch split over CPU cores trains faster (`icl.devices.auto_data_parallel`):
        measured yes for attention-only stacks (their small per-task products use one core each),
        except one linear layer (0.82-1.17x over four runs: its step is too cheap for the
        reduction between devices to pay), no with an MLP embedding or MLP blocks (0.43x, 0.83x:
        their large products already use all the cores)."""
        one_linear_layer = self.n_layers == 1 and self.attention == "linear"
        return not (self.embed_dim or self.mlp or one_linear_layer)

    def feature_dim(self, d: int) -> int:
        """F, the width of the input features for inputs of dimension d."""
        return self.embed_dim or d

    def token_dim(self, d: int) -> int:
        """D, the width of a token for inputs of dimension d."""
        if self.token_layout == "separate":
            return self.feature_dim(d) + self.n_positions + 3 + 1
        return self.feature_dim(d) + 1


def _init(scale: float):
    return jax.nn.initializers.variance_scaling(
        scale, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0,)
    )


class AttentionLayer(nnx.Module):
    """One residual attention block (plus optional LayerNorm and MLP); see the module docstring.

    Parameters (row-vector convention, `q = e @ W_q`):
      query, key, value: [H, D, k];  out: [H, k, D]  (so W_Q^h = query[h]^T, W_O^h = out[h]^T).
    """

    def __init__(self, config: ModelConfig, token_dim: int, *, rngs: nnx.Rngs, softmax: bool | None = None):
        self.config = config
        self.softmax = config.attention == "softmax" if softmax is None else softmax
        # the unnormalised kernel attention's h (None: linear or softmax); a forced softmax layer has none
        self.kernel = None if self.softmax else KERNEL_ATTENTIONS.get(config.attention)
        k = config.key_size or token_dim
        init = _init(config.init_scale)
        shape_in, shape_out = (config.n_heads, token_dim, k), (config.n_heads, k, token_dim)
        if config.frozen_gd_lr > 0:  # the GD construction, never trained (see the module docstring)
            feature = jnp.zeros(token_dim).at[:-1].set(1.0)  # the feature block
            label = jnp.zeros(token_dim).at[-1].set(1.0)  # the label slot
            self.query = Frozen(jnp.diag(feature)[None])  # W_Q = W_K = [[I, 0], [0, 0]]
            self.key = Frozen(jnp.diag(feature)[None])
            self.value = Frozen(-jnp.diag(label)[None])  # W_V = [[0, 0], [0, -1]]
            self.out = Frozen(config.frozen_gd_lr * jnp.diag(label)[None])  # P = lr [[0, 0], [0, 1]], / N in __call__
        else:
            self.query = nnx.Param(init(rngs.params(), shape_in))
            self.key = nnx.Param(init(rngs.params(), shape_in))
            self.value = nnx.Param(init(rngs.params(), shape_in))
            self.out = nnx.Param(init(rngs.params(), shape_out))
        self.norm = nnx.LayerNorm(token_dim, rngs=rngs) if config.layernorm else None
        if config.mlp:
            width = config.mlp_width * token_dim
            self.mlp_norm = nnx.LayerNorm(token_dim, rngs=rngs) if config.layernorm else None
            self.mlp_in = nnx.Linear(token_dim, width, rngs=rngs)
            self.mlp_out = nnx.Linear(width, token_dim, rngs=rngs)

    def attend(self, tokens: jax.Array, n_ctx: int, mask: jax.Array | None = None) -> jax.Array:
        """The attention update of every token, [B, T, D] -> [B, T, D].

        `mask` [T, N] (bool): token t attends to context token i only where mask[t, i] (the
        causal objective's; None: every token attends to all N). A row with no context gets 0."""
        h = self.norm(tokens) if self.norm is not None else tokens
        ctx = h[:, :n_ctx]  # [B, N, D]
        q = jnp.einsum("btD,hDk->bhtk", h, self.query[...])  # [B, H, T, k]
        k = jnp.einsum("bnD,hDk->bhnk", ctx, self.key[...])  # [B, H, N, k]
        v = jnp.einsum("bnD,hDk->bhnk", ctx, self.value[...])  # [B, H, N, k]
        if self.kernel is not None:  # unnormalised kernel attention: h(q_t . k_i), masked entries 0
            weights = self.kernel(jnp.einsum("bhtk,bhnk->bhtn", q, k))  # [B, H, T, N]
            if mask is not None:
                weights = jnp.where(mask[None, None], weights, 0.0)
            heads = jnp.einsum("bhtn,bhnv->bhtv", weights, v)
        elif not self.softmax and mask is None:
            memory = jnp.einsum("bhnv,bhnk->bhvk", v, k)  # [B, H, k, k]: sum_i v_i k_i^T
            heads = jnp.einsum("bhvk,bhtk->bhtv", memory, q)  # [B, H, T, k]
        elif not self.softmax:
            scores = jnp.einsum("bhtk,bhnk->bhtn", q, k) * mask[None, None]  # [B, H, T, N]: (q_t . k_i) [i visible]
            heads = jnp.einsum("bhtn,bhnv->bhtv", scores, v)
        else:
            logits = jnp.einsum("bhtk,bhnk->bhtn", q, k) / math.sqrt(q.shape[-1])
            if mask is not None:
                logits = jnp.where(mask[None, None], logits, jnp.finfo(logits.dtype).min)  # finite: no NaN gradient
                weights = jnp.where(mask[None, None], jax.nn.softmax(logits, axis=-1), 0.0)  # an empty row: 0, not NaN
            else:
                weights = jax.nn.softmax(logits, axis=-1)
            heads = jnp.einsum("bhtn,bhnv->bhtv", weights, v)
        return jnp.einsum("bhtv,hvD->btD", heads, self.out[...])  # [B, T, D]

    def __call__(self, tokens: jax.Array, n_ctx: int, mask: jax.Array | None = None) -> jax.Array:
        """Tokens [B, T, D] whose first n_ctx are the context (keys and values) -> [B, T, D];
        `mask` as in `attend`."""
        update = self.attend(tokens, n_ctx, mask)
        if self.config.frozen_gd_lr > 0:
            update = update / n_ctx  # the construction's P = (lr / N) [[0, 0], [0, 1]]
        tokens = tokens + update
        if self.config.mlp:
            h = self.mlp_norm(tokens) if self.mlp_norm is not None else tokens
            tokens = tokens + self.mlp_out(jax.nn.gelu(self.mlp_in(h)))
        if self.config.clip_activations > 0:
            c = self.config.clip_activations
            tokens = jnp.clip(tokens, -c, c)
        return tokens


class LSATransformer(nnx.Module):
    """A stack (or loop) of attention layers reading in-context regression tasks.

    `model(batch)` returns the predictions [B, M]; `model.predict(x_ctx, y_ctx, x_query)` is the
    same with the solver interface; `model.layer_predictions(...)` returns [L, B, M], the
    read-out after each layer.
    """

    def __init__(self, config: ModelConfig, d: int, *, rngs: nnx.Rngs):
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"model: input dimension d must be an integer >= 1, got {d!r}")
        self.config = config
        self.d = d
        token_dim = config.token_dim(d)
        n_weight_sets = 1 if config.shared else config.n_layers
        self.layers = nnx.List([
            AttentionLayer(config, token_dim, rngs=rngs, softmax=True if (i == 0 and config.first_layer_softmax) else None)
            for i in range(n_weight_sets)
        ])
        if config.embed_dim:
            self.embed_in = nnx.Linear(d, config.embed_hidden, rngs=rngs)
            self.embed_out = nnx.Linear(config.embed_hidden, config.embed_dim, rngs=rngs)
        self.w0 = Frozen(jnp.zeros(config.feature_dim(d)))  # query label slot starts at -w0 . f(x_q)

    def embed(self, x: jax.Array) -> jax.Array:
        """Features of the inputs, [..., d] -> [..., D - 1]."""
        if not self.config.embed_dim:
            return x
        return self.embed_out(jax.nn.gelu(self.embed_in(x)))

    def n_context_tokens(self, n_ctx: int) -> int:
        """C, the number of context tokens for n_ctx examples (N paired, 2N separate)."""
        return 2 * n_ctx if self.config.token_layout == "separate" else n_ctx

    def tokens(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The input tokens [B, C + M, D]: paired [f(x_i), y_i] and queries [f(x_q), -w0 . f(x_q)];
        or the separate layout of the module docstring (x_1, y_1, ..., x_N, y_N, queries)."""
        parts = self.token_parts(x_ctx, y_ctx, x_query)
        if self.config.token_layout == "paired":
            ctx, query = parts
            return jnp.concatenate([ctx, query], axis=1)
        x_tok, y_tok, q_tok = parts
        b, n, width = x_tok.shape
        ctx = jnp.stack([x_tok, y_tok], axis=2).reshape(b, 2 * n, width)  # x_1, y_1, x_2, y_2, ...
        return jnp.concatenate([ctx, q_tok], axis=1)

    def token_parts(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array, embed=None) -> tuple[jax.Array, ...]:
        """The input tokens by kind: paired (context [B, N, D], queries [B, M, D]); separate
        (x tokens [B, N, D], y tokens [B, N, D], queries [B, M, D]). `tokens` puts them in order.
        `embed`: a function equal to `self.embed` to use instead (the fast path's)."""
        embed = embed or self.embed
        f_ctx, f_query = embed(x_ctx), embed(x_query)  # [B, N, F], [B, M, F]
        query_slot = -(f_query @ self.w0[...].astype(f_query.dtype))  # [B, M]
        if self.config.token_layout == "paired":
            ctx = jnp.concatenate([f_ctx, y_ctx[..., None]], axis=-1)
            query = jnp.concatenate([f_query, query_slot[..., None]], axis=-1)
            return ctx, query
        b, n, f = f_ctx.shape
        m, p = f_query.shape[1], self.config.n_positions
        if n > p:
            raise ValueError(f"model: token_layout='separate' codes at most n_positions={p} context examples, got {n}")
        dtype = f_ctx.dtype
        pos = jnp.broadcast_to(jnp.eye(n, p, dtype=dtype), (b, n, p))  # [B, N, P]: one-hot pair index

        def flags(*values, count):  # [B, count, 3]
            return jnp.broadcast_to(jnp.asarray(values, dtype), (b, count, 3))

        x_tok = jnp.concatenate([f_ctx, pos, flags(1, 0, 0, count=n), jnp.zeros((b, n, 1), dtype)], -1)
        y_tok = jnp.concatenate([jnp.zeros((b, n, f), dtype), pos, flags(0, 1, 0, count=n), y_ctx[..., None]], -1)
        q_tok = jnp.concatenate([f_query, jnp.zeros((b, m, p), dtype), flags(0, 0, 1, count=m), query_slot[..., None]], -1)
        return x_tok, y_tok, q_tok

    def layer_predictions(
        self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array, n_layers: int | None = None,
        path: str = "auto",
    ) -> jax.Array:
        """Minus the query label slot after each layer: [L, B, M].

        `n_layers` overrides L (e.g. to run a shared layer for more steps than it was trained for).
        `path`: "tokens" updates every token layer by layer (the reference); "gram" runs a pure
        linear stack on the fast path of `icl.models.gram` (the same numbers: the kernel token
        form or the Gram recursion, O(N D^2 + L D^3) per task, whichever `gram.choose_method`
        finds cheaper for the shape); "fast" runs any stack by `icl.models.fast` (the same
        numbers, without the work that cannot reach the read-out); "auto" takes "gram" whenever
        the config allows it, else "fast".
        """
        x_ctx, y_ctx, x_query, _ = check_inputs(x_ctx, y_ctx, x_query, self.d)
        n_ctx = self.n_context_tokens(x_ctx.shape[1])
        n_layers = self.config.n_layers if n_layers is None else n_layers
        if not self.config.shared and n_layers > len(self.layers):
            raise ValueError(f"model: has {len(self.layers)} unshared layers, cannot run {n_layers}")
        if path not in PATHS:
            raise ValueError(f"model: path must be one of {PATHS}, got {path!r}")
        if path == "gram" or (path == "auto" and supports_gram(self.config)):
            return gram_layer_predictions(self, x_ctx, y_ctx, x_query, n_layers)
        if self.config.attention in KERNEL_ATTENTIONS and path == "fast":
            raise ValueError(f"model: path 'fast' does not run attention={self.config.attention!r}; use 'tokens' or 'auto'")
        if path == "fast" or (path == "auto" and self.config.attention not in KERNEL_ATTENTIONS):
            return fast_layer_predictions(self, x_ctx, y_ctx, x_query, n_layers)
        tokens = self.tokens(x_ctx, y_ctx, x_query)  # [B, T, D]
        preds = []
        for i in range(n_layers):
            tokens = self.layers[0 if self.config.shared else i](tokens, n_ctx)
            preds.append(-tokens[:, n_ctx:, -1])
        return jnp.stack(preds)

    def layer_prefix_predictions(self, x: jax.Array, y: jax.Array, n_layers: int | None = None) -> jax.Array:
        """The causal objective's predictions after each layer, [L, B, T]: position t predicted
        from the pairs before it.

        x [B, T, d], y [B, T]. Tokens: T context tokens [f(x_i), y_i] and T query tokens
        [f(x_t), -w0 . f(x_t)]; context token i attends to context tokens j <= i, query token t
        to context tokens j < t (the first query sees no context: its update is 0). So a
        prediction never reads y_t or anything after position t. With one layer of the GD
        construction (`constructions.gd_model(d, n_ctx, lr)`) position t is one GD step on the
        t - 1 pairs before it at rate lr (t - 1) / n_ctx: the output scale lr / n_ctx is fixed, so
        the effective step grows with the prefix (docs/math.md, "The causal objective"). The
        reference token path only (no fast path); the paired layout only (`objectives`)."""
        if "causal" not in self.config.objectives():
            raise ValueError("model: predict_prefixes needs token_layout='paired' and trained attention (frozen_gd_lr=0)")
        x, y, _, _ = check_inputs(x, y, x[:, :1], self.d)
        t = x.shape[1]
        n_layers = self.config.n_layers if n_layers is None else n_layers
        if not self.config.shared and n_layers > len(self.layers):
            raise ValueError(f"model: has {len(self.layers)} unshared layers, cannot run {n_layers}")
        tokens = self.tokens(x, y, x)  # [B, 2T, D]: context tokens, then one query per position
        pos = jnp.arange(t)
        mask = jnp.concatenate([pos[None, :] <= pos[:, None], pos[None, :] < pos[:, None]])  # [2T, T]
        preds = []
        for i in range(n_layers):
            tokens = self.layers[0 if self.config.shared else i](tokens, t, mask)
            preds.append(-tokens[:, t:, -1])
        return jnp.stack(preds)

    def predict_prefixes(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """x [B, T, d], y [B, T] -> [B, T]: position t predicted from (x_1, y_1, ..., x_{t-1},
        y_{t-1}, x_t) (`layer_prefix_predictions`' last layer)."""
        return self.layer_prefix_predictions(x, y)[-1]

    def predict(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The solver interface: x_query [B, M, d] -> [B, M], or [B, d] -> [B]."""
        squeeze = x_query.ndim == 2
        y_hat = self.layer_predictions(x_ctx, y_ctx, x_query)[-1]
        return y_hat[:, 0] if squeeze else y_hat

    def __call__(self, batch: Batch) -> jax.Array:
        return self.predict(batch.x_ctx, batch.y_ctx, batch.x_query)


def predict(model: LSATransformer, batch: Batch) -> jax.Array:
    """Predictions [B, M] of `model` on `batch`."""
    return model(batch)
