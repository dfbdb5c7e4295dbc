"""Claim 16: saddle-to-saddle training of linear attention with separate rank-one keys and queries —
one loss drop per principal component of the input covariance, in order of decreasing eigenvalue —
against the one drop of a merged key-query matrix (Zhang, Singh, Latham & Saxe, ICML 2025).

Setting: x ~ N(0, Sigma), Sigma = U diag(lambda) U^T with lambda_1 > ... > lambda_d (eigenvectors
u_i, the columns of U), T = tr Sigma; w ~ N(0, tau^2 I); y = w . x + eps, eps ~ N(0, sigma^2); N
context points X [N, d], S = X^T X. Loss: half the mean squared error at the query (the codebase's).

**The layer's in-context map.** One linear attention layer on a query [x_q, 0] predicts (module
`icl.weights.preconditioner`, summed over heads)
    y_hat = x_q^T Gamma X^T y  +  (terms that vanish at the optimum for Gaussian x),
    Gamma = -sum_h (b_y^h A_xx^h + a_xy^h (b_x^h)^T),   A^h = W_q^h (W_k^h)^T,  B^h = W_v^h W_o^h.
For a head of key size 1, A^h = q_h k_h^T is rank one, so each head's Gamma_h is rank one: a head
can serve one direction. `gammas` computes Gamma_t for every recorded step and seed from the raw
weights (vectorised; equal to `weights.preconditioner`, tested).

**In-context principal component regression (closed forms).** For Gamma diagonal in the
eigenbasis, Gamma = U diag(g) U^T, the expected loss separates over components (Wishart moments
E S = N Sigma, E S A S = N (N + 1) Sigma A Sigma + N tr(A Sigma) Sigma):
    2 L(g) = sigma^2 + sum_i [ tau^2 (N (N + 1) lambda_i^3 + N T lambda_i^2) g_i^2 + sigma^2 N lambda_i^2 g_i^2
                               - 2 tau^2 N lambda_i^2 g_i + tau^2 lambda_i ],
minimised component by component at (`gamma_star`, claim 1's Gamma* in the eigenbasis)
    g_i* = 1 / ((N + 1) lambda_i + T + sigma^2 / tau^2),
where component i is worth tau^2 N lambda_i^2 g_i* of the loss. Regressing on the top k components
only (g_i = g_i* for i <= k, 0 beyond) — in-context PCR with k components — gives (`pcr_losses`)
    L_k = 1/2 [ sigma^2 + tau^2 T - tau^2 N sum_{i<=k} lambda_i^2 g_i* ],
L_0 = the zero predictor's loss, L_d = the optimum of one layer. The paper's saddles are these
points: its loss plateaus sit at L_0 > L_1 > ... > L_d, and the drop from L_{k-1} to L_k is
learning u_k (components with larger lambda give larger gradients, lambda_i^2 at Gamma = 0, so
they are learned first).

**What we measure.** Per recorded step t: the held-out loss L(t), and the projections
p_i(t) = u_i^T Gamma_t u_i (`projections`). Component i is *learned* at the first recorded step
where p_i(t) >= FRAC x g_i* (`learning_steps`; FRAC = 1/2: half the closed-form optimum, which the
trained values reach within a few per cent). The loss curve's *plateaus* and *drops*
(`plateaus`): on the log loss, smoothed by a running median of SMOOTH records, a record is flat
when the log loss changes by less than FLAT_TOL over the WINDOW records centred on it; a plateau
is a run of >= MIN_PLATEAU flat records; consecutive plateaus less than MIN_DROP apart in log loss
are one plateau; a drop is a fall of >= MIN_DROP from one plateau to the next, and a curve that
ends >= MIN_DROP below its last plateau ends in one more (unfinished) drop.

**Why the merged stand-in is not the paper's ATTN_M.** The paper's ATTN_M trains one matrix W_KQ
per head, and with the value's label row v it is a two-layer linear network on the cubic features
z = (1/N) sum_n y_n x_n x_q^T with one output: one mode, one drop. The codebase's LSA has no
merged matrix; key size D gives A = W_q W_k^T, a product of two full-rank D x D matrices, and the
prediction is a product of four factors (W_o, W_v, W_q, W_k) — the paper's ATTN_S with full-rank
R = D. Its components share the scalar factor b_y = (W_v W_o)[y, y], whose growth drags every
direction of A up at once, so they are learned in one drop or close together; but the factored A
could in principle learn its directions one by one, as a deep linear network does.

**Verdict** (`verdict`, decided before the full run): per seed, ATTN_S is *saddle-to-saddle* if
its loss curve has >= d - 1 drops and its components are learned in eigenvalue order (every
component learned, the learning steps strictly increasing with i); the merged model *drops once*
if its curve has exactly one drop. "held" if ATTN_S is saddle-to-saddle in a majority of seeds
and the merged model drops once in a majority; "held in part" if only ATTN_S's half holds; "did
not hold" if ATTN_S is not saddle-to-saddle in a majority of seeds.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import numpy as np

from icl import compare, precision
from icl.analysis import along_training
from icl.config import ExperimentConfig
from icl.trainer import HeldOut, Trainer, heldout_key

FRAC = 0.5  # component i is learned when u_i^T Gamma u_i >= FRAC x g_i*
SMOOTH = 5  # running-median width (records) on the log loss
WINDOW = 8  # records over which a flat record's log loss changes by < FLAT_TOL
FLAT_TOL = 0.03  # natural-log units: 3 %
MIN_PLATEAU = 8  # records in a plateau
MIN_DROP = 0.1  # log-loss fall between plateaus that counts as a drop (10 %; the smallest PCR drop here is 0.29)
TRAJECTORY = "trajectory.npz"


# -- closed forms ------------------------------------------------------------------------------
def spectrum(task) -> tuple[np.ndarray, np.ndarray]:
    """(lambda [d] in decreasing order, U [d, d] with the matching eigenvectors as columns) of the
    task's input covariance."""
    lam, u = np.linalg.eigh(np.asarray(task.input_covariance, np.float64))
    order = np.argsort(lam)[::-1]
    return lam[order], u[:, order]


