"""Claim 21: one layer of linear self-attention trained WITH chain of thought learns multi-step
gradient descent on in-context weight prediction, while the same layer without chain of thought
is stuck at one GD step (Huang, Wang & Lee, ICLR 2025, arXiv 2502.21212).

**Task (in-context weight prediction).** x_i ~ N(0, I_d), w* ~ N(0, tau^2 I_d), y_i = w*^T x_i
(noiseless), i = 1..n. The model is shown (x_i, y_i) and must output w* itself (not a label).
S = X^T X / n; the in-context least-squares loss L(w) = 1/(2n) |X w - y|^2 has gradient
grad L(w) = (1/n) X^T (X w - y) = S w - X^T y / n. GD: w_{k+1} = w_k - eta grad L(w_k), w_0 = 0.

**Tokens** (width D = 2d + 2; slots [x (d) | y (1) | w (d) | c (1)]):
  context token i   z_i = [x_i, y_i, 0, 0]
  chain token k     u_k = [0, 0, w_k, 1]       (k = 0, 1, ...; u_0 carries w_0 = 0)
The prompt is the n context tokens followed by u_0; with chain of thought each estimate w_{k+1}
the model emits is appended as u_{k+1} and fed back (autoregressively). The constant slot c lets
the layer form the y_i x_i term of the gradient (a product of one context and one chain token).

**Model** (one layer, merged weights, as the paper's W^{KQ}, W^{PV}): at a chain position q, with
every token t <= q as a key (causal; context and earlier chain tokens alike),
    f(z_q) = z_q + (1/n) PV sum_{t <= q} z_t (z_t^T KQ z_q) = z_q + (1/n) PV C_q KQ z_q,
C_q = sum_{t <= q} z_t z_t^T; the next estimate is the w slot of f(u_k). KQ, PV are unconstrained
D x D matrices (2 D^2 parameters). `next_estimates` evaluates it at every chain position at once
(teacher forcing), `rollout` autoregressively from w_0 = 0.

**Exact multi-step GD** (`gd_params`): KQ[x, w] = I, KQ[y, c] = -1, PV[w, x] = -eta I, all else 0.
Then z_t^T KQ u_k = x_t^T w_k - y_t on context tokens and 0 on chain tokens (their x and y slots
are 0), so f(u_k)'s w slot is w_k - (eta / n) sum_i x_i (x_i^T w_k - y_i) = one GD step: K chain
steps are K GD steps (tested to ~1e-12 in float64).

**Without chain of thought** the layer sees the prompt once and its one output (the w slot of
f(u_0)) is trained to be w*. Its output is (1/n) sum_t (A x_t + alpha y_t)(a^T x_t + b y_t) + const:
terms even in y (the X-only and y^2 terms) are uncorrelated with the odd part under the symmetry
(w*, y) -> (-w*, -y), so at the optimum they vanish and w_hat = Gamma X^T y / n, one step of
preconditioned GD; by isotropy Gamma = gamma I with, from E[S^2] = (n + d + 1)/n I,
    E|gamma S w - w|^2 / |w|^2 = 1 - 2 gamma + gamma^2 (n + d + 1) / n     (`one_step_error`),
minimised at gamma* = n / (n + d + 1) with relative error (d + 1) / (n + d + 1) (`no_cot_optimum`):
bounded away from 0 for n ~ d (the paper's Theta(d^2 / n) for |w*|^2 ~ d). K steps of GD with a
stable eta shrink the error of each eigen-direction of S by (1 - eta lambda)^{2K} -> 0.

**Chain-of-thought training** (`cot_loss`, the paper's CoT objective as we read it): teacher
forcing on the GD trajectory, the chain tokens of the prompt being the GD iterates w_0..w_{K-1}
(eta fixed, `Setting.lr`), the targets w_1..w_K; loss = mean over tasks and steps of
|w_hat_{k+1} - w_{k+1}|^2. Without chain of thought (`no_cot_loss`): |w_hat - w*|^2.

**A contrast, not the paper's** (`outcome_loss`, objective "cot_outcome"): the same chain
supervised by the answer only, |w_k - w*|^2 at every step k = 1..K of the layer's own rollout,
back-propagated through the chain; no GD iterate is shown. Whether GD emerges without the GD
trajectory as targets is what it asks.

**Measurements** (`evaluate`, on held-out tasks): the relative error
|w_k - w*|^2 / |w*|^2 (summed over tasks, then divided) of the trained CoT layer run
autoregressively (its own outputs fed back) for k = 0..2K (twice the steps it was trained on),
against GD with the same eta and the no-CoT layer; per step the fitted step size
eta_k = <Delta_k, g_k> / |g_k|^2 of its update Delta_k = w_{k+1} - w_k on the GD direction
g_k = -grad L(w_k) at its own iterate, the mean cosine of Delta_k and g_k, and the share of
|Delta_k|^2 not explained by eta_k g_k (`step_fit`); the no-CoT layer's fitted gamma.

**Verdict** (`verdict`): the rule in its docstring, fixed before the full run.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from icl.precision import at_dtype, highest

# verdict thresholds (fixed before the full run; see `verdict`)
NO_COT_BAND = (0.9, 1.15)  # no-CoT error / the one-step optimum (d + 1)/(n + d + 1): "stuck at one GD step"
RECOVERY_VS_NO_COT = 0.1  # CoT error at step K <= this x the no-CoT layer's
GD_FACTOR, GD_ABS = 2.0, 1e-3  # ... and <= GD_FACTOR x K-step GD's (same eta) + GD_ABS
ETA_TOL = 0.1  # fitted step size within +-10 % of eta at every trained step
COS_MIN = 0.99  # mean cosine of each trained step's update to the GD update
EXTRAPOLATION = 0.5  # error at step 2K <= this x the error at step K


@dataclasses.dataclass(frozen=True)
class Setting:
    """The task and the chain: d, n context points, K trained chain steps of GD at rate lr (eta)."""

    d: int = 5
    n_ctx: int = 30
    steps: int = 8
    lr: float = 0.6
    weight_std: float = 1.0

    @property
    def width(self) -> int:
        return 2 * self.d + 2


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """Adam (b2 0.99, global-norm clip) with cosine decay from `lr`, fresh tasks every step, weights
    N(0, init_scale^2); the held-out objective logged every `log_every` steps."""

    steps: int = 3000
    batch_size: int = 512
    lr: float = 3e-3
    init_scale: float = 0.05
    grad_clip: float = 1.0
    log_every: int = 100
    eval_tasks: int = 2048


def slots(d: int) -> dict:
    """Token slots: x [0, d), y d, w [d + 1, 2d + 1), c 2d + 1."""
    return {"x": slice(0, d), "y": d, "w": slice(d + 1, 2 * d + 1), "c": 2 * d + 1}


def sample(key, setting: Setting, batch_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(x [B, n, d], y [B, n], w* [B, d]): x ~ N(0, I), w* ~ N(0, tau^2 I), y = X w* (noiseless)."""
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (batch_size, setting.n_ctx, setting.d))
    w = setting.weight_std * jax.random.normal(kw, (batch_size, setting.d))
    return x, jnp.einsum("bnd,bd->bn", x, w), w


