"""The delta rule as a sequence layer (model family "deltanet"): linear attention whose memory is
corrected, not just added to (Schlag et al. 2021, "Linear transformers are secretly fast weight
programmers"; Yang et al. 2024, "Parallelizing linear transformers with the delta rule over
sequence length" = DeltaNet).

Per head h (H heads, key = value size k; row-vector weights as the LSA family: q = e @ W_Q):

    q_i = e_i W_Q,  k_i = e_i W_K,  v_i = e_i W_V                                    [k] each
    (normalize: q_i <- q_i / sqrt(|q_i|^2 + eps), the same for k_i; eps = 1e-6)
    beta_i = beta_max sigmoid(e_i w_beta + b_beta)      (beta "input", DeltaNet)     scalar
           = beta_max sigmoid(a_h)                       (beta "constant", one per head)
    S_i = S_{i-1} - beta_i (S_{i-1} k_i - v_i) k_i^T                                [k, k]
        = S_{i-1} (I - beta_i k_i k_i^T) + beta_i v_i k_i^T          (S_0 = 0; value index first)
    out_i = sum_h (S_i q_i) W_O                                                     [D]

Each token takes one gradient step (LMS, Widrow-Hoff) with step beta_i on the fast weights' loss
1/2 |S k_i - v_i|^2: the state is an online-SGD learner of the map k -> v. A query reads the
state the context before it left (`icl.models.sequence`). beta_max = 1 is DeltaNet's beta in
(0, 1); beta_max = 2 is its negative-eigenvalue variant (Grazzi et al. 2024, flash-linear-
attention's `allow_neg_eigval`). The L2 normalisation is flash-linear-attention's
(x / sqrt(|x|^2 + 1e-6)), so |k| < 1 and I - beta k k^T is a contraction for beta < 2. Left out
of DeltaNet's layer: the short convolutions, the SiLU on q, k, v and the output RMSNorm (the
scaffold's blocks supply LayerNorm and a GELU MLP).

Three ways to compute the states (`scan`), equal in exact arithmetic (tests: float64):

  "sequential": `lax.scan` over tokens, the delta rule as written.
  "parallel":   `lax.associative_scan` over the affine maps S -> S A_i + B_i,
                A_i = I - beta_i k_i k_i^T, B_i = beta_i v_i k_i^T, composed as
                (A1, B1) . (A2, B2) = (A1 A2, B1 A2 + B2); O(T k^3) work, O(log T) depth.
  "chunked":    DeltaNet's chunkwise form. Split the tokens into chunks of C (`chunk`; T is
                padded with beta = 0 tokens, which leave the state unchanged). Within a chunk
                starting from state S_0, the WY / UT representation (Yang et al. 2024, Sec. 3)
                    prod_{j<=i} (I - beta_j k_j k_j^T) = I - sum_{j<=i} w_j k_j^T,
                    w_i = beta_i (k_i - sum_{j<i} (k_j . k_i) w_j),
                    u_i = beta_i (v_i - sum_{j<i} (k_j . k_i) u_j),
                i.e. (I + tril(diag(beta) K K^T, -1)) [W, U] = diag(beta) [K, V], one unit lower
                triangular solve per chunk (`jax.scipy.linalg.solve_triangular`), gives every
                state of the chunk at once:
                    S_i = S_0 + sum_{j<=i} (u_j - S_0 w_j) k_j^T.
                A `lax.scan` over the T / C chunks carries S_0; the per-token states are then
                S_0 plus a cumulative sum within each chunk, O(T k^2 + T C k) work.

The default is "sequential": at in-context lengths (T <= ~100) it is the fastest on a CPU, and
XLA:CPU took over 5 minutes to compile the chunked form's training step for a 2-layer, width-32
model (its triangular solves under the seeds' vmap and the gradient; measured 2026-12-07), against
7 s for the sequential one (15 ms a step at batch 64, T = 21). "chunked" is the form to try on
an accelerator at long T.

The scaffold's queries read the state at any prefix, so every form materialises S_1..S_T,
[B, T, H, k, k] (DeltaNet's kernels keep only the chunk boundaries: a memory saving this
interface cannot use).

Construction (`online_sgd_model`): with raw tokens e = [x, y] (D = d + 1), one head, k = D,
normalize off, beta "constant" with beta_max = 2 lr and a = 0 (sigmoid(0) = 1/2, so beta = lr
exactly, for any lr > 0), W_K = W_Q = [[I, 0], [0, 0]], W_V = [[0, 0], [0, 1]],
W_O = -[[0, 0], [0, 1]]: keys are [x_i, 0], values [0, y_i], and the label row w of S follows

    w_i = w_{i-1} - lr (w_{i-1} . x_i - y_i) x_i,     w_0 = 0,

`solvers.online_sgd` exactly (the other rows stay 0). The query [x_t, 0] reads S_{t-1} q =
[0, w_{t-1} . x_t], W_O writes minus that into its label slot, and the prediction
y_hat = -q[..., -1] = w_{t-1} . x_t: position t is online SGD, in order, over the t - 1 pairs
before it (`verify_errors`, `icl verify`, tests/test_deltanet.py; float64).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from icl.checks import check_int
from icl.models.registry import register
from icl.models.sequence import Mixer, SequenceConfig, SequenceModel, param
from icl.solvers.online import online_sgd

SCANS = ("chunked", "parallel", "sequential")
BETAS = ("input", "constant")
L2_EPS = 1e-6  # flash-linear-attention's l2norm epsilon

SIZES: dict[str, dict] = {
    "cpu": dict(n_layers=2, width=32, n_heads=2, key_size=16, mlp=True, layernorm=True),
    "small": dict(n_layers=4, width=128, n_heads=4, key_size=32, mlp=True, layernorm=True),
    # DeltaNet's 340M model (flame configs/delta_net_340M.json: 24 layers, hidden 1024, 8 heads
    # of 128; chunks of 64 as its kernels), with this scaffold's blocks (module docstring).
    "paper": dict(n_layers=24, width=1024, n_heads=8, key_size=128, mlp=True, layernorm=True, chunk=64),
    # one block's weights applied 12 times (`shared`): a looped delta-rule model
    "looped": dict(n_layers=12, width=64, n_heads=4, key_size=16, mlp=True, layernorm=True, shared=True),
}


@register("deltanet")
@dataclasses.dataclass(frozen=True)
class DeltaNetConfig(SequenceConfig):
    """Delta-rule layers (DeltaNet); the shared fields are `SequenceConfig`'s.

    Attributes:
      n_heads: H heads.
      key_size: k per head, keys and values (0 = the token width D).
      normalize: L2-normalise q and k (DeltaNet); False for the construction.
      beta: "input" (beta_i from the token, DeltaNet) or "constant" (one learned beta per head).
      beta_max: beta = beta_max * sigmoid(.): 1 = DeltaNet's (0, 1), 2 = negative eigenvalues.
      chunk: C, the chunk size of scan "chunked".
    """

    SIZES: ClassVar[dict[str, dict]] = SIZES

    SCANS: ClassVar[tuple[str, ...]] = SCANS

    scan: str = "sequential"
    n_heads: int = 1
    key_size: int = 0
    normalize: bool = True
    beta: str = "input"
    beta_max: float = 1.0
    chunk: int = 16

    def __post_init__(self):
        super().__post_init__()
        check_int(self.family, 1, n_heads=self.n_heads, chunk=self.chunk)
        check_int(self.family, 0, key_size=self.key_size)
        if not isinstance(self.normalize, bool):
            raise ValueError(f"{self.family}: normalize must be true or false, got {self.normalize!r}")
        if self.beta not in BETAS:
            raise ValueError(f"{self.family}: beta must be one of {', '.join(BETAS)}, got {self.beta!r}")
        if isinstance(self.beta_max, bool) or not isinstance(self.beta_max, (int, float)) or not (
            math.isfinite(self.beta_max) and self.beta_max > 0
        ):
            raise ValueError(f"{self.family}: beta_max must be a finite number > 0, got {self.beta_max!r}")


    def mixer(self, dim: int, rngs: nnx.Rngs) -> DeltaRule:
        return DeltaRule(self, dim, rngs=rngs)


# -- the three state recurrences: k, v [B, T, H, k], beta [B, T, H] -> S_1..S_T [B, T, H, k, k] --
def sequential_states(k: jax.Array, v: jax.Array, beta: jax.Array) -> jax.Array:
    """The delta rule one token at a time: S_i = S_{i-1} - beta_i (S_{i-1} k_i - v_i) k_i^T."""

    def step(state, token):  # state [B, H, k, k]
        k_i, v_i, beta_i = token  # [B, H, k], [B, H, k], [B, H]
        error = jnp.einsum("bhvk,bhk->bhv", state, k_i) - v_i
        state = state - jnp.einsum("bhv,bhk->bhvk", beta_i[..., None] * error, k_i)
        return state, state

    b, _, h, n = k.shape
    _, states = jax.lax.scan(step, jnp.zeros((b, h, n, n), k.dtype), tuple(jnp.moveaxis(a, 1, 0) for a in (k, v, beta)))
    return jnp.moveaxis(states, 0, 1)


def _compose(first, second):
    """(A1, B1) . (A2, B2) = (A1 A2, B1 A2 + B2): S -> S A1 + B1, then S -> S A2 + B2."""
    a1, b1 = first
    a2, b2 = second
    return a1 @ a2, b1 @ a2 + b2


def parallel_states(k: jax.Array, v: jax.Array, beta: jax.Array) -> jax.Array:
    """An associative scan over the affine maps S -> S (I - beta k k^T) + beta v k^T."""
    n = k.shape[-1]
    step = beta[..., None, None]  # [B, T, H, 1, 1]
    decay = jnp.eye(n, dtype=k.dtype)[None, None, None] - step * jnp.einsum("bthi,bthj->bthij", k, k)
    write = step * jnp.einsum("bthv,bthk->bthvk", v, k)
    return jax.lax.associative_scan(_compose, (decay, write), axis=1)[1]


def wy_representation(k: jax.Array, v: jax.Array, beta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per chunk, k, v [..., C, k], beta [..., C] -> (W, U) [..., C, k]: the unit lower triangular
    solve (I + tril(diag(beta) K K^T, -1)) [W, U] = diag(beta) [K, V] (module docstring)."""
    c = k.shape[-2]
    strictly_lower = jnp.tril(beta[..., :, None] * jnp.einsum("...ik,...jk->...ij", k, k), -1)
    system = strictly_lower + jnp.broadcast_to(jnp.eye(c, dtype=k.dtype), strictly_lower.shape)
    rhs = beta[..., None] * jnp.concatenate([k, v], axis=-1)
    wu = jax.scipy.linalg.solve_triangular(system, rhs, lower=True, unit_diagonal=True)
    return wu[..., : k.shape[-1]], wu[..., k.shape[-1]:]


