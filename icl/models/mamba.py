"""A selective state-space model in pure JAX (model family "mamba"): the mixer of Mamba (Gu & Dao
2023) on this repo's paired tokens, as Mamba is trained on in-context regression by Park et al.
2024 ("Can Mamba learn how to learn?") and Grazzi et al. 2024 ("Is Mamba capable of in-context
learning?"); its GD construction follows Sushma et al. 2024 (GD-SSM: one gated SSM layer does one
GD step).

Shapes: B tasks, T tokens, D token width, E = expand * D channels, N = state_size. Row-vector
weights (u = e @ W_u), as the other families. From a (layer-normed, with `layernorm`) token e [D]:

    u       = act(e W_u)                          [E]     act: silu (default) or none
    z       = e W_z                               [E]     the output gate (with `gate`)
    Delta   = softplus(e W_Delta + b_Delta)       [E]     a step size per channel
    B       = e W_B,   C = e W_C                  [N]     input and output maps of the state
    A       = -exp(A_log)                         [E, N]  diagonal, negative (decaying) dynamics
    h_i     = exp(Delta_i A) * h_{i-1} + (Delta_i u_i) outer B_i      [E, N]   (h_0 = 0)
    y_i     = h_i C_i + D_skip * u_i              [E]     (h_i C_i: sum over n of h_i[:, n] C_i[n])
    out_i   = (y_i * silu(z_i)) W_out             [D]     (gate False: out_i = y_i W_out)

exp(Delta A) is the zero-order hold of the continuous dynamics h' = A h + u B, Delta B the Euler
step of the input, as in Mamba. Context token i reads the state h_i it has just written; a query
q that sees the first n pairs reads the state before it and writes nothing,
y = h_n C(q) + D_skip u(q) (the two-stream scaffold, `icl.models.sequence`). A block is
h <- h + mixer(LN(h)) (Mamba's pre-norm residual block, with LayerNorm for its RMSNorm; no MLP
unless `mlp`), and the scaffold's read-out follows the last block (no final norm).

Differences from Mamba, on purpose: B, C and Delta are projected from the token directly and in
parallel with u (Mamba-2 style) rather than from the convolved u, Delta with a full [D, E] map
instead of Mamba-1's low-rank one; and there is no short causal convolution: a paired token
[x_i, y_i] already holds the whole example, so there is nothing for a conv over neighbouring
tokens to assemble (in a sequence x_1, y_1, x_2, ... it pairs each label with its input). The
scan is materialised (states [B, T, E, N]) by `icl.models.scan.diagonal_recurrence` on
a = exp(Delta A) [B, T, E, N] and b = (Delta u) outer B: "parallel" (associative scan) or
"sequential" (lax.scan), equal in exact arithmetic - not Mamba's fused hardware-aware kernel.

Initialisation as Mamba: A_log[c, n] = log(n + 1) (S4D-real, A = -(1, 2, ..., N) in every
channel); D_skip = 1; Delta's bias b_Delta = softplus^{-1}(dt) with dt ~ logUniform[dt_min,
dt_max] ([1e-3, 1e-1] by default) per channel, so Delta starts at dt; every weight matrix
~ N(0, init_scale / fan_in) (`icl.models.sequence.param`).

Construction (`gd_model`; Sushma et al. 2024): one block on raw tokens e = [x, y] (D = d + 1),
activation "none", gate False (no output gate: exact, with no silu constant to absorb), expand 1
(E = D), state_size N = d, and

    W_u = -[[0, 0], [0, 1]]   (u = -y in the label channel, 0 elsewhere),
    W_B = W_C = [[I_d], [0]]  (B = C = x),
    W_Delta = 0, b_Delta = softplus^{-1}(c), c = lr / n_ref   (Delta = c, exact to round-off),
    A_log = log(-log(decay) / c)   (exp(Delta A) = decay per step; decay = 1: A_log = -inf, A = -0,
                                   exp(Delta A) = 1 exactly),
    D_skip = 0,  W_out = [[0, 0], [0, 1]]   (y's label channel back to the label slot).

The state is then decayed linear attention with value u, key B and query C:
h_n[label, :] = -c sum_{j <= n} decay^(n - j) y_j x_j, so the query [x_t, 0] of position t gets
the label slot -c sum_{j < t} decay^(t - 1 - j) y_j (x_j . x_t), and the prediction (minus the label
slot, `icl.models.sequence`) is

    y_hat_t = (lr / n_ref) sum_{j < t} decay^(t - 1 - j) y_j (x_j . x_t),

one GD step from w = 0 on the t - 1 pairs before t at rate lr (t - 1) / n_ref (`solvers.gd`'s
1/n convention; decay = 1) or exponentially weighted GD (`solvers.weighted_gd` with that rate and
`decay`) - the convention of `icl.models.linear_attention.gd_model` exactly. `verify_errors`
checks both in float64.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl import solvers
from icl.checks import check_int
from icl.models.registry import register
from icl.models.scan import diagonal_recurrence
from icl.models.sequence import Mixer, SequenceConfig, SequenceModel, param

ACTIVATIONS = ("silu", "none")

SIZES: dict[str, dict] = {
    # Park et al. 2024 / Grazzi et al. 2024: 24 Mamba blocks (two per transformer layer of the
    # 12-layer GPT-2 they compare with) at width 256, Mamba's state 16 and expand 2.
    "park": dict(n_layers=24, width=256, state_size=16, expand=2, layernorm=True),
    "cpu": dict(n_layers=4, width=32, state_size=16, expand=2, layernorm=True),
    "tiny": dict(n_layers=2, width=16, state_size=4, expand=2, layernorm=True),  # CPU tests
}


def softplus_inverse(x):
    """softplus^{-1}(x) = log(exp(x) - 1), in the stable form x + log(-expm1(-x)) (x > 0)."""
    return x + jnp.log(-jnp.expm1(-x))


def _check_positive(owner: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")


@register("mamba")
@dataclasses.dataclass(frozen=True)
class MambaConfig(SequenceConfig):
    """A stack of selective state-space blocks; the shared fields are `SequenceConfig`'s.

    Attributes:
      state_size: N, the state's size per channel (Mamba: 16).
      expand: E = expand * D channels (Mamba: 2).
      activation: "silu" (Mamba) or "none" on u = e W_u.
      gate: multiply y by silu(e W_z) (Mamba) or not.
      dt_min, dt_max: Delta starts at dt ~ logUniform[dt_min, dt_max] per channel (Mamba's).
    """

    SIZES: ClassVar[dict[str, dict]] = SIZES

    state_size: int = 16
    expand: int = 2
    activation: str = "silu"
    gate: bool = True
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def __post_init__(self):
        super().__post_init__()
        check_int(self.family, 1, state_size=self.state_size, expand=self.expand)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{self.family}: activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.gate, bool):
            raise ValueError(f"{self.family}: gate must be true or false, got {self.gate!r}")
        _check_positive(self.family, dt_min=self.dt_min, dt_max=self.dt_max)
        if self.dt_min > self.dt_max:
            raise ValueError(f"{self.family}: dt_min must be <= dt_max, got {self.dt_min!r} > {self.dt_max!r}")


    def mixer(self, dim: int, rngs: nnx.Rngs) -> SelectiveSSM:
        return SelectiveSSM(self, dim, rngs=rngs)


def delta_bias_init(key: jax.Array, channels: int, dt_min: float, dt_max: float, dtype) -> jax.Array:
    """b_Delta = softplus^{-1}(dt), dt ~ logUniform[dt_min, dt_max] per channel: [channels]."""
    log_dt = jax.random.uniform(key, (channels,), dtype, math.log(dt_min), math.log(dt_max))
    return softplus_inverse(jnp.exp(log_dt))


class SelectiveSSM(Mixer):
    """Mamba's selective SSM mixer (module docstring). Parameters: input_kernel, gate_kernel
    (with `gate`), delta_kernel [D, E]; delta_bias [E]; b_kernel, c_kernel [D, N];
    a_log [E, N]; d_skip [E]; out [E, D]."""

    def __init__(self, config: MambaConfig, dim: int, *, rngs: nnx.Rngs):
        self.config = config
        e, n, s = config.expand * dim, config.state_size, config.init_scale
        dtype = jnp.result_type(float)
        self.input_kernel = param(rngs, (dim, e), dim, s)
        self.gate_kernel = param(rngs, (dim, e), dim, s) if config.gate else None
        self.delta_kernel = param(rngs, (dim, e), dim, s)
        self.delta_bias = nnx.Param(delta_bias_init(rngs.params(), e, config.dt_min, config.dt_max, dtype))
        self.b_kernel = param(rngs, (dim, n), dim, s)
        self.c_kernel = param(rngs, (dim, n), dim, s)
        self.a_log = nnx.Param(jnp.broadcast_to(jnp.log(jnp.arange(1, n + 1, dtype=dtype))[None], (e, n)))  # S4D-real
        self.d_skip = nnx.Param(jnp.ones((e,), dtype))
        self.out = param(rngs, (e, dim), e, s)

    def channels(self, h: jax.Array) -> jax.Array:
        """u = act(e W_u), [B, T, E]."""
        u = jnp.einsum("btD,DE->btE", h, self.input_kernel[...])
        return jax.nn.silu(u) if self.config.activation == "silu" else u

    def step_size(self, h: jax.Array) -> jax.Array:
        """Delta = softplus(e W_Delta + b_Delta), [B, T, E]."""
        return jax.nn.softplus(jnp.einsum("btD,DE->btE", h, self.delta_kernel[...]) + self.delta_bias[...][None, None])

    def states(self, h: jax.Array) -> jax.Array:
        """h_1..h_T, [B, T, E, N]: h_i = exp(Delta_i A) * h_{i-1} + (Delta_i u_i) outer B_i."""
        delta = self.step_size(h)  # [B, T, E]
        a = -jnp.exp(self.a_log[...])  # [E, N]
        decay = jnp.exp(delta[..., None] * a[None, None])  # [B, T, E, N]
        b = jnp.einsum("btD,Dn->btn", h, self.b_kernel[...])  # [B, T, N]
        writes = jnp.einsum("btE,btn->btEn", delta * self.channels(h), b)  # [B, T, E, N]
        return diagonal_recurrence(decay, writes, self.config.scan)

    def read(self, states: jax.Array, h: jax.Array) -> jax.Array:
        """out = ((state C + D_skip u) * silu(z)) W_out for each token of h [B, K, D] against its
        state [B, K, E, N]: [B, K, D]."""
        c = jnp.einsum("bkD,Dn->bkn", h, self.c_kernel[...])  # [B, K, N]
        y = jnp.einsum("bkEn,bkn->bkE", states, c) + self.d_skip[...][None, None] * self.channels(h)  # [B, K, E]
        if self.config.gate:
            y = y * jax.nn.silu(jnp.einsum("bkD,DE->bkE", h, self.gate_kernel[...]))
        return jnp.einsum("bkE,ED->bkD", y, self.out[...])


def gd_model(d: int, lr: float, n_ref: int, decay: float = 1.0, scan: str = "parallel", dtype=jnp.float64) -> SequenceModel:
    """The construction of the module docstring: one block on raw tokens whose prediction at
    position t is one (decay-weighted) GD step from 0 on the pairs before t at rate
    lr (t - 1) / n_ref, the convention of `linear_attention.gd_model`."""
    check_int("mamba.gd_model", 1, d=d, n_ref=n_ref)
    _check_positive("mamba.gd_model", lr=lr)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"mamba.gd_model: decay must be in (0, 1], got {decay!r}")
    config = MambaConfig(state_size=d, expand=1, activation="none", gate=False, scan=scan)
    model = config.build(d, 0)
    mixer = model.blocks[0].mixer
    step = lr / n_ref  # Delta = c
    label = jnp.diag(jnp.zeros(d + 1, dtype).at[-1].set(1.0))  # [[0, 0], [0, 1]], [D, E = D]
    features = jnp.eye(d + 1, d, dtype=dtype)  # [[I_d], [0]], [D, N = d]
    mixer.input_kernel[...] = -label
    mixer.delta_kernel[...] = jnp.zeros((d + 1, d + 1), dtype)
    mixer.delta_bias[...] = jnp.full((d + 1,), softplus_inverse(jnp.asarray(step, dtype)), dtype)
    mixer.b_kernel[...], mixer.c_kernel[...] = features, features
    a_log = -math.inf if decay == 1 else math.log(-math.log(decay) / step)
    mixer.a_log[...] = jnp.full((d + 1, d), a_log, dtype)
    mixer.d_skip[...] = jnp.zeros((d + 1,), dtype)
    mixer.out[...] = label
    return model


def verify_errors(batch, lr: float = 0.5, decay: float = 0.9) -> dict[str, float]:
    """max |construction - learner| over every prefix of the sequence [context, queries] of
    `batch` (float64), n_ref = its context size: GD (decay 1) and exponentially weighted GD."""
    x, y = batch.sequence()  # [B, T, d], [B, T]
    d, n_ref = x.shape[-1], batch.x_ctx.shape[1]
    errors = {}
    for name, gamma in (("mamba_gd_max_abs_err", 1.0), ("mamba_weighted_gd_max_abs_err", decay)):
        got = gd_model(d, lr, n_ref, decay=gamma).predict_prefixes(x, y)
        want = (solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ref, steps=1) if gamma == 1
                else solvers.fixed_scale_prefixes(solvers.weighted_gd, x, y, lr, n_ref, decay=gamma))
        errors[name] = float(np.max(np.abs(np.asarray(got - want))))
    return errors
