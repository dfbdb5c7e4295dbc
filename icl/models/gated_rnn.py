"""A gated linear RNN: a diagonal linear recurrence between multiplicative (GLU-style) input and
output gates (model family "gated_rnn"), after Zucchet et al. 2023, "Gated recurrent neural
networks discover attention" (arXiv 2309.01775), whose point is that such a layer can implement
a linear self-attention layer exactly.

Per layer, from the token e [D] (the LayerNorm'd residual stream with `layernorm`), with S
recurrent units (row-vector weights, as the other families: a = e @ W_a):

    a_i = e_i W_a,  b_i = e_i W_b                                              [S] each
    s_i = lambda * s_{i-1} + a_i * b_i         (s_0 = 0; * element-wise)       [S]
    c_i = e_i W_c                                                              [S]
    out_i = (c_i * s_i) W_o                                                    [D]

W_a, W_b, W_c [D, S], W_o [S, D]. The input gate writes the product a_i * b_i; the output gate
multiplies what the state holds by c_i. lambda in (0, 1]^S is a learned constant (diagonal)
decay, parametrised lambda = exp(-exp(nu)) (parameter `log_rate` = nu, the log of the decay rate
-log lambda): any nu gives lambda in (0, 1) with finite gradients, and lambda = 1 (no
forgetting, what the attention construction needs) is nu = -inf, where d lambda / d nu = 0. At
init lambda ~ U[decay] (the config field, a range inside (0, 1)). As every recurrent family here
(`icl.models.sequence`), context token i reads the state s_i it has just written, and a query
that sees the first n pairs reads s_n and writes nothing.

Scans ("parallel", "sequential"): `icl.models.scan.diagonal_recurrence`, equal to round-off.

Construction 1, linear attention (`from_linear_attention`, Zucchet et al. Sec. 3). A causal
linear-attention layer (`icl.models.linear_attention`, gate "none") with H heads of key size k,
W_Q, W_K, W_V [H, D, k], W_O [H, k, D],

    S^h_i = sum_{l <= i} v^h_l (k^h_l)^T   [k, k],    out_i = sum_h (S^h_i q^h_i) W_O^h,

is exactly a gated RNN with S = H k k units indexed (h, v, j):

    W_a[:, (h, v, j)] = W_V^h[:, v]   (a copies value component v of head h)
    W_b[:, (h, v, j)] = W_K^h[:, j]   (b copies key component j)
    W_c[:, (h, v, j)] = W_Q^h[:, j]   (c copies query component j)
    W_o[(h, v, j), :] = W_O^h[v, :]   (the read-out sums c * s over j into W_O's row v)
    lambda = 1,

since then s_{(h, v, j)} = S^h[v, j] and sum_j q^h_j S^h[v, j] = (S^h q^h)_v. A constant
per-head decay gamma_h = sigmoid(a_h) (gate "constant") is lambda_{(h, v, j)} = gamma_h. An
input-dependent gate (gate "input") is not a constant lambda and is refused.
`from_linear_attention_model` converts every block of a model (the LayerNorms, MLPs and
read-in / read-out copied), so the two models' predictions agree to round-off (tested in float64).

Construction 2, one GD step (`gd_model`): with raw tokens e = [x, y] (D = d + 1) the units of the
conversion of `linear_attention.gd_model` that are not identically zero are the d units
(v = y, j), so the construction needs only S = d units:

    W_a[:, j] = -e_y,   W_b[:, j] = e_j,   W_c[:, j] = e_j,   W_o[j, :] = (lr / n_ref) e_y^T,

lambda = decay (1: nu = -inf). The query [x_t, 0] of position t (0-based) reads
s_{t, j} = -sum_{i < t} decay^(t-1-i) y_i x_{i, j} and writes -(lr / n_ref) sum_j x_{t, j} s_{t, j}
into its label slot; the read-out y_hat = -q[..., -1] gives

    y_hat_t = (lr / n_ref) sum_{i < t} decay^(t-1-i) y_i (x_i . x_t),

with decay = 1 one GD step from w = 0 on the t pairs before t at rate lr t / n_ref
(`solvers.gd(x[:, :t], y[:, :t], x[:, t], lr=lr * t / n_ref, steps=1)`, its 1/n convention: the
output scale is fixed, so the effective step grows with the prefix; 0 at t = 0), and with
decay < 1 one step of exponentially weighted GD (`solvers.weighted_gd`, same rate convention).
`verify_errors` checks the first on every prefix of a batch's [context, queries] (`icl verify`).

Sizes (`SIZES`, `GatedRNNConfig.named`): "cpu" (2 blocks of width 32 with MLP and LayerNorm,
S = 128) and "zucchet": one gated RNN layer on raw tokens, no MLP or LayerNorm, the default
S = D^2 = (d + 1)^2 (enough for any one-head linear-attention layer of full key size: the
regime of their in-context linear regression, where the trained RNN is compared with one
linear-attention layer and one GD step). That choice is ours: we could not consult the
paper's appendix for their exact widths, so it follows the construction's unit count.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl.checks import check_int
from icl.models import linear_attention
from icl.models.registry import register
from icl.models.scan import SCANS, diagonal_recurrence
from icl.models.sequence import Mixer, SequenceConfig, SequenceModel, param
from icl.precision import highest
from icl.tasks.base import Batch

_OWNER = "gated_rnn"

SIZES: dict[str, dict] = {
    "cpu": dict(n_layers=2, width=32, mlp=True, layernorm=True, state_size=128),
    "zucchet": dict(n_layers=1, width=0, mlp=False, layernorm=False, state_size=0),  # our reading; module docstring
}


@register("gated_rnn")
@dataclasses.dataclass(frozen=True)
class GatedRNNConfig(SequenceConfig):
    """A gated linear RNN (module docstring); the shared fields are `SequenceConfig`'s.

    Attributes:
      state_size: S recurrent units (0 = D * D, D the token width: the units a one-head
        linear-attention layer of key size D needs to be converted exactly).
      decay: (low, high), 0 < low <= high < 1: lambda ~ U[low, high] per unit at init.
    """

    SIZES: ClassVar[dict[str, dict]] = SIZES

    SCANS: ClassVar[tuple[str, ...]] = SCANS

    state_size: int = 0
    decay: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self):
        super().__post_init__()
        check_int(self.family, 0, state_size=self.state_size)
        pair = self.decay
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
                and 0 < pair[0] <= pair[1] < 1):
            raise ValueError(f"{self.family}: decay must be a pair (low, high) with 0 < low <= high < 1, got {pair!r}")
        object.__setattr__(self, "decay", tuple(float(v) for v in pair))


    def units(self, dim: int) -> int:
        """S for token width D: state_size, or D * D when it is 0."""
        return self.state_size or dim * dim

    def mixer(self, dim: int, rngs: nnx.Rngs) -> GatedRNN:
        return GatedRNN(self, dim, rngs=rngs)


def log_rate_of(decay: jax.Array) -> jax.Array:
    """nu with exp(-exp(nu)) = decay, for decay in (0, 1] (-inf at 1)."""
    return jnp.log(-jnp.log(decay))


class GatedRNN(Mixer):
    """One gated linear RNN layer; parameters gate_a, gate_b, gate_c [D, S] (W_a, W_b, W_c),
    out [S, D] (W_o), log_rate [S] (nu: lambda = exp(-exp(nu)))."""

    def __init__(self, config: GatedRNNConfig, dim: int, *, rngs: nnx.Rngs):
        self.config = config
        units, scale = config.units(dim), config.init_scale
        self.gate_a, self.gate_b, self.gate_c = (param(rngs, (dim, units), dim, scale) for _ in range(3))
        self.out = param(rngs, (units, dim), units, scale)
        low, high = config.decay
        decay = jax.random.uniform(rngs.params(), (units,), jnp.result_type(float), low, high)
        self.log_rate = nnx.Param(log_rate_of(decay))

    def decay(self) -> jax.Array:
        """lambda = exp(-exp(nu)), [S]."""
        return jnp.exp(-jnp.exp(self.log_rate[...]))

    def states(self, e: jax.Array) -> jax.Array:
        """s_1..s_T, [B, T, S]."""
        writes = jnp.einsum("btD,DS->btS", e, self.gate_a[...]) * jnp.einsum("btD,DS->btS", e, self.gate_b[...])
        return diagonal_recurrence(self.decay()[None, None], writes, self.config.scan)

    def read(self, states: jax.Array, e: jax.Array) -> jax.Array:
        gate = jnp.einsum("btD,DS->btS", e, self.gate_c[...])
        return jnp.einsum("btS,btS,SD->btD", gate, states, self.out[...])


# ----------------------------------------------------------------------------- constructions


def _scan_for(config) -> str:
    """The linear-attention config's scan where the gated RNN has it ("masked" -> "parallel")."""
    return config.scan if config.scan in SCANS else "parallel"


