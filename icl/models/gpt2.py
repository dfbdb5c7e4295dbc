"""A GPT-2-style causal transformer on interleaved (x, y) tokens (Garg et al., NeurIPS 2022), and
its looped, weight-tied variant (Yang et al., ICLR 2024), in Flax NNX.

Shapes: B tasks, T (x, y) pairs of a sequence, S tokens (2T, or 2N + M), d input dimension,
W width, H heads, k = W / H per head, L layers per block, b loops, P = n_positions (pairs).

Tokens (Garg et al. Sec. 3): the sequence x_1, y_1, x_2, y_2, ..., each y zero-padded to d,

    z_{2t-1} = x_t,    z_{2t} = (y_t, 0, ..., 0)        (t = 1..T, tokens indexed from 1 here)

is read in linearly and given a learned positional embedding (a table of 2P rows; token s sits at
position s - 1):

    e_s = W_in^T z_s + b_in + p_{s-1}                                              [B, S, W]

A block of L pre-LayerNorm layers (GPT-2), each

    h <- h + Attn(LN_1(h)),       Attn: H heads of causal softmax attention, 1/sqrt(k) scaling
    h <- h + MLP(LN_2(h)),        MLP(u) = W_2^T gelu(W_1^T u + c_1) + c_2, hidden r W (r = mlp_ratio)

(LN with learned scale and shift, eps 1e-5; gelu its tanh form, GPT-2's "gelu_new"), then a final
LayerNorm and a linear read-out W -> 1. The output at token x_t is the prediction of y_t from
(x_1, y_1, ..., x_{t-1}, y_{t-1}, x_t): `predict_prefixes` returns it for every t. Garg et al.
train on the mean squared error over all T positions.

Looping (`GPT2Config.loops = b > 0`; Yang et al. Sec. 3): the L-layer block is applied b times
with the same weights and the input embedding e re-injected (added) before each application,

    h_0 = 0,    h_j = LN_f(Block(h_{j-1} + e)),    prediction_j = read_out(h_j)    (j = 1..b),

so one loop is exactly the plain model (`loops = 0`); `loop_predictions` returns every
prediction_j. Their training loss is the mean over the last `window` loops, the first b - window
loops run without gradient (truncated backpropagation; `loop_window_predictions`), and b follows
a curriculum (`loop_curriculum`).

Queries (`predict`): the M queries of a task are read in one pass over
[x_1, y_1, ..., x_N, y_N, xq_1, ..., xq_M]. Every query token sits at position 2N (the position
x_{N+1} would have) and attends to the 2N context tokens and to itself only, never to another
query; so each query's prediction equals that of the sequence (x_1, y_1, ..., x_N, y_N, xq_m)
at its last x token (tests/test_gpt2.py checks this to 1e-10 in float64).

Initialisation (GPT-2, as Hugging Face's `GPT2Model` that Garg et al. use): every weight matrix of
the blocks and the positional table ~ N(0, init_std^2), the two residual output projections of
each layer (attention's and the MLP's) ~ N(0, init_std^2 / (2 L)), biases 0, LayerNorm scale 1 and
shift 0. The read-in and read-out sit outside GPT-2 in Garg et al.'s model and keep PyTorch's
default `nn.Linear` init, weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); so do they here.

Parameter count: `GPT2Config.param_count(d)`; Garg et al.'s model (`GPT2Config.named("garg")`,
12 layers, width 256, 8 heads, P = 101) has 9,534,977 parameters at d = 20 ("~9.5M"), of which
9,477,120 in the blocks.
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
from icl.models.registry import register
from icl.tasks.base import Batch, check_inputs

_OWNER = "gpt2"
LAYERNORM_EPS = 1e-5  # GPT-2's layer_norm_epsilon

SIZES: dict[str, dict] = {
    "garg": dict(n_layers=12, width=256, n_heads=8),  # Garg et al. 2022; 9,534,977 parameters at d = 20
    "looped": dict(n_layers=1, width=256, n_heads=8, loops=30),  # Yang et al. 2024 (linear regression: b = 30)
    "small": dict(n_layers=4, width=128, n_heads=4),
    "cpu": dict(n_layers=3, width=64, n_heads=4),  # the CPU scale of icl.experiments.garg
    "tiny": dict(n_layers=2, width=32, n_heads=2),  # CPU tests
}

# Yang et al.'s loop schedules per task (their exec/script_loop.sh): loops start at the window T,
# end at b; +2 every 500 steps (their configs' default curriculum is start 20, end 350, window 20,
# `loop_curriculum`'s defaults).
LOOP_SCHEDULES: dict[str, dict] = {
    "linear": dict(start=15, max_loops=30, window=15),
    "sparse_linear": dict(start=10, max_loops=20, window=10),
    "decision_tree": dict(start=15, max_loops=70, window=15),
    "relu_net": dict(start=5, max_loops=12, window=5),
}


@register("gpt2")
@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """Architecture of a GPT-2-style in-context regressor (see the module docstring).

    Attributes:
      n_layers: L, the layers of the block (the whole stack when loops = 0).
      width: W, the residual stream width.
      n_heads: H attention heads (W must be divisible by H; k = W / H).
      n_positions: P, the most (x, y) pairs a sequence may hold (2P learned positions);
        `predict` needs N + 1 <= P (the query takes the position of x_{N+1}).
      mlp_ratio: r, the MLP's hidden width is r W.
      init_std: sigma of GPT-2's N(0, sigma^2) init (residual projections sigma / sqrt(2L)).
      loops: 0 = a plain stack of L layers; b > 0 = the looped model of Yang et al.: the L-layer
        block applied b times, the input embedding added before each loop.
    """

    family: ClassVar[str] = "gpt2"

    n_layers: int = 2
    width: int = 32
    n_heads: int = 2
    n_positions: int = 101
    mlp_ratio: int = 4
    init_std: float = 0.02
    loops: int = 0

    def __post_init__(self):
        check_int(_OWNER, 1, n_layers=self.n_layers, width=self.width, n_heads=self.n_heads,
                  n_positions=self.n_positions, mlp_ratio=self.mlp_ratio)
        check_int(_OWNER, 0, loops=self.loops)
        if self.width % self.n_heads:
            raise ValueError(f"{_OWNER}: width {self.width} must be divisible by n_heads {self.n_heads}")
        if isinstance(self.init_std, bool) or not isinstance(self.init_std, (int, float)) or not (
            math.isfinite(self.init_std) and self.init_std > 0
        ):
            raise ValueError(f"{_OWNER}: init_std must be a finite number > 0, got {self.init_std!r}")

    @classmethod
    def named(cls, name: str, **overrides) -> GPT2Config:
        """The named size `name` (a key of `SIZES`), with fields replaced by `overrides`."""
        if name not in SIZES:
            raise ValueError(f"{_OWNER}: unknown size {name!r}; known: {sorted(SIZES)}")
        return cls(**{**SIZES[name], **overrides})

    def objectives(self) -> tuple[str, ...]:
        """Training objectives (`icl.models.registry`): "causal" (Garg et al.: every x token
        predicts its y, `predict_prefixes`) and "query" (the M queries, `predict`)."""
        return ("causal", "query")

    @property
    def head_size(self) -> int:
        """k = W / H."""
        return self.width // self.n_heads

    def param_count(self, d: int) -> int:
        """The number of trained parameters for d-dimensional inputs (closed form):
        read-in (d + 1) W, positions 2 P W, per layer 12 W^2 + 13 W at r = 4 (in general
        (4 + 2r) W^2 + (9 + r) W), final LayerNorm 2 W, read-out W + 1."""
        check_int(_OWNER, 1, d=d)
        w, r = self.width, self.mlp_ratio
        per_layer = 2 * w + (3 * w * w + 3 * w) + (w * w + w) + 2 * w + (r * w * w + r * w) + (r * w * w + w)
        return (d + 1) * w + 2 * self.n_positions * w + self.n_layers * per_layer + 2 * w + w + 1

    def build(self, d: int, key: jax.Array | int = 0) -> GPT2:
        """A model for d-dimensional inputs, initialised from `key` (a key or an int seed)."""
        if not isinstance(key, jax.Array):
            check_int(_OWNER, 0, key=key)
        return GPT2(self, d, rngs=nnx.Rngs(params=key))


def loop_curriculum(step, start: int = 20, increment: int = 2, every: int = 500, max_loops: int = 350,
                    window: int = 20) -> tuple[jax.Array, jax.Array]:
    """Yang et al.'s loop curriculum at training step `step` (0-based; a Python int or a traced
    integer): b = min(start + increment * floor(step / every), max_loops) loops, the loss over
    the last min(window, b) of them. Returns (b, window) as int32 arrays. The defaults are their
    configs' (start 20, +2 every 500 steps, up to 350, window 20); their per-task runs are in
    `LOOP_SCHEDULES`."""
    check_int("loop_curriculum", 1, start=start, every=every, max_loops=max_loops, window=window)
    check_int("loop_curriculum", 0, increment=increment)
    if start > max_loops:
        raise ValueError(f"loop_curriculum: start {start} must be <= max_loops {max_loops}")
    if not isinstance(step, jax.Array):
        check_int("loop_curriculum", 0, step=step)
    step = jnp.asarray(step, jnp.int32)
    n_increments = -(-(max_loops - start) // increment) if increment else 0  # ceil: past it b = max_loops
    b = jnp.minimum(start + increment * jnp.minimum(step // every, n_increments), max_loops).astype(jnp.int32)
    return b, jnp.minimum(b, window).astype(jnp.int32)


def _normal(rngs: nnx.Rngs, shape: tuple[int, ...], std: float) -> nnx.Param:
    return nnx.Param(std * jax.random.normal(rngs.params(), shape, jnp.result_type(float)))


def _torch_uniform(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int) -> nnx.Param:
    bound = 1.0 / math.sqrt(fan_in)
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.result_type(float), -bound, bound))


def _zeros(n: int) -> nnx.Param:
    return nnx.Param(jnp.zeros(n, jnp.result_type(float)))


def _affine(h: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """h @ kernel + bias, [..., I] -> [..., O]."""
    out = h @ kernel
    return out + bias.reshape((1,) * (out.ndim - 1) + bias.shape)


class LayerNorm(nnx.Module):
    """LN(h) = gamma * (h - mean(h)) / sqrt(var(h) + eps) + beta over the last axis (eps 1e-5)."""

    def __init__(self, width: int):
        self.scale = nnx.Param(jnp.ones(width, jnp.result_type(float)))
        self.bias = _zeros(width)

    def __call__(self, h: jax.Array) -> jax.Array:
        mean = h.mean(-1, keepdims=True)
        var = jnp.square(h - mean).mean(-1, keepdims=True)
        normed = (h - mean) * jax.lax.rsqrt(var + LAYERNORM_EPS)
        shape = (1,) * (h.ndim - 1) + (-1,)
        return normed * self.scale[...].reshape(shape) + self.bias[...].reshape(shape)


class Layer(nnx.Module):
    """One pre-LayerNorm GPT-2 layer, [B, S, W] -> [B, S, W]:
    h + Attn(LN_1 h), then + MLP(LN_2 h), attention restricted by a boolean mask [S, S]."""

    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs):
        w, hidden = config.width, config.mlp_ratio * config.width
        std, residual_std = config.init_std, config.init_std / math.sqrt(2 * config.n_layers)
        self.n_heads = config.n_heads
        self.ln_1 = LayerNorm(w)
        self.qkv_kernel = _normal(rngs, (w, 3 * w), std)  # [W, 3W]: columns q | k | v, heads contiguous
        self.qkv_bias = _zeros(3 * w)
        self.proj_kernel = _normal(rngs, (w, w), residual_std)  # [W, W]
        self.proj_bias = _zeros(w)
        self.ln_2 = LayerNorm(w)
        self.fc_kernel = _normal(rngs, (w, hidden), std)  # [W, rW]
        self.fc_bias = _zeros(hidden)
        self.out_kernel = _normal(rngs, (hidden, w), residual_std)  # [rW, W]
        self.out_bias = _zeros(w)

    def attend(self, u: jax.Array, allowed: jax.Array) -> jax.Array:
        """Multi-head softmax attention, u [B, S, W] -> [B, S, W]; token s attends to the tokens
        t with allowed[s, t]:  head_h(s) = sum_t softmax_t(q_s . k_t / sqrt(k)) v_t."""
        b, s, w = u.shape
        qkv = _affine(u, self.qkv_kernel[...], self.qkv_bias[...]).reshape(b, s, 3, self.n_heads, w // self.n_heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, S, H, k] each
        logits = jnp.einsum("bshk,bthk->bhst", q, k) / math.sqrt(w // self.n_heads)  # [B, H, S, S]
        logits = jnp.where(allowed[None, None], logits, jnp.finfo(logits.dtype).min)
        heads = jnp.einsum("bhst,bthk->bshk", jax.nn.softmax(logits, axis=-1), v)  # [B, S, H, k]
        return _affine(heads.reshape(b, s, w), self.proj_kernel[...], self.proj_bias[...])

    def __call__(self, h: jax.Array, allowed: jax.Array) -> jax.Array:
        h = h + self.attend(self.ln_1(h), allowed)
        hidden = jax.nn.gelu(_affine(self.ln_2(h), self.fc_kernel[...], self.fc_bias[...]), approximate=True)
        return h + _affine(hidden, self.out_kernel[...], self.out_bias[...])


def causal_mask(n_tokens: int) -> np.ndarray:
    """allowed [S, S]: token s sees tokens t <= s."""
    return np.tril(np.ones((n_tokens, n_tokens), bool))


def query_mask(n_context_tokens: int, n_queries: int) -> np.ndarray:
    """allowed [C + M, C + M] for C context tokens then M queries: causal over the context; a
    query sees the whole context and itself, never another query."""
    s = n_context_tokens + n_queries
    row, col = np.arange(s)[:, None], np.arange(s)[None, :]
    return (col <= row) & ((col < n_context_tokens) | (col == row))


class GPT2(nnx.Module):
    """A GPT-2-style in-context regressor (see the module docstring).

    `predict_prefixes(x, y)` -> [B, T], the prediction at every x token; `predict(x_ctx, y_ctx,
    x_query)` -> [B, M], the solver interface; `model(batch)` the same on a `Batch`;
    `loop_predictions(x, y, b)` -> [b, B, T] for a looped config.
    """

    def __init__(self, config: GPT2Config, d: int, *, rngs: nnx.Rngs):
        if not isinstance(config, GPT2Config):
            raise TypeError(f"{_OWNER}: config must be a GPT2Config, got {type(config).__name__}")
        check_int(_OWNER, 1, d=d)
        self.config = config
        self.d = d
        w = config.width
        self.read_in_kernel = _torch_uniform(rngs, (d, w), d)  # [d, W]
        self.read_in_bias = _torch_uniform(rngs, (w,), d)
        self.positions = _normal(rngs, (2 * config.n_positions, w), config.init_std)  # [2P, W]
        self.layers = nnx.List([Layer(config, rngs=rngs) for _ in range(config.n_layers)])
        self.ln_f = LayerNorm(w)
        self.read_out_kernel = _torch_uniform(rngs, (w,), w)  # [W]
        self.read_out_bias = _torch_uniform(rngs, (), w)  # []

    # --- pieces ------------------------------------------------------------------------------

    def embed(self, z: jax.Array, positions: np.ndarray) -> jax.Array:
        """e = W_in^T z + b_in + p_position: tokens z [B, S, d], positions [S] (ints) -> [B, S, W]."""
        return _affine(z, self.read_in_kernel[...], self.read_in_bias[...]) + self.positions[...][positions][None]

    def block(self, h: jax.Array, allowed: jax.Array) -> jax.Array:
        """The L layers then the final LayerNorm, [B, S, W] -> [B, S, W]."""
        for layer in self.layers:
            h = layer(h, allowed)
        return self.ln_f(h)

    def read_out(self, h: jax.Array) -> jax.Array:
        """[B, S, W] -> [B, S]."""
        return h @ self.read_out_kernel[...] + self.read_out_bias[...]

    def _n_loops(self, n_loops) -> int:
        if n_loops is None:
            return max(self.config.loops, 1)
        if not self.config.loops:
            raise ValueError(f"{_OWNER}: n_loops needs a looped config (loops > 0); this model is a plain stack")
        check_int(_OWNER, 1, n_loops=n_loops)
        return int(n_loops)

    def _check_sequence(self, x, y) -> tuple[jax.Array, jax.Array]:
        """x [B, T, d], y [B, T] as floating arrays, T <= n_positions, or a one-line ValueError."""
        x, y = jnp.asarray(x), jnp.asarray(y)
        if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != self.d:
            raise ValueError(f"{_OWNER}: x must be [batch, T >= 1, d = {self.d}], got shape {x.shape}")
        if y.shape != x.shape[:2]:
            raise ValueError(f"{_OWNER}: y must be [batch, T] = {x.shape[:2]} to match x, got {y.shape}")
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            x = x.astype(jnp.result_type(float))
        t, p = x.shape[1], self.config.n_positions
        if t > p:
            raise ValueError(f"{_OWNER}: a sequence of T = {t} (x, y) pairs exceeds n_positions = {p}")
        return x, y.astype(x.dtype)

    def _sequence_embedding(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Interleaved tokens x_1, (y_1, 0..0), x_2, ... embedded: x [B, T, d], y [B, T] -> [B, 2T, W]."""
        b, t, d = x.shape
        y_wide = jnp.concatenate([y[..., None], jnp.zeros((b, t, d - 1), y.dtype)], axis=-1)  # [B, T, d]
        z = jnp.stack([x, y_wide.astype(x.dtype)], axis=2).reshape(b, 2 * t, d)  # [B, 2T, d]
        return self.embed(z, np.arange(2 * t))

    def _loops(self, e: jax.Array, allowed: jax.Array, n_loops: int, tokens: slice,
               grad_window: int | None = None) -> jax.Array:
        """The read-out at `tokens` after each loop, [n_loops, B, S'], from e [B, S, W]:
        h_j = block(h_{j-1} + e), h_0 = 0 (only the predictions are kept, not the states). With
        grad_window, h_{n_loops - grad_window} is a stop_gradient (truncated backpropagation)."""
        if n_loops == 1:
            return self.read_out(self.block(e, allowed)[:, tokens])[None]
        graphdef, state = nnx.split(self)

        def step(h, j):
            if grad_window is not None:
                h = jnp.where(j == n_loops - grad_window, jax.lax.stop_gradient(h), h)
            model = nnx.merge(graphdef, state)
            h = model.block(h + e, allowed)
            return h, model.read_out(h[:, tokens])

        _, preds = jax.lax.scan(step, jnp.zeros_like(e), jnp.arange(n_loops))
        return preds

    # --- the interface ------------------------------------------------------------------------

    def predict_prefixes(self, x: jax.Array, y: jax.Array, n_loops: int | None = None) -> jax.Array:
        """The prediction at every x token, x [B, T, d], y [B, T] -> [B, T]: entry t predicts
        y_t from (x_1, y_1, ..., x_{t-1}, y_{t-1}, x_t) (causal; y_t itself is never seen).
        `n_loops` (looped configs only) overrides `config.loops`, e.g. to run past the trained
        loops."""
        return self._sequence_predictions(x, y, self._n_loops(n_loops))[-1]

    def loop_predictions(self, x: jax.Array, y: jax.Array, n_loops: int, grad_window: int | None = None) -> jax.Array:
        """The prediction at every x token after each loop, [n_loops, B, T] (entry j - 1 after loop
        j; looped configs only). `grad_window` = w: the state entering the last w loops is a
        stop_gradient, so the gradient of a loss on entries [-w:] is Yang et al.'s truncated one
        (for a static n_loops; `loop_window_predictions` takes a traced one)."""
        n_loops = self._n_loops(n_loops)
        if grad_window is not None:
            check_int(_OWNER, 1, grad_window=grad_window)
        return self._sequence_predictions(x, y, n_loops, grad_window)

    def _sequence_predictions(self, x, y, n_loops: int, grad_window: int | None = None) -> jax.Array:
        """[n_loops, B, T]: the read-out at the x tokens after each loop."""
        x, y = self._check_sequence(x, y)
        e = self._sequence_embedding(x, y)  # [B, 2T, W]
        return self._loops(e, jnp.asarray(causal_mask(e.shape[1])), n_loops, slice(0, None, 2), grad_window)

    def loop_window_predictions(self, x: jax.Array, y: jax.Array, n_loops, window: int) -> tuple[jax.Array, jax.Array]:
        """Yang et al.'s training forward with a possibly traced number of loops b (from
        `loop_curriculum` under jit): s = max(b - window, 0) loops without gradient (a while
        loop), then `window` loops with it. Returns (predictions [window, B, T], valid [window]):
        entry i is the prediction after loop s + i + 1, valid where s + i + 1 <= b (all of them
        when b >= window). Average a loss over the valid entries."""
        if not self.config.loops:
            raise ValueError(f"{_OWNER}: loop_window_predictions needs a looped config (loops > 0)")
        check_int(_OWNER, 1, window=window)
        if not isinstance(n_loops, jax.Array):
            check_int(_OWNER, 1, n_loops=n_loops)
        x, y = self._check_sequence(x, y)
        e = self._sequence_embedding(x, y)  # [B, 2T, W]
        allowed = jnp.asarray(causal_mask(e.shape[1]))
        b = jnp.asarray(n_loops, jnp.int32)
        skipped = jnp.maximum(b - window, 0)
        graphdef, state = nnx.split(self)
        frozen = jax.lax.stop_gradient(state)

        def no_grad_loop(carry):
            j, h = carry
            return j + 1, nnx.merge(graphdef, frozen).block(h + jax.lax.stop_gradient(e), allowed)

        _, h = jax.lax.while_loop(lambda c: c[0] < skipped, no_grad_loop, (jnp.int32(0), jnp.zeros_like(e)))
        h = jax.lax.stop_gradient(h)

        def grad_loop(h, _):
            model = nnx.merge(graphdef, state)
            h = model.block(h + e, allowed)
            return h, model.read_out(h[:, ::2])

        _, preds = jax.lax.scan(grad_loop, h, None, length=window)  # [window, B, T]
        valid = skipped + jnp.arange(1, window + 1) <= b
        return preds, valid

    def predict(self, x_ctx: jax.Array, y_ctx: jax.Array, x_query: jax.Array) -> jax.Array:
        """The solver interface: x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] -> [B, M] (or
        [B, d] -> [B]). One pass: the M query tokens at position 2N, each attending to the context
        and itself (`query_mask`); equal to `predict_prefixes` on (context, query m) at t = N + 1."""
        x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query, self.d)
        n, m, p = x_ctx.shape[1], x_query.shape[1], self.config.n_positions
        if n + 1 > p:
            raise ValueError(f"{_OWNER}: N = {n} context pairs and a query need N + 1 <= n_positions = {p}")
        ctx = self._sequence_embedding(x_ctx, y_ctx)  # [B, 2N, W]
        query = self.embed(x_query.astype(ctx.dtype), np.full(m, 2 * n))  # [B, M, W]
        e = jnp.concatenate([ctx, query], axis=1)  # [B, 2N + M, W]
        y_hat = self._loops(e, jnp.asarray(query_mask(2 * n, m)), self._n_loops(None), slice(2 * n, None))[-1]  # [B, M]
        return y_hat[:, 0] if squeeze else y_hat

    def __call__(self, batch: Batch) -> jax.Array:
        """Predictions [B, M] of the batch's queries from its context."""
        return self.predict(batch.x_ctx, batch.y_ctx, batch.x_query)


def build(config: GPT2Config, d: int, key: jax.Array | int = 0) -> GPT2:
    """A GPT-2-style model for d-dimensional inputs, initialised from `key`."""
    return config.build(d, key)
