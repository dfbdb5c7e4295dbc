"""Does an in-context learner depend on the order of its context examples? (Shen et al. 2023)

For B held-out tasks, R random permutations pi_r of the N context pairs (x_i and y_i move together;
a positional code stays with the slot) and the learner's prediction
p_{b,r} = f(pi_r(context_b), x_q,b) [R, B, M]:
    sensitivity = mean_{b,m} std_r p_{b,r,m} / std_b p_{b,m}      (std_b over tasks, unpermuted)
    worst       = max_{b,m}  std_r p_{b,r,m} / std_b p_{b,m}
    max_abs     = max_{b,r,m} |p_{b,r,m} - p_{b,m}|
plus the loss averaged over orders and the loss of the order-averaged prediction mean_r p_{b,r}.
One full-batch GD step is symmetric in the pairs (sensitivity exactly 0 in exact arithmetic);
one-pass online SGD (`icl.analysis.online_sgd`) is not. Which slots a learner listens to: the slot
influence mean_{b,m} |d y_hat_{b,m} / d y_{b,i}|, normalised over i; whether two learners' order
effects agree: the correlation of their deviations from their own order average.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers, train
from icl.analysis import online_sgd
from icl.compare import Predictor
from icl.config import ExperimentConfig
from icl.tasks.base import Batch


def permute_contexts(key: jax.Array, x_ctx: jax.Array, y_ctx: jax.Array, n_perms: int) -> tuple[jax.Array, jax.Array]:
    """R independent random orders of each task's context pairs: x [R, B, N, d], y [R, B, N].

    Each (r, b) gets its own permutation (argsort of uniforms); x_i and y_i move together."""
    if n_perms < 2:
        raise ValueError(f"permute_contexts: need n_perms >= 2 to measure a spread, got {n_perms}")
    b, n, _ = x_ctx.shape
    perm = jnp.argsort(jax.random.uniform(key, (n_perms, b, n)), axis=-1)  # [R, B, N]
    x = jnp.take_along_axis(x_ctx[None], perm[..., None], axis=2)  # [R, B, N, d]
    y = jnp.take_along_axis(y_ctx[None], perm, axis=2)  # [R, B, N]
    return x, y


def predict_orders(predict: Predictor, x_perm: jax.Array, y_perm: jax.Array, x_query: jax.Array) -> jax.Array:
    """predict on every order: x_perm [R, B, N, d], y_perm [R, B, N], x_query [B, M, d] -> [R, B, M]."""
    r, b = y_perm.shape[:2]
    xq = jnp.broadcast_to(x_query[None], (r, *x_query.shape)).reshape(r * b, *x_query.shape[1:])
    y_hat = predict(x_perm.reshape(r * b, *x_perm.shape[2:]), y_perm.reshape(r * b, -1), xq)  # [R*B, M]
    return y_hat.reshape(r, b, -1)


def order_sensitivity(preds_RBM: np.ndarray, preds_BM: np.ndarray, y_query: np.ndarray | None = None) -> dict:
    """Spread of a learner's predictions over context orders, relative to their spread over tasks.

    preds_RBM [R, B, M]: predictions under R orders; preds_BM [B, M]: under the original order.
    sensitivity = mean_{b,m} std_r / std_b, worst = max_{b,m} std_r / std_b (std_b of preds_BM over
    tasks, per query slot), max_abs = max |preds_RBM - preds_BM|; with y_query [B, M] also the
    loss averaged over orders and the loss of the order-averaged prediction."""
    p = np.asarray(preds_RBM, np.float64)
    p0 = np.asarray(preds_BM, np.float64)
    if p.ndim != 3 or p0.shape != p.shape[1:]:
        raise ValueError(f"order_sensitivity: expected [R, B, M] and [B, M], got {p.shape} and {p0.shape}")
    spread = p.std(0)  # [B, M]
    scale = p0.std(0)  # [M]
    if not np.all(scale > 0):
        raise ValueError("order_sensitivity: predictions do not vary across tasks (std 0)")
    rel = spread / scale[None]  # [B, M]
    out = {"sensitivity": float(rel.mean()), "worst": float(rel.max()),
           "max_abs": float(np.abs(p - p0[None]).max()), "task_std": float(scale.mean())}
    if y_query is not None:
        y = np.asarray(y_query, np.float64)
        out["loss_over_orders"] = float(0.5 * np.mean((p - y[None]) ** 2))
        out["loss_order_averaged"] = float(0.5 * np.mean((p.mean(0) - y) ** 2))
    return out


def slot_influence(predict: Predictor, batch: Batch) -> np.ndarray:
    """How much each context slot's label moves the prediction: mean_{b,m} |d y_hat_{b,m} / d y_{b,i}|,
    normalised to sum 1 over the N slots [N]. One GD step: 1/N per slot in expectation over tasks
    (its derivative is (eta/N) x_i . x_q); online SGD weighs later slots more (recency)."""
    def one_query(y_ctx, m):
        return jnp.sum(predict(batch.x_ctx, y_ctx, batch.x_query)[:, m])

    grads = jnp.stack([jax.grad(one_query)(batch.y_ctx, m) for m in range(batch.x_query.shape[1])])  # [M, B, N]
    influence = np.asarray(jnp.abs(grads).mean((0, 1)), np.float64)  # [N]
    return influence / influence.sum()


def deviation_correlation(preds_a: np.ndarray, preds_b: np.ndarray) -> float:
    """Correlation over (order, task, query) of two learners' deviations from their own mean over
    orders, p - mean_r p, for predictions [R, B, M] on the same orders: do their order effects agree?"""
    a = np.asarray(preds_a, np.float64) - np.mean(preds_a, 0, dtype=np.float64)[None]
    b = np.asarray(preds_b, np.float64) - np.mean(preds_b, 0, dtype=np.float64)[None]
    norm = np.sqrt(np.sum(a**2) * np.sum(b**2))
    return float(np.sum(a * b) / norm) if norm > 0 else 0.0


def order_batch(config: ExperimentConfig, n_tasks: int, n_perms: int) -> tuple[Batch, jax.Array, jax.Array]:
    """The held-out tasks (HeldOut.EXTRA) and R context orders shared by every learner:
    (batch, x_perm [R, B, N, d], y_perm [R, B, N])."""
    key = train.heldout_key(config, train.HeldOut.EXTRA)
    batch = config.task.sample(jax.random.fold_in(key, 0), n_tasks)
    x_perm, y_perm = permute_contexts(jax.random.fold_in(key, 1), batch.x_ctx, batch.y_ctx, n_perms)
    return batch, x_perm, y_perm


def evaluate_order(predict: Predictor, batch: Batch, x_perm: jax.Array, y_perm: jax.Array,
                   reference: np.ndarray | None = None) -> tuple[dict, dict]:
    """(scalars, profiles): order_sensitivity's numbers and the loss, and with reference predictions
    [R, B, M] on the same orders the correlation of order effects; profiles holds the slot
    influence [N] and the predictions [R, B, M]."""
    jitted = jax.jit(predict)
    p0 = jitted(batch.x_ctx, batch.y_ctx, batch.x_query)  # [B, M]
    p = np.asarray(predict_orders(jitted, x_perm, y_perm, batch.x_query))  # [R, B, M]
    scalars = {**order_sensitivity(p, np.asarray(p0), np.asarray(batch.y_query)), "loss": float(compare.loss(p0, batch.y_query))}
    if reference is not None:
        scalars["corr_with_online_sgd"] = deviation_correlation(p, reference)
    return scalars, {"slot_influence": slot_influence(predict, batch).tolist(), "preds": p}


def evaluate_seeds(config: ExperimentConfig, params: dict, batch: Batch, x_perm: jax.Array, y_perm: jax.Array,
                   reference: np.ndarray | None) -> tuple[dict, list]:
    """`evaluate_order` of every seed's model (params [S, ...]): ({scalar: stats over seeds},
    slot influence [S, N])."""
    spec = train.model_spec(config)
    per_seed = [evaluate_order(spec.predictor(p), batch, x_perm, y_perm, reference)
                for p in runs.unstack_seeds(params, config.train.n_seeds)]
    scalars = {k: runs.stats([s[k] for s, _ in per_seed]) for k in per_seed[0][0]}
    return scalars, [profiles["slot_influence"] for _, profiles in per_seed]


def evaluate_references(config: ExperimentConfig, eta: float, batch: Batch, x_perm: jax.Array, y_perm: jax.Array,
                        alpha_factors: Sequence[float], n_tune: int = 4000) -> dict:
    """One GD step at rate eta and online SGD: at the matched alpha = eta/N, over alpha = factor eta/N
    for each of `alpha_factors` (loss on `n_tune` HeldOut.TUNE tasks and order sensitivity), and at
    the alpha of least tuning loss."""
    n = config.task.n_ctx
    tune = config.task.sample(train.heldout_key(config, train.HeldOut.TUNE), n_tune)
    sweep = []
    for factor in alpha_factors:
        alpha = float(factor * eta / n)
        tune_loss = float(compare.loss(online_sgd.online_sgd(tune.x_ctx, tune.y_ctx, tune.x_query, alpha), tune.y_query))
        result, _ = evaluate_order(online_sgd.at_step(alpha), batch, x_perm, y_perm)
        sweep.append({"alpha": alpha, "factor": float(factor), "tune_loss": tune_loss, **result})
    best = min((s for s in sweep if np.isfinite(s["tune_loss"])), key=lambda s: s["tune_loss"])
    gd, gd_profiles = evaluate_order(lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta, steps=1), batch, x_perm, y_perm)
    matched, matched_profiles = evaluate_order(online_sgd.matched_online_sgd(eta, n), batch, x_perm, y_perm)
    _, tuned_profiles = evaluate_order(online_sgd.at_step(best["alpha"]), batch, x_perm, y_perm)
    return {
        "gd": {"eta": eta, **gd, "slot_influence": gd_profiles["slot_influence"]},
        "online_sgd_matched": {"alpha": eta / n, **matched, "slot_influence": matched_profiles["slot_influence"]},
        "online_sgd_tuned": {**best, "slot_influence": tuned_profiles["slot_influence"]},
        "online_sgd_sweep": sweep,
        "n_tasks": int(batch.batch_size), "n_perms": int(y_perm.shape[0]),
    }
