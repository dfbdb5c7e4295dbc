"""Trained 1-head linear attention layers read against references: their preconditioners (Ahn et
al. 2023) and their resemblance to the GD construction (von Oswald et al. 2023; Shen et al. 2023).

A 1-head linear layer depends on its weights only through A = W_q W_k^T and B = W_v W_o (row
convention, `weights.layer_products`, D = d + 1): update_j = sum_i (e_j A e_i^T) e_i B, and
(cA, B/c) is the same layer for any c != 0.

Preconditioners. With tokens e_i = [x_i, r_i] (context) and e_q = [x_q, 0], the change of the
read-out (minus the query's label slot) is
    -sum_i (x_q A_xx x_i + x_q A_xy r_i) (x_i . B_xy + r_i B_yy)
(A_xx = A[:d, :d], A_xy = A[:d, d], B_xy = B[:d, d], B_yy = B[d, d]), whose part linear in the
context labels r is a preconditioned GD step
    delta y_hat(x_q) = x_q^T Gamma_l sum_i x_i r_i,    Gamma_l = -(B_yy A_xx + A_xy B_xy^T)
(`weights.preconditioner`). The GD construction has A_xy = 0 and Gamma = (lr / N) I. The rest is
even in r, so for a first layer the odd part in y of its read-out is exactly
`solvers.preconditioned_gd(Gamma_1)`. For a query slot s_q != 0 (layers >= 2) the A_yx, A_yy terms
add updates proportional to the current prediction, not counted in Gamma_l; deeper layers act on
tokens whose x part earlier layers may have changed (B_xx != 0), so Gamma_l is the preconditioner
in the coordinates that layer sees. `preconditioner_alignment` reports cos(Gamma_l, Sigma^-1) and
cos(Gamma_l, I) (Frobenius), the references cos(Sigma^-1, I) and cos(Gamma*, Sigma^-1) for the
optimal one-layer Gamma* = ((N+1) Sigma + tr(Sigma) I)^-1 (`solvers.gamma_star`, not exactly
proportional to Sigma^-1 at finite N), and the blocks outside the structure (Ahn et al.'s analysis
assumes A_xy = A_yx = A_yy = 0) relative to theirs.

Resemblance to the construction (`constructions.gd_model`: A* = [[I_d, 0], [0, 0]],
B* = -(eta/N) e_D e_D^T). `weight_resemblance` aligns c = <A, A*> / <A, A> (as `weights.interpolate`
does; it also fixes the sign) and reports cos(cA, A*), cos(B/c, B*); the cosines of A's x-x block,
of B's label row B[D, :] and read-out column B[:, D] with the construction's; the fraction of ||A||^2
outside the x-x block and of ||B||^2 outside the (D, D) entry, split into the parts a 1-layer
prediction depends on (A[:d, D]: query x with context label; B[:d, D]: context x into the read-out)
and those it cannot (A[D, :] multiplies the query's label slot, 0; B[:, :d] writes x slots nobody
reads); and eta_eff = -N mean(diag A_xx) B[D, D] (gauge invariant).
"""

from __future__ import annotations

import numpy as np

from icl import constructions, solvers, train, weights
from icl.config import ExperimentConfig


def frobenius_cosine(p: np.ndarray, q: np.ndarray) -> float:
    """<P, Q>_F / (||P||_F ||Q||_F) of two arrays of one shape, in float64; 0 when either is 0."""
    norm = np.linalg.norm(p) * np.linalg.norm(q)
    return float(np.sum(p * q) / norm) if norm > 0 else 0.0


def block_norms(a: np.ndarray, b: np.ndarray) -> dict:
    """Norms of the blocks outside the preconditioned-GD structure, relative to the GD blocks:
    A_xy, A_yx, A_yy relative to ||A_xx||; B_xx, B_yx (x-part of the label row), B_xy relative to |B_yy|;
    rank_one_share = ||A_xy B_xy^T|| / (||B_yy A_xx|| + ||A_xy B_xy^T||), the weight of Gamma's second route."""
    d = a.shape[0] - 1
    axx, byy = np.linalg.norm(a[:d, :d]), abs(b[d, d])
    return {
        "A_xy": float(np.linalg.norm(a[:d, d]) / axx), "A_yx": float(np.linalg.norm(a[d, :d]) / axx),
        "A_yy": float(abs(a[d, d]) / axx),
        "B_xx": float(np.linalg.norm(b[:d, :d]) / byy), "B_xy": float(np.linalg.norm(b[:d, d]) / byy),
        "B_yx": float(np.linalg.norm(b[d, :d]) / byy),
        "rank_one_share": float(np.linalg.norm(np.outer(a[:d, d], b[:d, d]))
                                / (np.linalg.norm(b[d, d] * a[:d, :d]) + np.linalg.norm(np.outer(a[:d, d], b[:d, d])))),
    }