@highest
def grad_ls(x, y, w) -> jax.Array:
    """The in-context least-squares gradient (1/n) X^T (X w - y), for w [B, d] or [B, k, d]."""
    n = x.shape[1]
    if w.ndim == 2:
        return jnp.einsum("bnd,bn->bd", x, jnp.einsum("bnd,bd->bn", x, w) - y) / n
    return jnp.einsum("bnd,bkn->bkd", x, jnp.einsum("bnd,bkd->bkn", x, w) - y[:, None, :]) / n


@highest
def gd_path(x, y, lr, steps: int, w0=None) -> jax.Array:
    """w_0..w_steps of GD on L(w) = 1/(2n) |X w - y|^2 from w0 (default 0): [B, steps + 1, d]."""
    w0 = jnp.zeros(x.shape[::2], x.dtype) if w0 is None else jnp.broadcast_to(jnp.asarray(w0, x.dtype), x.shape[::2])

    def step(w, _):
        w_next = w - lr * grad_ls(x, y, w)
        return w_next, w_next

    _, ws = jax.lax.scan(step, w0, None, length=steps)
    return jnp.concatenate([w0[:, None], jnp.moveaxis(ws, 0, 1)], axis=1)


def context_tokens(x, y) -> jax.Array:
    """[B, n, D]: z_i = [x_i, y_i, 0, 0]."""
    b, n, d = x.shape
    return jnp.concatenate([x, y[..., None], jnp.zeros((b, n, d + 1), x.dtype)], axis=-1)


