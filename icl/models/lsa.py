"""Transformers of linear self-attention (LSA) layers (von Oswald et al. 2023, Sec. 2), in Flax NNX.

Shapes: B tasks, N context tokens, M query tokens, T = N + M, D token width (d + 1, or the
embedding width + 1), H heads, k key (= value) size, L layers.

Tokens: context `e_i = [x_i, y_i]`, query `e_q = [x_q, -w0 . x_q]` (w0 = 0 unless a construction
sets it, so the query is `[x_q, 0]`). Keys and values come from the N context tokens only: the query
never attends to itself nor to other queries. One layer updates every token,

    e_j <- e_j + sum_h W_O^h sum_{i<=N} (W_V^h e_i) (W_K^h e_i)^T (W_Q^h e_j)        (linear)
    e_j <- e_j + sum_h W_O^h sum_{i<=N} softmax_i(q_j . k_i / sqrt(k)) W_V^h e_i      (softmax)

with **no** 1/N factor (the paper's convention: the constructions fold eta/N into W_O). The model's
prediction is **minus** the last coordinate of the query token after the last layer.

Linear attention is computed as `(sum_i v_i k_i^T) q_j`, the context outer-product sum formed
once per layer and head, O((N + M) k^2) per task instead of O((N + M) N k).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from icl.tasks.base import Batch, check_inputs


class Frozen(nnx.Variable):
    """A model variable that training never updates (e.g. a construction's w0)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of an LSA transformer.

    Attributes:
      n_layers: L, the number of attention layers applied.
      shared: one set of layer weights applied L times (a recurrent / looped transformer).
      n_heads: H attention heads per layer.
      key_size: k, the key, query and value size per head; 0 means the token width D.
      attention: "linear" (LSA) or "softmax".
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

    def __post_init__(self):
        for name in ("n_layers", "n_heads", "mlp_width", "embed_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model: {name} must be an integer >= 1, got {value!r}")
        for name in ("key_size", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"model: {name} must be an integer >= 0, got {value!r}")
        if self.attention not in ("linear", "softmax"):
            raise ValueError(f"model: attention must be 'linear' or 'softmax', got {self.attention!r}")
        if not self.init_scale > 0:
            raise ValueError(f"model: init_scale must be > 0, got {self.init_scale!r}")
        if not self.clip_activations >= 0:
            raise ValueError(f"model: clip_activations must be >= 0, got {self.clip_activations!r}")

    def token_dim(self, d: int) -> int:
        """D, the width of a token for inputs of dimension d."""
        return (self.embed_dim or d) + 1


def _init(scale: float):
    return jax.nn.initializers.variance_scaling(
        scale, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0,)
    )