def preconditioner_alignment(config: ExperimentConfig, params: dict) -> dict:
    """Per layer and seed (params [S, ...]): cos(Gamma_l, Sigma^-1), cos(Gamma_l, I), cos(Gamma_l,
    Gamma*) [L, S], the other blocks and Gamma_l [S][L], and the reference cosines."""
    sigma = config.task.input_covariance
    sigma_inv = np.linalg.inv(sigma)
    g_star = solvers.gamma_star(sigma, config.task.n_ctx)
    eye = np.eye(sigma.shape[0])
    rows = {"cos_sigma_inv": [], "cos_identity": [], "cos_gamma_star": [], "blocks": [], "gamma": []}
    for model in train.seed_models(config, params):
        per = {key: [] for key in rows}
        for layer in model.layers:
            a, b = weights.layer_products(layer)
            gamma = weights.preconditioner(layer, a.shape[0] - 1)["gamma"]
            per["cos_sigma_inv"].append(frobenius_cosine(gamma, sigma_inv))
            per["cos_identity"].append(frobenius_cosine(gamma, eye))
            per["cos_gamma_star"].append(frobenius_cosine(gamma, g_star))
            per["blocks"].append(block_norms(a, b))
            per["gamma"].append(gamma.tolist())
        for key in rows:
            rows[key].append(per[key])
    out = {key: np.asarray(rows[key]).T.tolist() for key in ("cos_sigma_inv", "cos_identity", "cos_gamma_star")}  # [L, S]
    out["blocks"], out["gamma"] = rows["blocks"], rows["gamma"]  # [S][L]
    out["reference"] = {"cos_sigma_inv_identity": frobenius_cosine(sigma_inv, eye),
                        "cos_gamma_star_sigma_inv": frobenius_cosine(g_star, sigma_inv),
                        "cos_gamma_star_identity": frobenius_cosine(g_star, eye)}
    return out


def weight_resemblance(model, target, n_ctx: int) -> dict:
    """How a trained 1-head linear layer's products (A, B) compare with the construction's (see the
    module docstring), after the gauge alignment (A, B) -> (cA, B/c), c = <A, A*> / <A, A>."""
    a, b = weights.layer_products(model.layers[0])  # [D, D]
    a_t, b_t = weights.layer_products(target.layers[0])
    c = weights.gauge(a, a_t)
    a, b = c * a, b / c
    d = a.shape[0] - 1
    norm_a, norm_b = np.sum(a**2), np.sum(b**2)
    return {
        "c": c,
        "cos_A": frobenius_cosine(a, a_t), "cos_B": frobenius_cosine(b, b_t),
        "cos_A_xx": frobenius_cosine(a[:d, :d], a_t[:d, :d]),
        "cos_B_label_row": frobenius_cosine(b[d], b_t[d]),
        "cos_B_readout_col": frobenius_cosine(b[:, d], b_t[:, d]),
        "zero_frac_A": float((norm_a - np.sum(a[:d, :d] ** 2)) / norm_a),
        "zero_frac_A_relevant": float(np.sum(a[:d, d] ** 2) / norm_a),
        "zero_frac_A_irrelevant": float(np.sum(a[d] ** 2) / norm_a),
        "zero_frac_B": float((norm_b - b[d, d] ** 2) / norm_b),
        "zero_frac_B_relevant": float(np.sum(b[:d, d] ** 2) / norm_b),
        "zero_frac_B_irrelevant": float(np.sum(b[:, :d] ** 2) / norm_b),
        "eta_eff": float(-n_ctx * np.mean(np.diag(a[:d, :d])) * b[d, d]),
        "A": a.tolist(), "B": b.tolist(),
    }


def construction_resemblance(config: ExperimentConfig, params: dict, eta: float) -> list[dict]:
    """`weight_resemblance` of every seed's first layer (params [S, ...]) to one GD step at rate eta."""
    target = constructions.gd_model(config.task.d, config.task.n_ctx, eta, layers=1)
    return [weight_resemblance(m, target, config.task.n_ctx) for m in train.seed_models(config, params)]