def chain_tokens(w) -> jax.Array:
    """[..., D]: u = [0, 0, w, 1] for w [..., d]."""
    d = w.shape[-1]
    lead = w.shape[:-1]
    return jnp.concatenate([jnp.zeros((*lead, d + 1), w.dtype), w, jnp.ones((*lead, 1), w.dtype)], axis=-1)


def context_moment(x, y) -> jax.Array:
    """sum_i z_i z_i^T over the context tokens: [B, D, D]."""
    z = context_tokens(x, y)
    return jnp.einsum("bnd,bne->bde", z, z)


def next_estimates(params: dict, x, y, ws) -> jax.Array:
    """Teacher forcing: the layer's next estimate at every chain position of the prompt
    [context, u(ws[:, 0]), ..., u(ws[:, k-1])]: [B, k, d] (the estimate after ws[:, j] attends to
    the context and to chain tokens 0..j)."""
    n, d = x.shape[1], x.shape[2]
    u = chain_tokens(ws)  # [B, k, D]
    v = jnp.einsum("ef,bkf->bke", params["kq"], u)  # KQ u_j
    a = jnp.einsum("bef,bkf->bke", context_moment(x, y), v)  # C_ctx KQ u_j
    s = jnp.einsum("bjf,bkf->bkj", u, v)  # u_j'^T KQ u_j
    k = ws.shape[1]
    s = s * jnp.tril(jnp.ones((k, k), s.dtype))[None]  # causal: j' <= j
    a = a + jnp.einsum("bkj,bje->bke", s, u)
    out = jnp.einsum("ef,bkf->bke", params["pv"], a) / n
    return ws + out[..., slots(d)["w"]]


def rollout(params: dict, x, y, steps: int, w0=None) -> jax.Array:
    """The layer run autoregressively from w0 (default 0), each estimate appended as a chain token
    and fed back: [B, steps + 1, d] (w_0, w_1, ..., w_steps)."""
    n, d = x.shape[1], x.shape[2]
    w0 = jnp.zeros(x.shape[::2], x.dtype) if w0 is None else jnp.broadcast_to(jnp.asarray(w0, x.dtype), x.shape[::2])
    w_slot = slots(d)["w"]

    def step(carry, _):
        w, c = carry
        u = chain_tokens(w)
        c = c + jnp.einsum("bd,be->bde", u, u)
        out = jnp.einsum("ef,bfg,gh,bh->be", params["pv"], c, params["kq"], u) / n
        w_next = w + out[:, w_slot]
        return (w_next, c), w_next

    _, ws = jax.lax.scan(step, (w0, context_moment(x, y)), None, length=steps)
    return jnp.concatenate([w0[:, None], jnp.moveaxis(ws, 0, 1)], axis=1)


