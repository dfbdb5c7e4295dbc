"""Does a looped (weight-tied) LSA compute multi-step preconditioned GD with ONE preconditioner?
(Gatmiry, Saunshi, Reddi, Jegelka & Kumar, ICML 2024.)

Preconditioned GD on L(w) = 1/2 ||X w - y||^2 from w_0 = 0 with a fixed d x d matrix Gamma,
    w_{k+1} = w_k + Gamma X^T (y - X w_k),                                            (1)
has the closed form w_l = sum_{k<l} (I - Gamma S)^k Gamma X^T y with S = X^T X, and predicts
x_q^T w_l after l steps; Gamma = (lr / N) I is l steps of plain GD (`solvers.gd`), and for
||I - Gamma S|| < 1, w_l -> S^-1 X^T y (least squares). A linear self-attention layer whose
value/output writes only the label slot (b_x = 0, B[:, :d] = 0) and whose A has no label column
(a_xy = 0) maps the label slots r_i of the context (start y_i) and r_q of the query (start 0) by
    r <- r - X Gamma X^T r,    r_q <- r_q - x_q^T Gamma X^T r,    Gamma = -b_y A_xx
(`weights.preconditioner`); applying the same layer l times and reading -r_q is exactly (1) after l
steps, since r = y - X w_k. The claim is that training a looped LSA finds such a layer, with Gamma
close to a multiple of Sigma^-1 (Gatmiry et al.: the optimum tends to it as N grows).

Tests of the claim, per seed, on held-out tasks: the read-out after loop l (`model.layer_predictions`)
against l steps of (1) with one Gamma for every l — Gamma read off the shared layer's weights
(no fitting), or fitted by least squares to loop 1's predictions (`fit_gamma`: y_hat is linear in
Gamma at l = 1) and then used unchanged for l = 2..L — and against l steps of plain GD at the lr
that best matches loop l (`match_gd_lr`, the strongest plain-GD baseline). Similarity is the
repo's model_cos (mean per-task cosine of d y_hat / d x_q, i.e. of the implied weight vectors) and
preds_diff (mean |y_a - y_b|) from `compare.compare`. The alignment of Gamma with Sigma^-1 vs I is
the Frobenius cosine `matrix_cosine`. The share of the layer's output written into the x slots,
||B[:, :d]||_F / ||B||_F (`x_write_share`), measures how far the layer is from the GD-type form
(0 there; a non-zero share changes the inputs between loops, as GD++ does).

The theory's own object, free of training: the best one-Gamma L-step PGD,
    Gamma_L = argmin_Gamma E 1/2 (x_q^T w_L(Gamma) - y_q)^2        (w_L from (1)),
the optimum of the looped layer restricted to the GD-type form (`optimal_loop_gamma`: L-BFGS on
the d^2 entries over a sample of tasks, from Gamma*(N) of one step, `solvers.gamma_star`). For
L = 1 it is Gamma* = ((N + 1) Sigma + tr(Sigma) I)^-1; Gatmiry et al. show it approaches a
multiple of Sigma^-1 as N grows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from icl import compare, solvers, train, weights
from icl.analysis import gamma_star
from icl.analysis.tuning import finite_or_inf, minimise_1d
from icl.config import ExperimentConfig
from icl.tasks.base import Batch


def pgd_weights(x_ctx: jax.Array, y_ctx: jax.Array, gamma, steps: int) -> jax.Array:
    """w_1..w_steps of (1) from w_0 = 0 with one Gamma [d, d] (x_ctx [B, N, d], y_ctx [B, N]):
    [steps, B, d]."""
    gamma = jnp.asarray(gamma, x_ctx.dtype)

    def step(w, _):  # w [B, d]
        residual = y_ctx - jnp.einsum("bnd,bd->bn", x_ctx, w)  # [B, N]
        w = w + jnp.einsum("de,be->bd", gamma, jnp.einsum("bnd,bn->bd", x_ctx, residual))
        return w, w

    w0 = jnp.zeros((x_ctx.shape[0], x_ctx.shape[2]), x_ctx.dtype)
    return jax.lax.scan(step, w0, None, length=steps)[1]


def pgd_predictor(gamma, steps: int) -> compare.Predictor:
    """(x_ctx, y_ctx, x_query [B, M, d]) -> x_q^T w_steps of (1): [B, M]."""
    return lambda xc, yc, xq: jnp.einsum("bmd,bd->bm", xq, pgd_weights(xc, yc, gamma, steps)[-1])


def gd_predictor(lr: float, steps: int, n_ctx: int) -> compare.Predictor:
    """Plain GD with rate lr on 1/(2N) ||X w - y||^2: (1) with Gamma = (lr / N) I."""
    return lambda xc, yc, xq: pgd_predictor(jnp.eye(xc.shape[2], dtype=xc.dtype) * (lr / n_ctx), steps)(xc, yc, xq)


def fit_gamma(batch: Batch, y_hat: jax.Array) -> np.ndarray:
    """The Gamma [d, d] whose one preconditioned step x_q^T Gamma X^T y best fits y_hat [B, M] in
    least squares: y_hat[b, m] = sum_ij Gamma_ij x_q[b, m, i] u[b, j] with u = X^T y, a linear
    regression on the d^2 features x_q u^T (float64 on the host)."""
    x_ctx, y_ctx, x_q = (np.asarray(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query))
    u = np.einsum("bnd,bn->bd", x_ctx, y_ctx)  # [B, d]
    features = np.einsum("bmi,bj->bmij", x_q, u).reshape(-1, u.shape[1] ** 2)  # [B M, d^2]
    coef = np.linalg.lstsq(features, np.asarray(y_hat, np.float64).reshape(-1), rcond=None)[0]
    return coef.reshape(u.shape[1], u.shape[1])


def matrix_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b>_F / (||a||_F ||b||_F)."""
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def x_write_share(layer) -> float:
    """||B[:, :d]||_F / ||B||_F summed over heads, B = W_v W_o (row convention): the part of the
    layer's update that writes into the x slots of the tokens (0 for the GD-type layer)."""
    v, o = (np.asarray(p[...], np.float64) for p in (layer.value, layer.out))
    b = np.einsum("hdk,hke->hde", v, o)  # [H, D, D]
    return float(np.linalg.norm(b[:, :, :-1]) / np.linalg.norm(b))