class AttentionLayer(nnx.Module):
    """One residual attention block (plus optional LayerNorm and MLP); see the module docstring.

    Parameters (row-vector convention, `q = e @ W_q`):
      query, key, value: [H, D, k];  out: [H, k, D]  (so W_Q^h = query[h]^T, W_O^h = out[h]^T).
    """

    def __init__(self, config: ModelConfig, token_dim: int, *, rngs: nnx.Rngs):
        self.config = config
        k = config.key_size or token_dim
        init = _init(config.init_scale)
        shape_in, shape_out = (config.n_heads, token_dim, k), (config.n_heads, k, token_dim)
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

    def attend(self, tokens: jax.Array, n_ctx: int) -> jax.Array:
        """The attention update of every token, [B, T, D] -> [B, T, D]."""
        h = self.norm(tokens) if self.norm is not None else tokens
        ctx = h[:, :n_ctx]  # [B, N, D]
        q = jnp.einsum("btD,hDk->bhtk", h, self.query[...])  # [B, H, T, k]
        k = jnp.einsum("bnD,hDk->bhnk", ctx, self.key[...])  # [B, H, N, k]
        v = jnp.einsum("bnD,hDk->bhnk", ctx, self.value[...])  # [B, H, N, k]
        if self.config.attention == "linear":
            memory = jnp.einsum("bhnv,bhnk->bhvk", v, k)  # [B, H, k, k]: sum_i v_i k_i^T
            heads = jnp.einsum("bhvk,bhtk->bhtv", memory, q)  # [B, H, T, k]
        else:
            logits = jnp.einsum("bhtk,bhnk->bhtn", q, k) / math.sqrt(q.shape[-1])
            heads = jnp.einsum("bhtn,bhnv->bhtv", jax.nn.softmax(logits, axis=-1), v)
        return jnp.einsum("bhtv,hvD->btD", heads, self.out[...])  # [B, T, D]

    def __call__(self, tokens: jax.Array, n_ctx: int) -> jax.Array:
        tokens = tokens + self.attend(tokens, n_ctx)
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
        self.layers = nnx.List([AttentionLayer(config, token_dim, rngs=rngs) for _ in range(n_weight_sets)])
        if config.embed_dim:
            self.embed_in = nnx.Linear(d, config.embed_hidden, rngs=rngs)
            self.embed_out = nnx.Linear(config.embed_hidden, config.embed_dim, rngs=rngs)
        self.w0 = Frozen(jnp.zeros(token_dim - 1))  # query label slot starts at -w0 . x_q

    def embed(self, x: jax.Array) -> jax.Array:
        """Features of the inputs, [..., d] -> [..., D - 1]."""
        if not self.config.embed_dim:
            return x
        return self.embed_out(jax.nn.gelu(self.embed_in(x)))

    def tokens(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """[x_i, y_i] for the context and [x_q, -w0 . x_q] for the queries: [B, N + M, D]."""
        f_ctx, f_query = self.embed(x_ctx), self.embed(x_query)  # [B, N, D-1], [B, M, D-1]
        query_slot = -(f_query @ self.w0[...].astype(f_query.dtype))  # [B, M]
        ctx = jnp.concatenate([f_ctx, y_ctx[..., None]], axis=-1)
        query = jnp.concatenate([f_query, query_slot[..., None]], axis=-1)
        return jnp.concatenate([ctx, query], axis=1)

    def layer_predictions(
        self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array, n_layers: int | None = None
    ) -> jax.Array:
        """Minus the query label slot after each layer: [L, B, M].

        `n_layers` overrides L (e.g. to run a shared layer for more steps than it was trained for).
        """
        x_ctx, y_ctx, x_query, _ = check_inputs(x_ctx, y_ctx, x_query, self.d)
        n_ctx = x_ctx.shape[1]
        n_layers = self.config.n_layers if n_layers is None else n_layers
        if not self.config.shared and n_layers > len(self.layers):
            raise ValueError(f"model: has {len(self.layers)} unshared layers, cannot run {n_layers}")
        tokens = self.tokens(x_ctx, y_ctx, x_query)  # [B, T, D]
        preds = []
        for i in range(n_layers):
            tokens = self.layers[0 if self.config.shared else i](tokens, n_ctx)
            preds.append(-tokens[:, n_ctx:, -1])
        return jnp.stack(preds)

    def predict(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The solver interface: x_query [B, M, d] -> [B, M], or [B, d] -> [B]."""
        squeeze = x_query.ndim == 2
        y_hat = self.layer_predictions(x_ctx, y_ctx, x_query)[-1]
        return y_hat[:, 0] if squeeze else y_hat

    def __call__(self, batch: Batch) -> jax.Array:
        return self.predict(batch.x_ctx, batch.y_ctx, batch.x_query)


def build(config: ModelConfig, d: int, key: jax.Array | int = 0) -> LSATransformer:
    """An LSA transformer for d-dimensional inputs, initialised from `key`."""
    return LSATransformer(config, d, rngs=nnx.Rngs(params=key))


def predict(model: LSATransformer, batch: Batch) -> jax.Array:
    """Predictions [B, M] of `model` on `batch`."""
    return model(batch)