def gd_params(d: int, lr: float, dtype=None) -> dict:
    """The exact construction: each chain step is one GD step at rate lr (module docstring)."""
    size = 2 * d + 2
    s = slots(d)
    kq, pv = np.zeros((size, size)), np.zeros((size, size))
    kq[s["x"], s["w"]] = np.eye(d)
    kq[s["y"], s["c"]] = -1.0
    pv[s["w"], s["x"]] = -lr * np.eye(d)
    dtype = dtype or jnp.zeros(()).dtype
    return {"kq": jnp.asarray(kq, dtype), "pv": jnp.asarray(pv, dtype)}


def one_step_error(d: int, n: int, lr) -> float:
    """E|w_1 - w*|^2 / |w*|^2 of one GD step at rate lr from 0 (x ~ N(0, I), noiseless)."""
    return 1.0 - 2.0 * lr + lr**2 * (n + d + 1) / n


def no_cot_optimum(d: int, n: int) -> tuple[float, float]:
    """(gamma*, relative error) of the best one-layer predictor without chain of thought: one GD
    step at gamma* = n / (n + d + 1), error (d + 1) / (n + d + 1)."""
    return n / (n + d + 1), (d + 1) / (n + d + 1)


def relative_error(w_hat, w_star) -> np.ndarray:
    """sum_tasks |w_hat - w*|^2 / sum_tasks |w*|^2, per step for w_hat [B, k, d] (or one number)."""
    w_hat, w_star = np.asarray(w_hat, dtype=np.float64), np.asarray(w_star, dtype=np.float64)
    if w_hat.ndim == 3:
        return ((w_hat - w_star[:, None]) ** 2).sum((0, 2)) / (w_star**2).sum()
    return np.asarray(((w_hat - w_star) ** 2).sum() / (w_star**2).sum())


def step_fit(path, x, y) -> dict:
    """For each step k of a path [B, K + 1, d]: the fitted step size eta_k = <Delta, g> / |g|^2
    (pooled over tasks) of the update Delta = w_{k+1} - w_k on the GD direction g = -grad L(w_k),
    the mean over tasks of cos(Delta, g), and the unexplained share |Delta - eta_k g|^2 / |Delta|^2
    (pooled): lists of K."""
    path = jnp.asarray(path)
    delta = np.asarray(path[:, 1:] - path[:, :-1], dtype=np.float64)
    g = -np.asarray(grad_ls(jnp.asarray(x), jnp.asarray(y), path[:, :-1]), dtype=np.float64)
    eta = (delta * g).sum((0, 2)) / (g * g).sum((0, 2))
    cos = ((delta * g).sum(-1) / np.maximum(np.linalg.norm(delta, axis=-1) * np.linalg.norm(g, axis=-1), 1e-300)).mean(0)
    resid = ((delta - eta[None, :, None] * g) ** 2).sum((0, 2)) / np.maximum((delta**2).sum((0, 2)), 1e-300)
    return {"eta": eta.tolist(), "cos": cos.tolist(), "unexplained": resid.tolist()}


def one_step_fit(w_hat, x, y) -> dict:
    """The no-CoT output against one GD step from 0: gamma = <w_hat, h> / |h|^2 with h = X^T y / n
    (pooled), mean cos(w_hat, h), unexplained share."""
    h = np.asarray(jnp.einsum("bnd,bn->bd", x, y) / x.shape[1], dtype=np.float64)
    w_hat = np.asarray(w_hat, dtype=np.float64)
    gamma = float((w_hat * h).sum() / (h * h).sum())
    cos = float(((w_hat * h).sum(-1) / np.maximum(np.linalg.norm(w_hat, axis=-1) * np.linalg.norm(h, axis=-1), 1e-300)).mean())
    return {"gamma": gamma, "cos": cos, "unexplained": float(((w_hat - gamma * h) ** 2).sum() / (w_hat**2).sum())}