def _set_from_linear_attention(target: GatedRNN, source: linear_attention.LinearAttention) -> None:
    """Write into `target` (S = H k k units) the weights that compute `source` (module docstring)."""
    gate = source.config.gate
    if gate not in ("none", "constant"):
        raise ValueError(f"{_OWNER}.from_linear_attention: gate must be 'none' or 'constant' (a gated RNN's decay "
                         f"is a constant lambda), got {gate!r}")
    heads, dim, k = source.query.shape
    units = heads * k * k
    if target.gate_a[...].shape != (dim, units):
        raise ValueError(f"{_OWNER}.from_linear_attention: the target needs [D, H k k] = {(dim, units)} gates, "
                         f"got {target.gate_a[...].shape}")
    by_unit = lambda w: w.reshape(dim, units)  # [D, H, k (v), k (j)] -> [D, S]
    value = jnp.transpose(source.value[...], (1, 0, 2))[:, :, :, None]  # [D, H, v, 1]
    key = jnp.transpose(source.key[...], (1, 0, 2))[:, :, None, :]  # [D, H, 1, j]
    query = jnp.transpose(source.query[...], (1, 0, 2))[:, :, None, :]
    shape = (dim, heads, k, k)
    target.gate_a[...] = by_unit(jnp.broadcast_to(value, shape))
    target.gate_b[...] = by_unit(jnp.broadcast_to(key, shape))
    target.gate_c[...] = by_unit(jnp.broadcast_to(query, shape))
    target.out[...] = jnp.broadcast_to(source.out[...][:, :, None, :], (heads, k, k, dim)).reshape(units, dim)
    dtype = source.query[...].dtype
    if gate == "none":
        log_rate = jnp.full((heads,), -jnp.inf, dtype)
    else:  # -log sigmoid(a) = softplus(-a): nu = log softplus(-a), no round trip through gamma
        log_rate = jnp.log(jax.nn.softplus(-source.decay_logit[...]))
    target.log_rate[...] = jnp.broadcast_to(log_rate[:, None, None], (heads, k, k)).reshape(units)


