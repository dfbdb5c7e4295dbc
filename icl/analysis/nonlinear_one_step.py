"""Is a trained one-layer LSA still one GD step when the targets are non-linear functions of x?
(Mahankali, Hashimoto & Ma, ICLR 2024: changing only the responses' distribution, even to a
non-linear family, leaves the optimum at one plain GD step on the least-squares objective.)

**The optimal step.** Tasks are functions f from a family, inputs x_i, x_q iid with E[x] = 0 and
E[x x^T] = I (here x ~ N(0, I_d)), labels y = f(x) + eps. One GD step from w = 0 on
L(w) = 1/(2N) sum_i (w . x_i - y_i)^2 with rate lr predicts

    y_hat = c x_q^T s,    s = X^T y = sum_i y_i x_i,    c = lr / N.

Write g_f = E_x[f(x) x] (f's linear part: its degree-1 Hermite coefficient for Gaussian x) and

    G = E_f |g_f|^2,    F = E[y^2 |x|^2],    V = E[y^2].

Given f, x_q is independent of s, E[y_q x_q | f] = g_f, E[s | f] = N g_f and
E|s|^2 = sum_{i, j} E[y_i y_j x_i . x_j] = N F + N (N - 1) G, so the paper's loss of the step is

    L(c) = 1/2 E(c x_q . s - y_q)^2 = 1/2 (V - 2 c N G + c^2 (N F + N (N - 1) G)),

minimised at (`optimal_step`, `one_step_loss`)

    c* = G / (F + (N - 1) G),    lr* = N c*,    L(c*) = 1/2 (V - N c* G).

With Gamma in place of c I (preconditioned GD) the same algebra gives
Gamma* = E[g g^T] (E[y^2 x x^T] + (N - 1) E[g g^T])^-1: a multiple of I, namely c* I, whenever
E[g g^T] and E[y^2 x x^T] are, i.e. whenever the family's law is invariant under rotations of x, or
only under signed permutations of the coordinates (the decision tree below).

**Why the optimal layer is that step (derived here in this form; as we read it, the symmetry
argument of Mahankali et al.).** A one-layer LSA predicts (`weights.preconditioner`)
y_hat = x_q^T Gamma s - x_q^T A_xx X^T X b_x - (x_q . a_xy) y^T y b_y. If the family's law is
invariant under f -> f(-.) (all four families here), the map (X, y, x_q, y_q) -> (-X, y, -x_q, y_q)
preserves the joint law; x_q^T Gamma s and y_q are even under it, the two extra terms odd. So the
extra terms are uncorrelated with both, they only add their own square to the loss, and since any
Gamma is reachable without them (a_xy = b_x = 0, Gamma = -b_y A_xx), the optimum is exactly
preconditioned GD with Gamma*, i.e. one GD step with lr* = N c*.

**The linear floor.** Any predictor linear in x_q, x_q . v(context) (the LSA at any N, least
squares), has loss >= 1/2 E_f min_v E(x_q . v - y_q)^2 = 1/2 (V - G) (`linear_floor`): the part of
the target that is not linear in x is out of its reach; kernel ridge or nearest neighbours can go
below it.

**Closed forms** (`closed_form_moments`, x ~ N(0, I_d), label noise sigma):
  linear                 w ~ N(0, tau^2 I): g = w, G = tau^2 d, F = tau^2 d (d + 2) + sigma^2 d,
                         V = tau^2 d + sigma^2; c* = 1 / (N + d + 1 + sigma^2 / tau^2), claim 1's
                         Gamma* at Sigma = I.
  relu_net               f = sum_j a_j relu(u_j . x), u_j ~ N(0, I), a_j ~ N(0, 2 / h): Stein's
                         lemma E[relu(u . x) x] = u P(u . x > 0) = u / 2, so g = 1/2 sum_j a_j u_j and
                         G = d / 2; given x, u . x ~ N(0, |x|^2), so E_f f(x)^2 = |x|^2 and
                         F = E|x|^4 + sigma^2 d = d (d + 2) + sigma^2 d, V = d + sigma^2;
                         c* = 1 / (N + 2 d + 3 + 2 sigma^2). Half of E y^2 is linear in x.
  linear_classification  y = sign(w . x), each label flipped with probability p: E[sign(z) z] =
                         sqrt(2 / pi) for z ~ N(0, 1), so g = (1 - 2p) sqrt(2 / pi) w / |w|,
                         G = (1 - 2p)^2 2 / pi, F = d, V = 1.
  decision_tree          depth D, node coordinates uniform on {0..d-1}, leaves v ~ N(0, 1): leaf l's
                         region fixes the signs s_k of the coordinates c_k on its path; with K the
                         distinct coordinates (an empty region where one repeats with both signs),
                         m_l = E[x 1_l(x)] has m_l,j = s_j phi(0) 2^-(|K| - 1) for j in K, 0 elsewhere
                         (phi(0) = 1 / sqrt(2 pi)). g = sum_l v_l m_l with independent leaves, so
                         G = sum_l E_c |m_l|^2 = sum_l E_c[|K| 4^(1 - |K|) / (2 pi)], averaged
                         exactly over the d^D coordinate draws of a path (`tree_linear_power`);
                         F = d (1 + sigma^2), V = 1 + sigma^2.
`monte_carlo_moments` estimates G, F, V from sampled tasks of any family (G unbiasedly from pairs
i != j of one task: E[y_i y_j x_i . x_j] = E|g_f|^2).
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers, train, weights
from icl.analysis import tuning
from icl.config import ExperimentConfig
from icl.distributed import to_host
from icl.precision import highest
from icl.tasks.base import Batch

COS_MIN = 0.99  # the claim holds for a family if the LSA's model_cos vs GD is at least this ...
LOSS_TOL = 0.02  # ... and its loss is within this fraction of one GD step's at the optimal rate
MAX_TREE_PATHS = 10**6  # d^D coordinate draws enumerated by tree_linear_power
KERNEL_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)  # x sqrt(d): the kernel ridge tuning grid ...
KERNEL_LAMS = (1e-3, 1e-2, 1e-1, 1.0)  # ... and its ridges


# -- the optimal step in closed form ---------------------------------------------------------------

def optimal_step(moments: dict, n_ctx: int) -> float:
    """c* = G / (F + (N - 1) G): the loss-minimising c of y_hat = c x_q^T X^T y (lr* = N c*)."""
    g, f = moments["G"], moments["F"]
    return float(g / (f + (n_ctx - 1) * g))


def one_step_loss(c: float, moments: dict, n_ctx: int) -> float:
    """The paper's expected loss of y_hat = c x_q^T X^T y: 1/2 (V - 2 c N G + c^2 N (F + (N - 1) G))."""
    g, f, v, n = moments["G"], moments["F"], moments["V"], n_ctx
    return float(0.5 * (v - 2 * c * n * g + c**2 * n * (f + (n - 1) * g)))