def cot_loss(params: dict, x, y, setting: Setting) -> jax.Array:
    """Teacher-forced chain-of-thought loss on the GD trajectory (eta = setting.lr): mean over tasks
    and the K steps of |w_hat_{k+1} - w_{k+1}^GD|^2, the prompt's chain tokens being w_0..w_{K-1}^GD."""
    path = jax.lax.stop_gradient(gd_path(x, y, setting.lr, setting.steps))
    pred = next_estimates(params, x, y, path[:, :-1])
    return jnp.mean(jnp.sum((pred - path[:, 1:]) ** 2, -1))


def no_cot_loss(params: dict, x, y, w_star) -> jax.Array:
    """Without chain of thought: mean over tasks of |w_hat - w*|^2, w_hat the one output (from w_0 = 0)."""
    pred = next_estimates(params, x, y, jnp.zeros_like(w_star)[:, None])[:, 0]
    return jnp.mean(jnp.sum((pred - w_star) ** 2, -1))


def outcome_loss(params: dict, x, y, w_star, setting: Setting) -> jax.Array:
    """Chain of thought supervised by the answer only (not the paper's objective; a contrast): the
    layer run autoregressively for K steps from w_0 = 0, loss = mean over tasks and steps k = 1..K
    of |w_k - w*|^2, back-propagated through the whole chain (no GD iterates shown)."""
    path = rollout(params, x, y, setting.steps)
    return jnp.mean(jnp.sum((path[:, 1:] - w_star[:, None]) ** 2, -1))


OBJECTIVES = ("cot", "no_cot", "cot_outcome")


def objective(name: str, setting: Setting):
    """loss(params, (x, y, w*)) of the objective `name` (`OBJECTIVES`)."""
    if name == "cot":
        return lambda p, batch: cot_loss(p, batch[0], batch[1], setting)
    if name == "no_cot":
        return lambda p, batch: no_cot_loss(p, batch[0], batch[1], batch[2])
    if name == "cot_outcome":
        return lambda p, batch: outcome_loss(p, batch[0], batch[1], batch[2], setting)
    raise ValueError(f"chain_of_thought: objective must be one of {OBJECTIVES}, got {name!r}")


def init_params(key, setting: Setting, scale: float) -> dict:
    kq, pv = jax.random.split(key)
    shape = (setting.width, setting.width)
    return {"kq": scale * jax.random.normal(kq, shape), "pv": scale * jax.random.normal(pv, shape)}


def train(setting: Setting, spec: TrainSpec, name: str, seed: int, dtype: str = "float32") -> dict:
    """Train one layer on objective `name` from seed `seed` (init key fold 0, data key fold 1, the
    held-out evaluation tasks key fold 2): {"params" (numpy), "steps", "loss" (held-out objective
    at each log step, step 0 included), "train_loss" (mean over each log interval), "wall_s",
    "finite"}. Stops at the first non-finite chunk, keeping the last finite parameters."""
    if spec.steps % spec.log_every:
        raise ValueError(f"chain_of_thought.train: steps ({spec.steps}) must be a multiple of log_every ({spec.log_every})")
    with at_dtype(dtype):
        root = jax.random.key(seed)
        params = init_params(jax.random.fold_in(root, 0), setting, spec.init_scale)
        data_key, eval_key = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)
        loss_fn = objective(name, setting)
        schedule = optax.cosine_decay_schedule(spec.lr, spec.steps)
        opt = optax.chain(optax.clip_by_global_norm(spec.grad_clip), optax.adam(schedule, b2=0.99))
        state = opt.init(params)
        held_out = sample(eval_key, setting, spec.eval_tasks)

        @jax.jit
        def chunk(params, state, start):
            def step(carry, i):
                p, s = carry
                batch = sample(jax.random.fold_in(data_key, i), setting, spec.batch_size)
                loss, g = jax.value_and_grad(loss_fn)(p, batch)
                updates, s = opt.update(g, s, p)
                return (optax.apply_updates(p, updates), s), loss

            (params, state), losses = jax.lax.scan(step, (params, state), start + jnp.arange(spec.log_every))
            return params, state, jnp.mean(losses)

        evaluate_loss = jax.jit(highest(loss_fn))
        steps, held, train_losses, finite = [0], [float(evaluate_loss(params, held_out))], [], True
        started = time.perf_counter()
        for start in range(0, spec.steps, spec.log_every):
            new_params, new_state, mean_loss = chunk(params, state, start)
            value = float(evaluate_loss(new_params, held_out))
            if not (np.isfinite(float(mean_loss)) and np.isfinite(value)):
                finite = False
                break
            params, state = new_params, new_state
            steps.append(start + spec.log_every)
            held.append(value)
            train_losses.append(float(mean_loss))
        wall = time.perf_counter() - started
        return {"params": {k: np.asarray(v) for k, v in params.items()}, "steps": steps, "loss": held,
                "train_loss": train_losses, "wall_s": wall, "finite": finite}