def gamma_star(lam, n_ctx: int, weight_std: float = 1.0, noise_std: float = 0.0) -> np.ndarray:
    """g_i* = 1 / ((N + 1) lambda_i + T + sigma^2 / tau^2) (module docstring)."""
    lam = np.asarray(lam, np.float64)
    return 1.0 / ((n_ctx + 1) * lam + lam.sum() + noise_std**2 / weight_std**2)


def pcr_losses(lam, n_ctx: int, weight_std: float = 1.0, noise_std: float = 0.0) -> np.ndarray:
    """[L_0, ..., L_d]: the loss of in-context PCR on the top k components, k = 0..d (lam in
    decreasing order)."""
    lam = np.asarray(lam, np.float64)
    g = gamma_star(lam, n_ctx, weight_std, noise_std)
    gain = weight_std**2 * n_ctx * lam**2 * g
    return 0.5 * (noise_std**2 + weight_std**2 * lam.sum() - np.concatenate([[0.0], np.cumsum(gain)]))


def task_reference(task) -> dict:
    """lambda, U, g* and [L_0..L_d] of a `linear` task with Gaussian inputs."""
    if task.family != "linear" or task.input_dist != "gaussian" or task.weight_mean != 0:
        raise ValueError("saddle_to_saddle: closed forms need the linear family with Gaussian x and w ~ N(0, tau^2 I)")
    lam, u = spectrum(task)
    args = (task.n_ctx, task.weight_std, task.noise_std)
    return {"lambda": lam, "U": u, "gamma_star": gamma_star(lam, *args), "pcr_losses": pcr_losses(lam, *args)}


def pcr_losses_on_tasks(task, batch) -> np.ndarray:
    """[L_0..L_d] measured on `batch`: the loss of y_hat = x_q^T U diag(g*_1..g*_k, 0, ..) U^T X^T y
    for k = 0..d (the closed forms' predictors, on the tasks a run is evaluated on)."""
    ref = task_reference(task)
    x_ctx, y_ctx, x_query, y_query = (np.asarray(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query, batch.y_query))
    z = np.einsum("bmd,di->bmi", x_query, ref["U"]) * np.einsum("bnd,bn,di->bi", x_ctx, y_ctx, ref["U"])[:, None, :]
    parts = z * ref["gamma_star"]  # [B, M, d]: component i's share of the PCR prediction
    preds = np.concatenate([np.zeros(parts.shape[:2] + (1,)), np.cumsum(parts, axis=-1)], axis=-1)  # [B, M, d + 1]
    return 0.5 * np.mean((preds - y_query[..., None]) ** 2, axis=(0, 1))