def linear_floor(moments: dict) -> float:
    """1/2 (V - G): the least loss of any predictor linear in x_q (knowing f itself)."""
    return float(0.5 * (moments["V"] - moments["G"]))


def tree_linear_power(d: int, depth: int) -> float:
    """G = E|g_f|^2 of the decision_tree family (module docstring), by exact enumeration of the
    d^depth coordinate draws of each of the 2^depth root-to-leaf paths."""
    if d**depth > MAX_TREE_PATHS:
        raise ValueError(f"tree_linear_power: d^depth = {d}^{depth} paths is too many to enumerate")
    coords = np.array(list(itertools.product(range(d), repeat=depth)))  # [C, D]
    same = coords[:, :, None] == coords[:, None, :]  # [C, D, D]
    earlier = np.tril(np.ones((depth, depth), bool), -1)  # [k, l]: l < k
    n_distinct = depth - np.sum(np.any(same & earlier[None], axis=2), axis=1)  # [C]
    total = 0.0
    for leaf in range(2**depth):
        signs = np.array([(leaf >> (depth - 1 - k)) & 1 for k in range(depth)]) * 2 - 1  # root first
        agree = signs[:, None] == signs[None, :]  # [D, D]
        consistent = np.all(~same | agree[None], axis=(1, 2))  # [C]
        power = n_distinct * 4.0 ** (1 - n_distinct) / (2 * np.pi)
        total += float(np.mean(np.where(consistent, power, 0.0)))
    return total


def _isotropic_gaussian(task) -> None:
    """Raise unless the linear task's inputs are x ~ N(0, I_d)."""
    isotropic = np.allclose(np.asarray(task.input_covariance), np.eye(task.d))
    if task.input_dist != "gaussian" or not isotropic or task.input_scale != 1.0:
        raise ValueError(f"closed_form_moments: needs x ~ N(0, I); task {task!r} has other inputs")


def closed_form_moments(task) -> dict:
    """{"G", "F", "V"} of `task` in closed form (module docstring): linear (isotropic Gaussian),
    relu_net, linear_classification, decision_tree; a ValueError for any other family."""
    d, family = task.d, task.family
    noise = float(getattr(task, "noise_std", 0.0)) ** 2
    if family == "linear":
        _isotropic_gaussian(task)
        tau2 = float(task.weight_std) ** 2
        return {"G": tau2 * d, "F": tau2 * d * (d + 2) + noise * d, "V": tau2 * d + noise}
    if family == "relu_net":
        return {"G": d / 2, "F": d * (d + 2) + noise * d, "V": d + noise}
    if family == "linear_classification":
        return {"G": (1 - 2 * task.flip_prob) ** 2 * 2 / math.pi, "F": float(d), "V": 1.0}
    if family == "decision_tree":
        return {"G": tree_linear_power(d, task.depth), "F": d * (1 + noise), "V": 1 + noise}
    raise ValueError(f"closed_form_moments: no closed form for task family {family!r}")