def match_gd_lr(batch: Batch, y_hat: jax.Array, steps: int, lr_max: float) -> float:
    """The lr in [0, lr_max] whose `steps`-step plain GD is closest to y_hat [B, M] in mean squared
    difference (minimise_1d)."""
    n = batch.x_ctx.shape[1]
    gap = jax.jit(lambda lr, b, y: finite_or_inf(jnp.mean((gd_predictor(lr, steps, n)(b.x_ctx, b.y_ctx, b.x_query) - y) ** 2)))
    return minimise_1d(lambda lr: gap(lr, batch, y_hat), 0.0, lr_max)


def pgd_loss(batch: Batch, gamma, steps: int) -> jax.Array:
    """1/2 mean (x_q^T w_steps - y_q)^2 of (1) with Gamma on `batch`."""
    return compare.loss(pgd_predictor(gamma, steps)(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query)


def optimal_loop_gamma(batch: Batch, steps: int, start: np.ndarray) -> np.ndarray:
    """argmin over Gamma [d, d] of `pgd_loss(batch, Gamma, steps)` by L-BFGS (scipy, float64 host
    iterates, jax gradients) from `start`."""
    d = start.shape[0]
    value_and_grad = jax.jit(jax.value_and_grad(lambda g, b: pgd_loss(b, g.reshape(d, d), steps)))

    def f(flat):
        v, g = value_and_grad(jnp.asarray(flat, batch.x_ctx.dtype), batch)
        return float(v), np.asarray(g, np.float64)

    res = scipy.optimize.minimize(f, np.asarray(start, np.float64).reshape(-1), jac=True, method="L-BFGS-B",
                                  options={"maxiter": 500, "gtol": 1e-10, "ftol": 1e-15})
    return res.x.reshape(d, d)


def _similarity(model_l: compare.Predictor, other: compare.Predictor, batch: Batch) -> dict:
    c = compare.compare(model_l, other, batch)
    return {"model_cos": float(c["model_cos"]), "preds_diff": float(c["preds_diff"]), "loss": float(c["loss_other"])}


def seed_table(config: ExperimentConfig, model, batch: Batch, lr_max: float) -> dict:
    """One seed's looped model vs one-Gamma PGD and plain GD after every loop l = 1..L (module
    docstring). Gamma read off the weights and Gamma fitted on loop 1; cosines of both with
    Sigma^-1 and I; per loop the model's loss and, for each learner, model_cos / preds_diff /
    loss."""
    d, loops = config.task.d, config.model.n_layers
    sigma_inv = np.linalg.inv(config.task.input_covariance)
    layer_preds = compare.layer_predictors(model, loops)
    y_loops = model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, n_layers=loops)  # [L, B, M]
    gammas = {"read_off": weights.preconditioner(model.layers[0], d)["gamma"], "fitted_loop1": fit_gamma(batch, y_loops[0])}
    out = {"x_write_share": x_write_share(model.layers[0]), "gamma": {}, "loops": []}
    for name, g in gammas.items():
        out["gamma"][name] = {
            "matrix": g.tolist(), "cos_sigma_inverse": matrix_cosine(g, sigma_inv), "cos_identity": matrix_cosine(g, np.eye(d)),
            "distance_best_c_sigma_inverse": gamma_star.relative_distance(gamma_star.best_multiple(g, sigma_inv), g),
            "distance_best_c_identity": gamma_star.relative_distance(gamma_star.best_multiple(g, np.eye(d)), g),
        }
    for k in range(1, loops + 1):
        lr = match_gd_lr(batch, y_loops[k - 1], k, lr_max)
        row = {"loop": k, "model_loss": float(compare.loss(y_loops[k - 1], batch.y_query)), "gd_lr": lr,
               "gd": _similarity(layer_preds[k - 1], gd_predictor(lr, k, config.task.n_ctx), batch)}
        for name, g in gammas.items():
            row[f"pgd_{name}"] = _similarity(layer_preds[k - 1], pgd_predictor(g, k), batch)
        out["loops"].append(row)
    return out