def chunked_states(k: jax.Array, v: jax.Array, beta: jax.Array, chunk: int) -> jax.Array:
    """DeltaNet's chunkwise form (module docstring): the WY representation within each chunk of
    C = min(chunk, T) tokens, a `lax.scan` over chunks for their starting states, then every
    state S_i = S_0 + sum_{j<=i in the chunk} (u_j - S_0 w_j) k_j^T."""
    b, t, h, n = k.shape
    c = min(chunk, t)
    pad = -t % c
    m = (t + pad) // c

    def by_chunk(a):  # [B, T, H, ...] -> [m, B, H, C, ...], padded with zeros (beta = 0: no write)
        a = jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2))
        a = a.reshape(b, m, c, *a.shape[2:])
        return jnp.moveaxis(jnp.moveaxis(a, 1, 0), 2, 3)

    k_c, v_c, beta_c = by_chunk(k), by_chunk(v), by_chunk(beta)  # [m, B, H, C, k], ..., [m, B, H, C]
    w, u = wy_representation(k_c, v_c, beta_c)

    def across(start, chunk_terms):  # start [B, H, k, k]: the state before this chunk
        w_i, u_i, k_i = chunk_terms  # [B, H, C, k]
        correction = u_i - jnp.einsum("bhvk,bhck->bhcv", start, w_i)  # u_j - S_0 w_j
        return start + jnp.einsum("bhcv,bhck->bhvk", correction, k_i), (start, correction)

    _, (starts, corrections) = jax.lax.scan(across, jnp.zeros((b, h, n, n), k.dtype), (w, u, k_c))
    within = jnp.cumsum(jnp.einsum("mbhcv,mbhck->mbhcvk", corrections, k_c), axis=3)  # [m, B, H, C, k, k]
    states = starts[:, :, :, None] + within
    states = jnp.moveaxis(states, 3, 2).reshape(m, b, c, h, n, n)  # [m, B, C, H, k, k]
    return jnp.moveaxis(states, 0, 1).reshape(b, m * c, h, n, n)[:, :t]