@highest
def monte_carlo_moments(task, key: jax.Array, n_tasks: int) -> dict:
    """{"G", "F", "V"} estimated on `n_tasks` tasks, every point of a task (context and queries):
    F = mean y^2 |x|^2, V = mean y^2, G = mean over pairs i != j of y_i y_j x_i . x_j."""
    batch = task.sample(key, n_tasks)
    x, y = batch.sequence()  # [B, T, d], [B, T]
    p = x.shape[1]
    s = jnp.einsum("bpd,bp->bd", x, y)  # [B, d]
    diag = jnp.sum(y**2 * jnp.sum(x**2, axis=-1), axis=1)  # [B]: sum_i y_i^2 |x_i|^2
    pairs = jnp.sum(s**2, axis=-1) - diag  # [B]: sum_{i != j} y_i y_j x_i . x_j
    return {"G": float(jnp.mean(pairs) / (p * (p - 1))), "F": float(jnp.mean(diag) / p), "V": float(jnp.mean(y**2))}


# -- the trained layer ---------------------------------------------------------------------------

def layer_step(config: ExperimentConfig, params: dict, c_star: float) -> list[dict]:
    """Per seed, from the weights (`weights.preconditioner`): the effective GD rate
    N tr(Gamma) / d (against lr* = N c*), ||Gamma - c* I||_F / ||c* I||_F, Gamma's distance from
    its own best multiple of I relative to ||Gamma||_F (0: a plain GD step), and the rank-one
    share ||sum_h a_xy b_x^T||_F / ||Gamma||_F (0 for the construction)."""
    d, n = config.task.d, config.task.n_ctx
    target = c_star * np.eye(d)
    out = []
    for model in train.seed_models(config, params):
        parts = weights.preconditioner(model.layers[0], d)
        gamma = parts["gamma"]
        scale = float(np.trace(gamma) / d)
        out.append({
            "lr_effective": n * scale,
            "distance_to_optimum": float(np.linalg.norm(gamma - target) / np.linalg.norm(target)),
            "anisotropy": float(np.linalg.norm(gamma - scale * np.eye(d)) / np.linalg.norm(gamma)),
            "rank_one_share": float(np.linalg.norm(np.einsum("hd,he->de", parts["a_xy"], parts["b_x"])) / np.linalg.norm(gamma)),
            "gamma": gamma.tolist(),
        })
    return out


def compare_seeds(config: ExperimentConfig, params: dict, predict: compare.Predictor, batch: Batch) -> dict:
    """`compare.compare(model, predict, batch)` for every seed: {"loss", "loss_other",
    "preds_diff", "model_cos", "model_diff"}, each a list over seeds."""
    spec = train.model_spec(config)
    metrics = jax.jit(highest(jax.vmap(lambda p, b: compare.compare(spec.predictor(p), predict, b), in_axes=(0, None))))
    return {k: np.asarray(v).tolist() for k, v in to_host(metrics(params, batch)).items()}


def extra_terms(config: ExperimentConfig, params: dict, steps: list[dict], batch: Batch) -> dict:
    """What the layer's two non-GD terms do, per seed: the model against preconditioned GD with its
    own Gamma on `batch` (preds_diff, model_cos) and (loss_model - loss_own_gamma) / loss_own_gamma
    (0 without the terms; > 0: they cost loss)."""
    rows = []
    spec = train.model_spec(config)
    for p, step in zip(runs.unstack_seeds(params, config.train.n_seeds), steps, strict=True):
        own = functools.partial(solvers.preconditioned_gd, gamma_matrix=np.asarray(step["gamma"]))
        m = compare.compare(spec.predictor(p), own, batch)
        rows.append({"preds_diff": float(m["preds_diff"]), "model_cos": float(m["model_cos"]),
                     "loss_share": float((m["loss"] - m["loss_other"]) / m["loss_other"])})
    return {k: [r[k] for r in rows] for k in rows[0]}


def tune_kernel_ridge(task, validation: Batch, test: Batch) -> dict:
    """RBF kernel ridge with (bandwidth, lam) chosen on `validation` tasks over
    KERNEL_BANDWIDTHS x sqrt(d) and KERNEL_LAMS (`tuning.tune_solver`), its loss on `test`."""
    grid = [{"bandwidth": b * math.sqrt(task.d), "lam": lam} for b in KERNEL_BANDWIDTHS for lam in KERNEL_LAMS]
    return tuning.tune_solver(solvers.kernel_ridge, grid, validation, test)