# -- the layer's Gamma and its projections ------------------------------------------------------
def head_gammas(query, key, value, out, d: int) -> np.ndarray:
    """Each head's Gamma_h = -(b_y^h A_xx^h + a_xy^h (b_x^h)^T), [..., H, d, d], from one layer's
    weights with any leading axes: query, key, value [..., H, D, k], out [..., H, k, D] (D = d + 1,
    paired tokens). Rank one for key size 1."""
    q, k, v, o = (np.asarray(a, np.float64) for a in (query, key, value, out))
    a = np.einsum("...hdk,...hek->...hde", q, k)  # A_h = W_q W_k^T  [..., H, D, D]
    b = np.einsum("...hdk,...hke->...hde", v, o)  # B_h = W_v W_o
    b_y, b_x = b[..., d, d], b[..., :d, d]  # [..., H], [..., H, d]
    a_xx, a_xy = a[..., :d, :d], a[..., :d, d]
    return -b_y[..., None, None] * a_xx - np.einsum("...hd,...he->...hde", a_xy, b_x)


def gammas(query, key, value, out, d: int) -> np.ndarray:
    """Gamma [..., d, d] = sum_h Gamma_h (`head_gammas`): `weights.preconditioner`'s Gamma."""
    return head_gammas(query, key, value, out, d).sum(axis=-3)


def head_components(head_gamma, u, min_share: float = 0.01) -> list[dict]:
    """Per head of one layer (head_gamma [H, d, d]): the component it serves, argmax_i |u_i^T Gamma_h
    u_i| (1-based; 0 when ||Gamma_h|| < min_share x the largest head's), and the share of Gamma_h
    that component holds, |u_i^T Gamma_h u_i| / ||Gamma_h||_F (1 for Gamma_h = c u_i u_i^T)."""
    head_gamma = np.asarray(head_gamma, np.float64)
    norms = np.sqrt(np.sum(head_gamma**2, axis=(-2, -1)))
    out = []
    for g, norm in zip(head_gamma, norms, strict=True):
        p = np.abs(projections(g, u))
        used = norm > min_share * norms.max() if norms.max() > 0 else False
        out.append({"component": int(np.argmax(p)) + 1 if used else 0,
                    "share": float(p.max() / norm) if used else 0.0, "norm": float(norm)})
    return out


def projections(gamma, u) -> np.ndarray:
    """p_i = u_i^T Gamma u_i: [..., d] for Gamma [..., d, d] and eigenvectors U [d, d] (columns)."""
    return np.einsum("di,...de,ei->...i", u, np.asarray(gamma, np.float64), u)


def off_diagonal_share(gamma, u) -> np.ndarray:
    """||off-diagonal part of U^T Gamma U||_F / ||Gamma||_F, [...] (0 for Gamma diagonal in the eigenbasis)."""
    g = np.einsum("di,...de,ej->...ij", u, np.asarray(gamma, np.float64), u)
    diag = np.einsum("...ii->...i", g)
    total = np.sqrt(np.sum(g**2, axis=(-2, -1)))
    off = np.sqrt(np.maximum(np.sum(g**2, axis=(-2, -1)) - np.sum(diag**2, axis=-1), 0.0))
    return np.where(total > 0, off / np.where(total > 0, total, 1.0), 0.0)


def learning_steps(steps, proj, target, frac: float = FRAC) -> list[int]:
    """Per component i, the first step at which proj[:, i] >= frac x target[i]; -1 if never.
    steps [R], proj [R, d], target [d]."""
    steps, proj, target = np.asarray(steps), np.asarray(proj), np.asarray(target)
    out = []
    for i in range(proj.shape[1]):
        hit = np.nonzero(proj[:, i] >= frac * target[i])[0]
        out.append(int(steps[hit[0]]) if hit.size else -1)
    return out


