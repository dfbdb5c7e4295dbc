"""The causal sequence model every recurrent family shares: paired tokens in two streams, a stack
of residual blocks around a family's sequence mixer, a prediction at every position.

Shapes: B tasks, T (x, y) pairs, M queries, d input dimension, D token width (d + 1, or W).

Tokens. Context pair i is one token c_i = [x_i, y_i]; a query is q = [x, 0] (the label slot
empty). With `width = W > 0` both are read in linearly from [x, y, is_query] to W and the
prediction is read out linearly; with `width = 0` (the default, as the LSA family's paired
layout) tokens are the raw [x, y] (D = d + 1) and the prediction is minus the query's label
slot, y_hat = -q[..., -1], so the GD constructions carry over (von Oswald et al. 2023).

Two streams. A mixer (the family's layer: linear attention, the delta rule, a selective SSM, a
gated RNN) keeps a state S that the context tokens write in order, S_i = update(S_{i-1}, c_i).
Context token i reads the state it has just written, out_i = read(S_i, c_i) (a causal layer).
A query that sees the first n pairs reads S_n and writes nothing, out = read(S_n, q). So

  * `predict(x_ctx, y_ctx, x_query)`: every query reads S_N (the solver interface), and
  * `predict_prefixes(x, y)`: the query [x_t, 0] of position t reads S_{t-1}: position t is
    predicted from (x_1, y_1, ..., x_{t-1}, y_{t-1}, x_t), never from y_t or later pairs
    (Garg et al.'s causal objective; `tests/test_model_families.py` checks the Jacobians).

A block is h <- h + mixer(LN(h)) on both streams at once (each query against its own state),
then optionally h <- h + MLP(LN(h)) per token; LN only with `layernorm`. `shared = True` applies
one block's weights n_layers times (a looped model). The causal LSA family computes the same with
masked attention (`icl.models.lsa.LSATransformer.layer_prefix_predictions`): with the same
weights, the linear-attention family equals it (tested in float64).

A family is a frozen dataclass deriving from `SequenceConfig`, registered with
`icl.models.registry.register`, that defines `mixer(D, rngs) -> Mixer`; see
`icl/models/linear_attention.py` and docs/architecture.md, "How to add a model family".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from icl.checks import check_int
from icl.models.scan import SCANS, states_before
from icl.tasks.base import Batch, check_inputs


def param(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int, scale: float) -> nnx.Param:
    """A weight ~ N(0, scale / fan_in) (LeCun-style variance scaling, as the LSA family's)."""
    return nnx.Param(math.sqrt(scale / fan_in) * jax.random.normal(rngs.params(), shape, jnp.result_type(float)))


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """Fields every recurrent family shares (a family adds its own; see the module docstring).

    Attributes:
      n_layers: blocks applied (with `shared`, one block's weights applied n_layers times).
      width: 0 = raw tokens [x, y] and the label-slot read-out; W > 0 = linear read-in to W and
        a linear read-out.
      mlp: a GELU MLP (hidden 4 D) after each mixer, on every token.
      layernorm: LayerNorm before the mixer and the MLP.
      shared: one set of block weights, looped n_layers times.
      init_scale: weights ~ N(0, init_scale / fan_in).
      scan: how the state sequence is computed, one of the family's `SCANS` (all equal in exact
        arithmetic; tests check them against each other).
    """

    SCANS: ClassVar[tuple[str, ...]] = SCANS
    SIZES: ClassVar[dict[str, dict]] = {}  # the family's named sizes (`named`)

    n_layers: int = 1
    width: int = 0
    mlp: bool = False
    layernorm: bool = False
    shared: bool = False
    init_scale: float = 0.02
    scan: str = "parallel"

    def __post_init__(self):
        owner = type(self).family
        check_int(owner, 1, n_layers=self.n_layers)
        check_int(owner, 0, width=self.width)
        for name in ("mlp", "layernorm", "shared"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{owner}: {name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.init_scale, bool) or not isinstance(self.init_scale, (int, float)) or not (
            math.isfinite(self.init_scale) and self.init_scale > 0
        ):
            raise ValueError(f"{owner}: init_scale must be a finite number > 0, got {self.init_scale!r}")
        if self.scan not in self.SCANS:
            raise ValueError(f"{owner}: scan must be one of {', '.join(self.SCANS)}, got {self.scan!r}")

    @classmethod
    def named(cls, name: str, **overrides) -> SequenceConfig:
        """The named size `name` (a key of the family's `SIZES`), with fields replaced by `overrides`."""
        if name not in cls.SIZES:
            raise ValueError(f"{cls.family}: unknown size {name!r}; known: {sorted(cls.SIZES)}")
        return cls(**{**cls.SIZES[name], **overrides})

    def objectives(self) -> tuple[str, ...]:
        """"causal" (`predict_prefixes`) and "query" (`predict`), as `icl.models.registry`."""
        return ("causal", "query")

    def token_dim(self, d: int) -> int:
        """D: d + 1 raw tokens, or the width W."""
        return self.width or d + 1

    def mixer(self, dim: int, rngs: nnx.Rngs) -> Mixer:
        raise NotImplementedError(f"{type(self).__name__} must define mixer(dim, rngs)")

    def build(self, d: int, key: jax.Array | int = 0) -> SequenceModel:
        """A model for d-dimensional inputs, initialised from `key` (a key or an int seed)."""
        check_int(type(self).family, 1, d=d)
        if not isinstance(key, jax.Array):
            check_int(type(self).family, 0, key=key)
        return SequenceModel(self, d, rngs=nnx.Rngs(params=key))


class Mixer(nnx.Module):
    """A causal sequence layer as a state written by the context and read by every token.

    A family defines `states(h [B, T, D]) -> S` (a pytree of [B, T, ...]: the state after each
    context token) and `read(S, h [B, K, D]) -> [B, K, D]` (token k's output from state k)."""

    def states(self, h: jax.Array) -> Any:
        raise NotImplementedError

    def read(self, states: Any, h: jax.Array) -> jax.Array:
        raise NotImplementedError

    def __call__(self, ctx: jax.Array, query: jax.Array, seen: jax.Array) -> tuple[jax.Array, jax.Array]:
        """ctx [B, T, D], query [B, M, D], seen [M] (query m reads the state after seen[m] context
        tokens) -> (ctx outputs [B, T, D], query outputs [B, M, D])."""
        states = self.states(ctx)
        before = jax.tree.map(lambda s: states_before(s, seen), states)
        return self.read(states, ctx), self.read(before, query)


class Block(nnx.Module):
    """h <- h + mixer(LN(h)) on both streams, then optionally h <- h + MLP(LN(h))."""

    def __init__(self, config: SequenceConfig, dim: int, *, rngs: nnx.Rngs):
        self.mixer = config.mixer(dim, rngs)
        self.norm = nnx.LayerNorm(dim, rngs=rngs) if config.layernorm else None
        if config.mlp:
            self.mlp_norm = nnx.LayerNorm(dim, rngs=rngs) if config.layernorm else None
            self.mlp_in = nnx.Linear(dim, 4 * dim, rngs=rngs)
            self.mlp_out = nnx.Linear(4 * dim, dim, rngs=rngs)
        self.has_mlp = config.mlp

    def __call__(self, ctx: jax.Array, query: jax.Array, seen: jax.Array) -> tuple[jax.Array, jax.Array]:
        norm = self.norm or (lambda h: h)
        ctx_update, query_update = self.mixer(norm(ctx), norm(query), seen)
        ctx, query = ctx + ctx_update, query + query_update
        if self.has_mlp:
            mlp_norm = self.mlp_norm or (lambda h: h)
            ctx, query = (h + self.mlp_out(jax.nn.gelu(self.mlp_in(mlp_norm(h)))) for h in (ctx, query))
        return ctx, query


class SequenceModel(nnx.Module):
    """A stack (or loop) of `Block`s over paired tokens in two streams (module docstring)."""

    def __init__(self, config: SequenceConfig, d: int, *, rngs: nnx.Rngs):
        self.config = config
        self.d = d
        dim = config.token_dim(d)
        if config.width:
            self.read_in = nnx.Linear(d + 2, dim, rngs=rngs)  # [x, y, is_query] -> W
            self.read_out = nnx.Linear(dim, 1, rngs=rngs)
        self.blocks = nnx.List([Block(config, dim, rngs=rngs) for _ in range(1 if config.shared else config.n_layers)])

    def tokens(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Context tokens [B, T, D] and query tokens [B, M, D]."""
        ctx = jnp.concatenate([x_ctx, y_ctx[..., None]], axis=-1)  # [B, T, d + 1]
        query = jnp.concatenate([x_query, jnp.zeros_like(x_query[..., :1])], axis=-1)  # [B, M, d + 1]
        if not self.config.width:
            return ctx, query
        flag = lambda h, value: jnp.concatenate([h, jnp.full_like(h[..., :1], value)], axis=-1)
        return self.read_in(flag(ctx, 0.0)), self.read_in(flag(query, 1.0))

    def readout(self, query: jax.Array) -> jax.Array:
        """Query tokens [B, M, D] -> predictions [B, M]."""
        return self.read_out(query)[..., 0] if self.config.width else -query[..., -1]

    def _layer_outputs(self, ctx, query, seen) -> jax.Array:
        preds = []
        for i in range(self.config.n_layers):
            ctx, query = self.blocks[0 if self.config.shared else i](ctx, query, seen)
            preds.append(self.readout(query))
        return jnp.stack(preds)  # [L, B, M]

    def layer_predictions(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The read-out after each block, [L, B, M]: every query from the whole context."""
        x_ctx, y_ctx, x_query, _ = check_inputs(x_ctx, y_ctx, x_query, self.d)
        seen = jnp.full(x_query.shape[1], x_ctx.shape[1], jnp.int32)
        return self._layer_outputs(*self.tokens(x_ctx, y_ctx, x_query), seen)

    def layer_prefix_predictions(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """The causal objective's read-out after each block, [L, B, T]: position t (0-based)
        from the t pairs before it."""
        x, y, _, _ = check_inputs(x, y, x[:, :1], self.d)
        return self._layer_outputs(*self.tokens(x, y, x), jnp.arange(x.shape[1]))

    def predict_prefixes(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """x [B, T, d], y [B, T] -> [B, T]: position t predicted from the pairs before it and x_t."""
        return self.layer_prefix_predictions(x, y)[-1]

    def predict(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The solver interface: x_query [B, M, d] -> [B, M], or [B, d] -> [B]."""
        y_hat = self.layer_predictions(x_ctx, y_ctx, x_query)[-1]
        return y_hat[:, 0] if x_query.ndim == 2 else y_hat

    def __call__(self, batch: Batch) -> jax.Array:
        return self.predict(batch.x_ctx, batch.y_ctx, batch.x_query)