def delta_states(k: jax.Array, v: jax.Array, beta: jax.Array, scan: str, chunk: int = 16) -> jax.Array:
    """S_1..S_T [B, T, H, k, k] of the delta rule from k, v [B, T, H, k] and beta [B, T, H]."""
    if scan == "sequential":
        return sequential_states(k, v, beta)
    if scan == "parallel":
        return parallel_states(k, v, beta)
    if scan == "chunked":
        return chunked_states(k, v, beta, chunk)
    raise ValueError(f"deltanet: scan must be one of {', '.join(SCANS)}, got {scan!r}")


def l2_normalize(x: jax.Array) -> jax.Array:
    """x / sqrt(|x|^2 + eps) along the last axis (flash-linear-attention's l2norm)."""
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + L2_EPS)


class DeltaRule(Mixer):
    """One delta-rule layer; parameters query, key, value [H, D, k], out [H, k, D]; beta
    "constant": beta_logit [H]; "input": beta_kernel [D, H], beta_bias [H] (beta_max / 2 at init,
    as DeltaNet's bias-free beta projection)."""

    def __init__(self, config: DeltaNetConfig, dim: int, *, rngs: nnx.Rngs):
        self.config = config
        k, h, s = config.key_size or dim, config.n_heads, config.init_scale
        self.query, self.key, self.value = (param(rngs, (h, dim, k), dim, s) for _ in range(3))
        self.out = param(rngs, (h, k, dim), k, s)
        if config.beta == "constant":
            self.beta_logit = nnx.Param(jnp.zeros((h,), jnp.result_type(float)))
        else:
            self.beta_kernel = param(rngs, (dim, h), dim, s)
            self.beta_bias = nnx.Param(jnp.zeros((h,), jnp.result_type(float)))

    def _project(self, e: jax.Array, weight: nnx.Param, normalize: bool) -> jax.Array:
        """[B, T, D] -> [B, T, H, k]."""
        out = jnp.einsum("btD,hDk->bthk", e, weight[...])
        return l2_normalize(out) if normalize else out

    def step_size(self, e: jax.Array) -> jax.Array:
        """beta_i per token and head, [B, T, H]."""
        if self.config.beta == "constant":
            logit = jnp.broadcast_to(self.beta_logit[...], e.shape[:-1] + (self.config.n_heads,))
        else:
            logit = jnp.einsum("btD,Dh->bth", e, self.beta_kernel[...]) + self.beta_bias[...][None, None]
        return self.config.beta_max * jax.nn.sigmoid(logit)

    def states(self, e: jax.Array) -> jax.Array:
        """S_1..S_T, [B, T, H, k, k] (value index first)."""
        k = self._project(e, self.key, self.config.normalize)
        v = self._project(e, self.value, False)
        return delta_states(k, v, self.step_size(e), self.config.scan, self.config.chunk)

    def read(self, states: jax.Array, e: jax.Array) -> jax.Array:
        q = self._project(e, self.query, self.config.normalize)
        return jnp.einsum("bthvk,bthk,hvD->btD", states, q, self.out[...])