def evaluate(setting: Setting, cot_params: dict, no_cot_params: dict | None, key, n_tasks: int,
             extra_factor: int = 2) -> dict:
    """On `n_tasks` held-out tasks from `key` (float64 numbers from the model's dtype outputs):
      "cot_error"       relative error of the CoT layer run autoregressively, steps 0..extra_factor K
      "gd_error"        GD at the same eta, steps 0..extra_factor K
      "cot_teacher"     per trained step, |w_hat - w^GD_{k+1}|^2 / |w^GD_{k+1} - w^GD_k|^2 (pooled)
                        under teacher forcing on the GD trajectory (the training objective's fit)
      "cot_steps"       `step_fit` of the autoregressive path (every step, beyond K too)
      "no_cot_error"    relative error of the no-CoT layer (if given), "no_cot_fit" its `one_step_fit`
      "one_step"        the closed forms: no-CoT optimum (gamma*, error), one GD step at eta
      "least_squares"   relative error of exact least squares (n > d, noiseless: ~0)"""
    x, y, w = sample(key, setting, n_tasks)
    total = extra_factor * setting.steps
    path = jax.jit(rollout, static_argnums=3)(jax.tree.map(jnp.asarray, cot_params), x, y, total)
    gd = gd_path(x, y, setting.lr, total)
    gd_k = gd[:, : setting.steps + 1]
    teacher = next_estimates(jax.tree.map(jnp.asarray, cot_params), x, y, gd_k[:, :-1])
    inc = np.asarray(gd_k[:, 1:] - gd_k[:, :-1], dtype=np.float64)
    miss = np.asarray(teacher, dtype=np.float64) - np.asarray(gd_k[:, 1:], dtype=np.float64)
    teacher_err = (miss**2).sum((0, 2)) / (inc**2).sum((0, 2))
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w_ls = np.linalg.solve(np.einsum("bnd,bne->bde", xs, xs), np.einsum("bnd,bn->bd", xs, ys)[..., None])[..., 0]
    gamma, opt_err = no_cot_optimum(setting.d, setting.n_ctx)
    out = {
        "n_tasks": n_tasks,
        "cot_error": relative_error(path, w).tolist(),
        "gd_error": relative_error(gd, w).tolist(),
        "cot_teacher": teacher_err.tolist(),
        "cot_steps": step_fit(path, x, y),
        "cot_finite": bool(np.isfinite(np.asarray(path)).all()),
        "one_step": {"gamma_star": gamma, "no_cot_optimum_error": opt_err,
                     "gd_one_step_error": one_step_error(setting.d, setting.n_ctx, setting.lr)},
        "least_squares": float(relative_error(w_ls, w)),
    }
    if no_cot_params is not None:
        w_hat = rollout(jax.tree.map(jnp.asarray, no_cot_params), x, y, 1)[:, 1]
        out["no_cot_error"] = float(relative_error(w_hat, w))
        out["no_cot_fit"] = one_step_fit(w_hat, x, y)
    return out