def from_linear_attention(mixer: linear_attention.LinearAttention, scan: str | None = None) -> GatedRNN:
    """The gated RNN layer (S = H k k units) computing the causal linear-attention layer `mixer`
    (gate "none", or "constant": lambda = each head's gamma) exactly (module docstring).
    scan: the new layer's scan (default: the mixer's, "masked" read as "parallel")."""
    if not isinstance(mixer, linear_attention.LinearAttention):
        raise ValueError(f"{_OWNER}.from_linear_attention: expected a linear_attention.LinearAttention, got {type(mixer).__name__}")
    heads, dim, k = mixer.query.shape
    config = GatedRNNConfig(state_size=heads * k * k, scan=scan or _scan_for(mixer.config))
    target = config.mixer(dim, nnx.Rngs(params=0))
    _set_from_linear_attention(target, mixer)
    return target


def _copy_params(source: nnx.Module | None, target: nnx.Module | None) -> None:
    if source is not None:
        nnx.update(target, nnx.state(source, nnx.Param))


def from_linear_attention_model(model: SequenceModel, scan: str | None = None) -> SequenceModel:
    """The gated RNN model computing the linear-attention model `model` (every block's mixer
    converted by `from_linear_attention`; LayerNorms, MLPs, read-in / read-out copied)."""
    la = model.config
    if not isinstance(la, linear_attention.LinearAttentionConfig):
        raise ValueError(f"{_OWNER}.from_linear_attention_model: expected a linear_attention model, got {type(la).__name__}")
    heads, _, k = model.blocks[0].mixer.query.shape
    config = GatedRNNConfig(n_layers=la.n_layers, width=la.width, mlp=la.mlp, layernorm=la.layernorm, shared=la.shared,
                            init_scale=la.init_scale, scan=scan or _scan_for(la), state_size=heads * k * k)
    converted = config.build(model.d, 0)
    for source, target in zip(model.blocks, converted.blocks, strict=True):
        _set_from_linear_attention(target.mixer, source.mixer)
        for name in ("norm", "mlp_norm", "mlp_in", "mlp_out"):
            _copy_params(getattr(source, name, None), getattr(target, name, None))
    if la.width:
        _copy_params(model.read_in, converted.read_in)
        _copy_params(model.read_out, converted.read_out)
    return converted