# -- the verdict ---------------------------------------------------------------------------------

def holds(loss_ratio: float, model_cos: float) -> bool:
    """The claim's test for one family: model_cos vs GD >= COS_MIN and |loss / GD loss - 1| <= LOSS_TOL."""
    return bool(model_cos >= COS_MIN and abs(loss_ratio - 1.0) <= LOSS_TOL)


def verdict(per_family: dict[str, bool]) -> str:
    """"held" if every family passes `holds`, "did not hold" if none does, else "held in part"."""
    passed = list(per_family.values())
    return "held" if all(passed) else "did not hold" if not any(passed) else "held in part"


def summarise(config: ExperimentConfig, summary: dict, params: dict, mc_tasks: int, tune_tasks: int) -> dict:
    """One family's numbers on the run's final held-out tasks (those of summary.json):
    moments (closed form where there is one, and Monte Carlo on `mc_tasks` tasks), the optimal step
    (closed form vs the `gd` rate estimated on tasks vs the layer's own), the losses of the model,
    of GD at both rates, of the linear floor and of every learner of the summary, plus kernel ridge
    tuned on `tune_tasks` validation tasks; model_cos / preds_diff of the model against each; the
    layer's Gamma and extra terms (`layer_step`, `extra_terms`); `holds`."""
    task, n = config.task, config.task.n_ctx
    batch = task.sample(train.heldout_key(config, train.HeldOut.FINAL), config.train.final_eval_tasks)
    try:
        exact = closed_form_moments(task)
    except ValueError:
        exact = None
    mc = monte_carlo_moments(task, train.heldout_key(config, train.HeldOut.EXTRA), mc_tasks)
    moments = exact or mc
    c_star = optimal_step(moments, n)
    gd = summary["solvers"]["gd"]
    closed_gd = functools.partial(solvers.gd, lr=n * c_star)
    at_closed = compare_seeds(config, params, closed_gd, batch)
    validation = task.sample(train.heldout_key(config, train.HeldOut.TUNE), tune_tasks)
    kr = tune_kernel_ridge(task, validation, batch)
    kr_cmp = compare_seeds(config, params, functools.partial(solvers.kernel_ridge, **kr["hparams"]), batch)
    learners = {name: {"loss": s["loss"], "hparams": s["hparams"],
                       **{k: runs.stats(s[k]) for k in ("preds_diff", "model_cos", "model_diff")}}
                for name, s in summary["solvers"].items()}
    learners["gd_closed_form_lr"] = {"loss": at_closed["loss_other"][0], "hparams": {"lr": n * c_star},
                                     **{k: runs.stats(at_closed[k]) for k in ("preds_diff", "model_cos", "model_diff")}}
    learners["kernel_ridge_tuned"] = {"loss": kr["loss"], "hparams": kr["hparams"],
                                      **{k: runs.stats(kr_cmp[k]) for k in ("preds_diff", "model_cos", "model_diff")}}
    steps = layer_step(config, params, c_star)
    model_loss = summary["model"]["loss"]
    ratio = [m / gd["loss"] for m in model_loss]
    mean_abs_y = float(jnp.mean(jnp.abs(batch.y_query)))
    return {
        "family": task.family,
        "moments_closed_form": exact, "moments_monte_carlo": mc, "mc_tasks": mc_tasks,
        "step": {
            "lr_closed_form": n * c_star, "lr_estimated": gd["hparams"]["lr"],
            "lr_estimated_vs_closed_form": gd["hparams"]["lr"] / (n * c_star) - 1,
            "lr_effective": runs.stats([s["lr_effective"] for s in steps]),
            "linear_part_share_of_signal": moments["G"] / moments["V"],
        },
        "loss": {
            "zero": summary["zero_loss"], "model": runs.stats(model_loss), "gd": gd["loss"],
            "gd_closed_form_lr": at_closed["loss_other"][0],
            "theory_one_step": one_step_loss(c_star, moments, n), "linear_floor": linear_floor(moments),
            "model_over_gd": runs.stats(ratio),
        },
        "vs_gd": {k: runs.stats(gd[k]) for k in ("preds_diff", "model_cos", "model_diff")},
        "preds_diff_over_mean_abs_y": runs.stats(np.asarray(gd["preds_diff"]) / mean_abs_y),
        "learners": learners,
        "layer": {k: runs.stats([s[k] for s in steps]) for k in ("distance_to_optimum", "anisotropy", "rank_one_share")},
        "gamma_seed0": steps[0]["gamma"],
        "extra_terms": {k: runs.stats(v) for k, v in extra_terms(config, params, steps, batch).items()},
        "holds": holds(float(np.mean(ratio)), float(np.mean(gd["model_cos"]))),
        "train_wall_s": summary.get("wall_s"),
    }