def in_order(times) -> bool:
    """Every component learned (>= 0) and the learning steps strictly increasing."""
    times = list(times)
    return all(t >= 0 for t in times) and all(a < b for a, b in itertools.pairwise(times))


def in_order_so_far(times) -> bool:
    """The components learned so far are the top k (none learned before a larger-eigenvalue one)
    and their learning steps strictly increase: `in_order` for a run too short to learn them all."""
    times = list(times)
    k = sum(t >= 0 for t in times)
    return k > 0 and all(t >= 0 for t in times[:k]) and in_order(times[:k])


# -- plateaus and drops on a loss curve ---------------------------------------------------------
def _running_median(y: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    pad = np.pad(y, half, mode="edge")
    return np.array([np.median(pad[i:i + width]) for i in range(len(y))])


def plateaus(steps, loss, smooth: int = SMOOTH, window: int = WINDOW, flat_tol: float = FLAT_TOL,
             min_plateau: int = MIN_PLATEAU, min_drop: float = MIN_DROP) -> dict:
    """Plateaus and drops of a loss curve (module docstring). Returns {"plateaus": [{"start",
    "end", "level"}] (steps, median loss), "n_drops": drops between plateaus plus an unfinished one
    at the end, "drop_steps": the step of each drop (where the smoothed curve crosses the midpoint,
    in log loss, between the two levels), "ends_falling"}."""
    steps = np.asarray(steps)
    y = _running_median(np.log(np.asarray(loss, np.float64)), smooth)
    n = len(y)
    half = window // 2
    flat = np.zeros(n, bool)
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        flat[i] = y[lo:hi].max() - y[lo:hi].min() < flat_tol
    runs, i = [], 0
    while i < n:
        if flat[i]:
            j = i
            while j + 1 < n and flat[j + 1]:
                j += 1
            if j - i + 1 >= min_plateau:
                runs.append([i, j])
            i = j + 1
        else:
            i += 1
    merged: list[list[int]] = []
    for run in runs:
        if merged and abs(np.median(y[run[0]:run[1] + 1]) - np.median(y[merged[-1][0]:merged[-1][1] + 1])) < min_drop:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    levels = [float(np.median(y[a:b + 1])) for a, b in merged]
    drop_steps = []
    for ((_, b0), (a1, _)), (l0, l1) in zip(itertools.pairwise(merged), itertools.pairwise(levels), strict=True):
        if l0 - l1 >= min_drop:
            mid = (l0 + l1) / 2
            k = b0 + int(np.argmax(y[b0:a1 + 1] < mid)) if np.any(y[b0:a1 + 1] < mid) else a1
            drop_steps.append(int(steps[k]))
    ends_falling = bool(merged) and bool(levels[-1] - y[-1] >= min_drop)
    if ends_falling:
        mid = (levels[-1] + y[-1]) / 2
        b0 = merged[-1][1]
        drop_steps.append(int(steps[b0 + int(np.argmax(y[b0:] < mid))]))
    return {
        "plateaus": [{"start": int(steps[a]), "end": int(steps[b]), "level": float(np.exp(lv))}
                     for (a, b), lv in zip(merged, levels, strict=True)],
        "n_drops": len(drop_steps), "drop_steps": drop_steps, "ends_falling": ends_falling,
    }


# -- training with the weights along the way ----------------------------------------------------
def trajectory(config: ExperimentConfig, run_dir: str | Path | None = None) -> dict:
    """Train `config` with `icl.trainer.Trainer` exactly as `icl.train.train` does (the same
    initialisation, keys and chunks of eval_every steps, so the same weights), and record after
    every chunk the attention weights of every seed and the loss on eval_tasks held-out tasks
    (`HeldOut.EVAL`, the tasks the training log uses). One linear attention layer, paired tokens.
    Returns {"steps" [R] (0 first), "loss" [R, S], "train_loss" [R, S] (NaN at step 0), "query",
    "key", "value", "out" [R, S, H, ...], "wall_s"}; cached as <run_dir>/trajectory.npz (with the
    config beside it) when run_dir is given, and reused when the config matches (`along_training`)."""
    path = Path(run_dir) / TRAJECTORY if run_dir is not None else None
    return along_training.cached(path, config, lambda: along_training.record(config, _weights_and_loss))


def _weights_and_loss(trainer: Trainer):
    """The measurement after every chunk: every seed's attention weights and its loss on the
    eval_tasks held-out tasks of the training log, and the chunk's mean training loss."""
    config = trainer.config
    batch = config.task.sample(heldout_key(config, HeldOut.EVAL), config.train.eval_tasks)
    loss = jax.jit(jax.vmap(lambda q: compare.loss(trainer.spec.predictor(q)(batch.x_ctx, batch.y_ctx, batch.x_query),
                                                   batch.y_query)))

    def measure(p, train_losses):
        layer = p["layers"][0]
        return {"loss": loss(p), "train_loss": np.full(config.train.n_seeds, np.nan) if train_losses is None else train_losses,
                **{name: layer[name] for name in ("query", "key", "value", "out")}}

    return measure


# -- one run's numbers, and the verdict ---------------------------------------------------------
def summarise(config: ExperimentConfig, traj: dict) -> dict:
    """Per seed: learning steps of each component, in order or not, plateaus and drops of the
    held-out loss, final projections / g*, off-diagonal share of Gamma, the component each head
    serves, final loss / L_d; and L_0..L_d in closed form and on the held-out tasks themselves."""
    ref = task_reference(config.task)
    d = config.task.d
    heads = head_gammas(traj["query"], traj["key"], traj["value"], traj["out"], d)  # [R, S, H, d, d]
    gam = heads.sum(axis=-3)  # [R, S, d, d]
    proj = projections(gam, ref["U"])  # [R, S, d]
    steps = np.asarray(traj["steps"])
    with precision.at_dtype(config.train.dtype):  # the tasks the trajectory's loss is measured on
        batch = config.task.sample(heldout_key(config, HeldOut.EVAL), config.train.eval_tasks)
    on_tasks = pcr_losses_on_tasks(config.task, batch)
    seeds = []
    for s in range(proj.shape[1]):
        times = learning_steps(steps, proj[:, s], ref["gamma_star"])
        curve = plateaus(steps, traj["loss"][:, s])
        seeds.append({
            "learning_steps": times, "in_order": in_order(times), "in_order_so_far": in_order_so_far(times),
            "n_learned": sum(t >= 0 for t in times),
            "learning_step_ratios": [b / a if a > 0 and b > 0 else None for a, b in itertools.pairwise(times)],
            **curve,
            "final_projection_over_gamma_star": (proj[-1, s] / ref["gamma_star"]).tolist(),
            "final_off_diagonal_share": float(off_diagonal_share(gam[-1, s], ref["U"])),
            "final_heads": head_components(heads[-1, s], ref["U"]),
            "final_loss": float(traj["loss"][-1, s]),
            "final_loss_over_optimum": float(traj["loss"][-1, s] / ref["pcr_losses"][-1]),
        })
    return {
        "lambda": ref["lambda"].tolist(), "gamma_star": ref["gamma_star"].tolist(),
        "pcr_losses": ref["pcr_losses"].tolist(), "pcr_losses_on_tasks": on_tasks.tolist(), "seeds": seeds,
        "steps": steps.tolist(), "loss": np.asarray(traj["loss"]).tolist(),
        "projections": proj.tolist(), "wall_s": float(traj["wall_s"]),
    }


def saddle_to_saddle(seed: dict, d: int) -> bool:
    """>= d - 1 drops and every component learned in eigenvalue order."""
    return seed["n_drops"] >= d - 1 and seed["in_order"]


def drops_once(seed: dict) -> bool:
    return seed["n_drops"] == 1


def verdict(sep_seeds: list[dict], merged_seeds: list[dict], d: int) -> str:
    """The rule of the module docstring (majority = more than half of the seeds)."""
    sep = sum(saddle_to_saddle(s, d) for s in sep_seeds) > len(sep_seeds) / 2
    merged = sum(drops_once(s) for s in merged_seeds) > len(merged_seeds) / 2
    if not sep:
        return "did not hold"
    return "held" if merged else "held in part"
