"""Causal linear attention as a recurrence, with an optional decay gate (model family
"linear_attention"): the baseline of the recurrent families (Katharopoulos et al. 2020; gated
linear attention, Yang et al. 2024; decaying fast weights, Schlag et al. 2021).

Per head h (H heads, key size k; row-vector weights as the LSA family: q = e @ W_Q):

    q_i = e_i W_Q,  k_i = e_i W_K,  v_i = e_i W_V                                    [k] each
    S_i = gamma_i S_{i-1} + v_i k_i^T        (S_0 = 0)                              [k, k]
    out_i = sum_h (S_i q_i) W_O                                                    [D]

gate "none": gamma = 1 (S_i = sum_{j<=i} v_j k_j^T, exactly the causal LSA layer with the same
weights); "constant": gamma = sigmoid(a_h), one learned decay per head; "input":
gamma_i = sigmoid(e_i w_h + b_h), a decay read from the token (gated linear attention with a
scalar gate per head). A query reads the state the context before it left (`icl.models.sequence`).

Three ways to compute it (`scan`), equal in exact arithmetic: "parallel" and "sequential"
(`icl.models.scan`, the states materialised), and "masked", the quadratic form

    out_i = sum_{j <= i} (prod_{j < l <= i} gamma_l) (q_i . k_j) v_j W_O,

which is how the LSA family writes it.

Construction (`gd_model`): with raw tokens e = [x, y], W_Q = W_K = [[I, 0], [0, 0]],
W_V = [[0, 0], [0, -1]], W_O = (lr / n_ref) [[0, 0], [0, 1]], the query [x_t, 0] of position t
gets y_hat_t = (lr / n_ref) sum_{j < t} g_{t,j} y_j (x_j . x_t), g_{t,j} = gamma^(t-1-j) with a
constant decay gamma: one GD step from w = 0 on the t - 1 pairs before t at rate
lr (t - 1) / n_ref (gamma = 1, `solvers.gd`'s 1/n convention; the output scale is fixed, so the
effective step grows with the prefix), or one step of exponentially weighted GD
(`solvers.weighted_gd`, decay gamma). `icl verify` checks both in float64.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from icl import solvers
from icl.checks import check_int
from icl.models.registry import register
from icl.models.scan import SCANS, diagonal_recurrence
from icl.models.sequence import Mixer, SequenceConfig, SequenceModel, param

GATES = ("none", "constant", "input")


@register("linear_attention")
@dataclasses.dataclass(frozen=True)
class LinearAttentionConfig(SequenceConfig):
    """Causal (gated) linear attention; the shared fields are `SequenceConfig`'s.

    Attributes:
      n_heads: H heads.
      key_size: k per head (0 = the token width D).
      gate: "none", "constant" or "input" (module docstring).
    """

    SCANS: ClassVar[tuple[str, ...]] = (*SCANS, "masked")

    n_heads: int = 1
    key_size: int = 0
    gate: str = "none"

    def __post_init__(self):
        super().__post_init__()
        check_int(self.family, 1, n_heads=self.n_heads)
        check_int(self.family, 0, key_size=self.key_size)
        if self.gate not in GATES:
            raise ValueError(f"{self.family}: gate must be one of {', '.join(GATES)}, got {self.gate!r}")

    def mixer(self, dim: int, rngs: nnx.Rngs) -> LinearAttention:
        return LinearAttention(self, dim, rngs=rngs)


class LinearAttention(Mixer):
    """One causal (gated) linear-attention layer; parameters query, key, value [H, D, k], out
    [H, k, D]; gate "constant": decay_logit [H]; "input": gate_kernel [D, H], gate_bias [H]."""

    def __init__(self, config: LinearAttentionConfig, dim: int, *, rngs: nnx.Rngs):
        self.config = config
        k, h, s = config.key_size or dim, config.n_heads, config.init_scale
        self.query, self.key, self.value = (param(rngs, (h, dim, k), dim, s) for _ in range(3))
        self.out = param(rngs, (h, k, dim), k, s)
        if config.gate == "constant":
            self.decay_logit = nnx.Param(jnp.full((h,), 3.0, jnp.result_type(float)))  # gamma ~ 0.95 at init
        elif config.gate == "input":
            self.gate_kernel = param(rngs, (dim, h), dim, s)
            self.gate_bias = nnx.Param(jnp.full((h,), 3.0, jnp.result_type(float)))

    def decay(self, e: jax.Array) -> jax.Array:
        """gamma_i per token and head, [B, T, H] (ones without a gate)."""
        shape = e.shape[:-1] + (self.config.n_heads,)
        if self.config.gate == "none":
            return jnp.ones(shape, e.dtype)
        if self.config.gate == "constant":
            return jnp.broadcast_to(jax.nn.sigmoid(self.decay_logit[...]), shape)
        return jax.nn.sigmoid(jnp.einsum("...D,Dh->...h", e, self.gate_kernel[...]) + self.gate_bias[...][None, None])

    def states(self, e: jax.Array) -> jax.Array:
        """S_1..S_T, [B, T, H, k, k] (value index first: S = sum v k^T)."""
        k = jnp.einsum("btD,hDk->bthk", e, self.key[...])
        v = jnp.einsum("btD,hDk->bthk", e, self.value[...])
        writes = jnp.einsum("bthv,bthk->bthvk", v, k)  # [B, T, H, k, k]
        return diagonal_recurrence(self.decay(e)[..., None, None], writes, self.config.scan)

    def read(self, states: jax.Array, e: jax.Array) -> jax.Array:
        q = jnp.einsum("btD,hDk->bthk", e, self.query[...])
        return jnp.einsum("bthvk,bthk,hvD->btD", states, q, self.out[...])

    def __call__(self, ctx: jax.Array, query: jax.Array, seen: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.config.scan != "masked":
            return super().__call__(ctx, query, seen)
        t = ctx.shape[1]
        k = jnp.einsum("btD,hDk->bhtk", ctx, self.key[...])
        v = jnp.einsum("btD,hDk->bhtk", ctx, self.value[...])
        log_decay = jnp.cumsum(jnp.log(jnp.moveaxis(self.decay(ctx), -1, 1)), axis=-1)  # [B, H, T]: sum_{l<=i} log gamma_l

        def attend(e, last):  # e [B, K, D]; last [K]: the last context index each row sees (-1: none)
            q = jnp.einsum("bKD,hDk->bhKk", e, self.query[...])
            visible = (jnp.arange(t)[None, :] <= last[:, None])[None, None]  # [1, 1, K, T]
            at_last = jnp.take(log_decay, jnp.maximum(last, 0), axis=-1)  # [B, H, K]
            weights = jnp.where(visible, jnp.exp(jnp.where(visible, at_last[..., None] - log_decay[..., None, :], 0.0)), 0.0)
            scores = jnp.einsum("bhKk,bhtk->bhKt", q, k) * weights  # [B, H, K, T]
            return jnp.einsum("bhKt,bhtv,hvD->bKD", scores, v, self.out[...])

        return attend(ctx, jnp.arange(t)), attend(query, seen - 1)


def gd_model(d: int, lr: float, n_ref: int, decay: float = 1.0, scan: str = "parallel", dtype=jnp.float64) -> SequenceModel:
    """The construction of the module docstring: one layer on raw tokens whose prediction at
    position t is one (decay-weighted) GD step on the pairs before t at rate lr (t - 1) / n_ref.
    decay = 1: no gate; decay in (0, 1): a constant gate gamma = decay."""
    check_int("linear_attention.gd_model", 1, d=d, n_ref=n_ref)
    if not 0 < decay <= 1:
        raise ValueError(f"linear_attention.gd_model: decay must be in (0, 1], got {decay!r}")
    config = LinearAttentionConfig(gate="none" if decay == 1 else "constant", scan=scan)
    model = config.build(d, 0)
    mixer = model.blocks[0].mixer
    feature = jnp.diag(jnp.zeros(d + 1, dtype).at[:-1].set(1.0))[None]  # [[I, 0], [0, 0]]
    label = jnp.diag(jnp.zeros(d + 1, dtype).at[-1].set(1.0))[None]  # [[0, 0], [0, 1]]
    mixer.query[...], mixer.key[...] = feature, feature
    mixer.value[...], mixer.out[...] = -label, (lr / n_ref) * label
    if decay != 1:
        mixer.decay_logit[...] = jnp.full((1,), math.log(decay / (1 - decay)), dtype)
    return model


def verify_errors(batch, decay: float = 0.8) -> dict[str, float]:
    """max |construction - learner| on every prefix of the sequence [context, queries] of `batch`
    (float64 expected): the GD construction against one GD step per prefix (`solvers.gd`) and the
    decayed one against exponentially weighted GD (`solvers.weighted_gd`), lr = the task's
    N-example rate 1 / d."""
    x, y = batch.sequence()  # [B, T, d], [B, T]
    d, n_ref, lr = x.shape[2], batch.x_ctx.shape[1], 1.0 / x.shape[2]
    plain = gd_model(d, lr, n_ref, dtype=x.dtype).predict_prefixes(x, y)
    decayed = gd_model(d, lr, n_ref, decay=decay, dtype=x.dtype).predict_prefixes(x, y)
    gd = solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ref, steps=1)
    weighted = solvers.fixed_scale_prefixes(solvers.weighted_gd, x, y, lr, n_ref, decay=decay)
    return {
        "linear_attention_gd_max_abs_err": float(jnp.max(jnp.abs(plain - gd))),
        "gated_linear_attention_weighted_gd_max_abs_err": float(jnp.max(jnp.abs(decayed - weighted))),
    }