def online_sgd_model(d: int, lr: float, scan: str = "sequential", chunk: int = 16, dtype=jnp.float64) -> SequenceModel:
    """The construction of the module docstring: one layer on raw tokens whose prediction at
    position t is online SGD with step lr over the pairs before t (beta_max = 2 lr, logit 0:
    beta = lr exactly, any lr > 0)."""
    check_int("deltanet.online_sgd_model", 1, d=d)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"deltanet.online_sgd_model: lr must be a finite number > 0, got {lr!r}")
    config = DeltaNetConfig(normalize=False, beta="constant", beta_max=2.0 * lr, scan=scan, chunk=chunk)
    model = config.build(d, 0)
    mixer = model.blocks[0].mixer
    feature = jnp.diag(jnp.zeros(d + 1, dtype).at[:-1].set(1.0))[None]  # [[I, 0], [0, 0]]
    label = jnp.diag(jnp.zeros(d + 1, dtype).at[-1].set(1.0))[None]  # [[0, 0], [0, 1]]
    mixer.query[...], mixer.key[...] = feature, feature
    mixer.value[...], mixer.out[...] = label, -label
    mixer.beta_logit[...] = jnp.zeros((1,), dtype)
    return model


def online_sgd_on_prefixes(x: jax.Array, y: jax.Array, lr: float) -> jax.Array:
    """The learner on every prefix: x [B, T, d], y [B, T] -> [B, T], position t (0-based) from
    `solvers.online_sgd` over the first t pairs (a mask on the whole sequence: one shape, one
    compilation; 0 at t = 0)."""
    t = x.shape[1]
    present = (jnp.arange(t)[None, :] < jnp.arange(t)[:, None]).astype(x.dtype)  # [T (position), T (pair)]
    return jnp.stack([online_sgd(x, y, x[:, i], lr=lr, mask=jnp.broadcast_to(present[i], y.shape))
                      for i in range(t)], axis=1)


def verify_errors(batch) -> dict[str, float]:
    """The construction against online SGD on every prefix of [context, queries] (B x (N + M)
    positions), every scan, at the normalised-LMS step lr = 1 / mean |x_i|^2 of the batch's
    context (`solvers.online.task_lr`'s rule): the max abs error."""
    x, y = batch.sequence()
    lr = 1.0 / float(jnp.mean(jnp.sum(batch.x_ctx * batch.x_ctx, axis=-1)))
    want = online_sgd_on_prefixes(x, y, lr)
    got = {scan: online_sgd_model(x.shape[-1], lr, scan=scan, dtype=x.dtype).predict_prefixes(x, y) for scan in SCANS}
    error = max(float(jnp.max(jnp.abs(prediction - want))) for prediction in got.values())
    return {"delta_rule_online_sgd_max_abs_err": error}