def summarise(config: ExperimentConfig, params: dict, batch: Batch, lr_max: float = 2.0) -> dict:
    """`seed_table` for every seed of params [S, ...], and per loop the minimum over seeds of each
    learner's model_cos (the headline: does one Gamma match every loop in every seed?); and the
    best one-Gamma L-step PGD on `batch` (`optimal_loop_gamma`): its Gamma, cosines with Sigma^-1,
    I and each seed's read-off Gamma, and its loss after every loop."""
    seeds = [seed_table(config, m, batch, lr_max) for m in train.seed_models(config, params)]
    loops, d = config.model.n_layers, config.task.d
    sigma = np.asarray(config.task.input_covariance)
    start = np.asarray(solvers.gamma_star(sigma, config.task.n_ctx))
    optimum = optimal_loop_gamma(batch, loops, start)
    sigma_inv = np.linalg.inv(sigma)
    theory = {"matrix": optimum.tolist(), "cos_sigma_inverse": matrix_cosine(optimum, sigma_inv),
              "cos_identity": matrix_cosine(optimum, np.eye(d)),
              "loss_per_loop": [float(pgd_loss(batch, optimum, k)) for k in range(1, loops + 1)],
              "cos_with_read_off": [matrix_cosine(optimum, np.asarray(s["gamma"]["read_off"]["matrix"])) for s in seeds]}
    learners = ("pgd_read_off", "pgd_fitted_loop1", "gd")
    worst = {k: [min(s["loops"][i][k]["model_cos"] for s in seeds) for i in range(loops)] for k in learners}
    return {"seeds": seeds, "min_model_cos_over_seeds": worst, "optimal_loop_pgd": theory,
            "sigma_inverse_beats_identity": bool(all(s["gamma"]["read_off"]["cos_sigma_inverse"] > s["gamma"]["read_off"]["cos_identity"]
                                                     for s in seeds))}