def seed_checks(setting: Setting, ev: dict) -> dict:
    """The four parts of the rule for one seed's `evaluate` record (see `verdict`)."""
    k = setting.steps
    opt = ev["one_step"]["no_cot_optimum_error"]
    cot_k, cot_2k, gd_k = ev["cot_error"][k], ev["cot_error"][2 * k], ev["gd_error"][k]
    no_cot = ev["no_cot_error"]
    etas, coss = ev["cot_steps"]["eta"][:k], ev["cot_steps"]["cos"][:k]
    return {
        "no_cot_at_one_step": bool(NO_COT_BAND[0] * opt <= no_cot <= NO_COT_BAND[1] * opt),
        "recovers": bool(cot_k <= RECOVERY_VS_NO_COT * no_cot and cot_k <= GD_FACTOR * gd_k + GD_ABS),
        "matches_gd": bool(all(abs(e / setting.lr - 1) <= ETA_TOL for e in etas) and all(c >= COS_MIN for c in coss)),
        "keeps_descending": bool(ev["cot_finite"] and cot_2k <= EXTRAPOLATION * cot_k),
    }


def verdict(checks: list[dict]) -> str:
    """The rule, fixed before the full run, on each seed's held-out numbers (`seed_checks`):
      no_cot_at_one_step  the no-CoT layer's relative error is within [0.9, 1.15] x the one-step
                          optimum (d + 1)/(n + d + 1) (it learned one GD step and no better);
      recovers            the CoT layer run autoregressively reaches, at step K, a relative error
                          <= 0.1 x the no-CoT layer's and <= 2 x (K-step GD at the same eta) + 1e-3;
      matches_gd          at every one of its K trained steps, its fitted step size is within
                          +-10 % of eta and the mean cosine of its update to the GD update >= 0.99;
      keeps_descending    run to step 2K (twice the trained chain) it stays finite and its error at
                          2K is <= 0.5 x its error at K.
    "held" if all four hold in every seed; "did not hold" if `recovers` fails in a majority of
    seeds; otherwise "held in part"."""
    if sum(c["recovers"] for c in checks) * 2 <= len(checks):
        return "did not hold"
    if all(all(c.values()) for c in checks):
        return "held"
    return "held in part"


def gd_blocks(params: dict, d: int) -> dict:
    """The trained weights read against the construction (only PV's w rows and KQ's w and c
    columns reach the output from a chain token): the rates the two GD products carry,
    eta_xw = -tr(PV[w, x] KQ[x, w]) / d (the S w_k term) and eta_yc = tr(PV[w, x]) KQ[y, c] / d
    (the X^T y / n term), both eta at the construction; and the share of the squared norm of those
    reachable entries outside the construction's blocks (0 at the construction)."""
    kq, pv = np.asarray(params["kq"], dtype=np.float64), np.asarray(params["pv"], dtype=np.float64)
    s = slots(d)
    w_rows = pv[s["w"]]  # [d, D]
    cols = np.r_[np.arange(d + 1, 2 * d + 1), 2 * d + 1]  # w and c columns of KQ
    kq_cols = kq[:, cols]  # [D, d + 1]
    on_pv = np.zeros_like(w_rows, dtype=bool)
    on_pv[:, s["x"]] = True
    on_kq = np.zeros_like(kq_cols, dtype=bool)
    on_kq[s["x"], :d] = True
    on_kq[s["y"], d] = True
    reach = np.sum(w_rows**2) + np.sum(kq_cols**2)
    off = np.sum(w_rows[~on_pv] ** 2) + np.sum(kq_cols[~on_kq] ** 2)
    return {"eta_xw": float(-np.trace(pv[s["w"], s["x"]] @ kq[s["x"], s["w"]]) / d),
            "eta_yc": float(np.trace(pv[s["w"], s["x"]]) * kq[s["y"], s["c"]] / d),
            "off_block_share": float(off / reach) if reach > 0 else float("nan")}