def gd_model(d: int, lr: float, n_ref: int, decay: float = 1.0, scan: str = "parallel", dtype=jnp.float64) -> SequenceModel:
    """Construction 2 of the module docstring: one layer, raw tokens, S = d units; position t
    (0-based) predicts one GD step on the t pairs before it at rate lr t / n_ref (decay = 1), or
    one exponentially weighted GD step (decay in (0, 1)). The compact form of
    `from_linear_attention_model(linear_attention.gd_model(d, lr, n_ref, decay))`."""
    check_int(f"{_OWNER}.gd_model", 1, d=d, n_ref=n_ref)
    if not 0 < decay <= 1:
        raise ValueError(f"{_OWNER}.gd_model: decay must be in (0, 1], got {decay!r}")
    model = GatedRNNConfig(state_size=d, scan=scan).build(d, 0)
    mixer = model.blocks[0].mixer
    features = jnp.eye(d + 1, d, dtype=dtype)  # [D, S]: column j = e_j
    label = jnp.zeros((d + 1, d), dtype).at[-1].set(1.0)  # [D, S]: every column e_y
    mixer.gate_a[...], mixer.gate_b[...], mixer.gate_c[...] = -label, features, features
    mixer.out[...] = (lr / n_ref) * label.T
    mixer.log_rate[...] = jnp.full((d,), log_rate_of(jnp.asarray(decay, dtype)), dtype)
    return model


@highest
def verify_errors(batch: Batch, lr: float = 1.0) -> dict[str, float]:
    """max |gd_model - one GD step| over every prefix of the sequences [context, queries] of
    `batch` (float64; n_ref = N, the context length; position t at rate lr t / N)."""
    x, y = batch.sequence()  # [B, T, d], [B, T]
    d, n_ref = x.shape[2], batch.x_ctx.shape[1]
    from icl import solvers  # solvers imports the models package; import here, not at module load

    got = gd_model(d, lr, n_ref, dtype=x.dtype).predict_prefixes(x, y)
    want = solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ref, steps=1)
    return {"gated_rnn_gd_max_abs_err": float(np.max(np.abs(np.asarray(got - want))))}
