"""How close is a trained one-layer LSA to the optimal preconditioner Gamma*?

For x ~ N(0, Sigma), w ~ N(0, tau^2 I), eps ~ N(0, sigma^2) and N context examples, the best
predictor y_hat = x_q^T Gamma X^T y has (`solvers.gamma_star`, Ahn et al. 2023)
    Gamma* = ((N + 1) Sigma + (tr Sigma + sigma^2 / tau^2) I)^-1.
A one-layer LSA on a query [x_q, 0] predicts (`weights.preconditioner`)
    y_hat = x_q^T Gamma X^T y - x_q^T A_xx X^T X b_x - (x_q . a_xy)(y^T X b_x + y^T y b_y),
    Gamma = -sum_h (b_y^h A_xx^h + a_xy^h (b_x^h)^T),
read off the weights. Distances are relative Frobenius norms, ||G - T||_F / ||T||_F; the nearest
member c B of a family (B = I: plain GD; B = Sigma^-1: Newton-like) has c = <G, B> / <B, B>.
The rank-one share ||sum_h a_xy^h (b_x^h)^T||_F / ||Gamma||_F is the part of Gamma carried by the
route that also switches on the two non-GD terms (0 for the construction).
"""

from __future__ import annotations

import numpy as np

from icl import runs, solvers, train, weights
from icl.analysis import length_shift
from icl.config import ExperimentConfig

CONVERGED = 0.1  # a seed whose ||Gamma - Gamma*|| / ||Gamma*|| is below this counts as converged


def relative_distance(gamma: np.ndarray, target: np.ndarray) -> float:
    """||gamma - target||_F / ||target||_F."""
    return float(np.linalg.norm(gamma - target) / np.linalg.norm(target))


def best_multiple(gamma: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """c * basis with c = <gamma, basis> / <basis, basis>, the least-squares fit (the closest
    member of that family to gamma)."""
    return float(np.sum(gamma * basis) / np.sum(basis * basis)) * basis


def parts(config: ExperimentConfig, params: dict) -> list[dict[str, np.ndarray]]:
    """`weights.preconditioner` of every seed's (first) layer."""
    return [weights.preconditioner(m.layers[0], config.task.d) for m in train.seed_models(config, params)]


def gammas(config: ExperimentConfig, params: dict) -> list[np.ndarray]:
    """Gamma [d, d] of every seed."""
    return [p["gamma"] for p in parts(config, params)]


def rank_one_share(config: ExperimentConfig, params: dict) -> list[float]:
    """||sum_h a_xy^h (b_x^h)^T||_F / ||Gamma||_F per seed (large for a seed stalled in a trap)."""
    return [float(np.linalg.norm(np.einsum("hd,he->de", p["a_xy"], p["b_x"])) / np.linalg.norm(p["gamma"]))
            for p in parts(config, params)]


def optimum(config: ExperimentConfig, n_ctx: int | None = None, noisy: bool = True) -> np.ndarray:
    """Gamma* of the config's task at `n_ctx` (default its own), with or without its label noise."""
    task = config.task
    hyper = (task.noise_std, task.weight_std) if noisy else ()
    return solvers.gamma_star(task.input_covariance, task.n_ctx if n_ctx is None else n_ctx, *hyper)


def distances(config: ExperimentConfig, gamma: np.ndarray) -> dict[str, float]:
    """Distance of a trained Gamma to Gamma*; the distances of the best c I and c Sigma^-1 to
    Gamma*; Gamma's own distance to its best c I (0: it is plain GD); with label noise, Gamma's
    distance to the noiseless Gamma* and that one's to the noisy Gamma*."""
    d, sigma = config.task.d, config.task.input_covariance
    star = optimum(config)
    out = {
        "gamma_star": relative_distance(gamma, star),
        "best_multiple_of_identity": relative_distance(best_multiple(star, np.eye(d)), star),
        "best_multiple_of_sigma_inverse": relative_distance(best_multiple(star, np.linalg.inv(sigma)), star),
        "trained_from_multiple_of_identity": relative_distance(gamma, best_multiple(gamma, np.eye(d))),
    }
    if config.task.noise_std > 0:
        out["noiseless_gamma_star"] = relative_distance(gamma, optimum(config, noisy=False))
        out["noiseless_vs_noisy_gamma_star"] = relative_distance(optimum(config, noisy=False), star)
    return out


def distances_to_optimum(config: ExperimentConfig, params: dict) -> list[float]:
    """||Gamma - Gamma*||_F / ||Gamma*||_F of every seed (the over-training curve's measure)."""
    star = optimum(config)
    return [relative_distance(g, star) for g in gammas(config, params)]


def summarise(config: ExperimentConfig, summary: dict, params: dict, curve: dict, test_lengths, setting: str) -> dict:
    """One setting's numbers: distances per seed (`distances`, runs.stats), the converged seeds
    (distance < CONVERGED), the rank-one share, seed 0's Gamma and Gamma*, the losses at the
    training length (model, closed forms, baselines), the extra terms' share of the loss
    ((model - preconditioned GD with its own Gamma) / the latter, same tasks), the length shift
    (`length_shift.rows`) and the distance curve `curve`."""
    task = config.task
    gamma_list = gammas(config, params)
    per_seed = [distances(config, g) for g in gamma_list]
    converged = [i for i, s in enumerate(per_seed) if s["gamma_star"] < CONVERGED]
    shift = length_shift.rows(config, params, gamma_list, test_lengths, config.train.final_eval_tasks, converged)
    at_train_n = next(r for r in shift["rows"] if r["n_test"] == task.n_ctx)
    return {
        "setting": setting,
        "task": {"covariance": task.covariance if isinstance(task.covariance, str) else "matrix",
                 "condition_number": task.condition_number, "noise_std": task.noise_std},
        "distances": {k: runs.stats([s[k] for s in per_seed]) for k in per_seed[0]},
        "converged_seeds": converged,
        "distance_of_converged_seeds": [s["gamma_star"] for s in per_seed if s["gamma_star"] < CONVERGED],
        "rank_one_path_share": rank_one_share(config, params),
        "gamma_trained_seed0": gamma_list[0].tolist(),
        "gamma_star": optimum(config).tolist(),
        "loss": {
            "model_summary": runs.stats(summary["model"]["loss"]),
            "model_at_train_n": at_train_n["model_measured"],
            "closed_form_trained_gamma": at_train_n["closed_form_trained_gamma"],
            "closed_form_gamma_star": at_train_n["closed_form_gamma_star_train_n"],
            "one_step_gd_optimal_eta": summary["solvers"]["gd"]["loss"],
            "least_squares": summary["solvers"]["least_squares"]["loss"],
            "zero": summary["zero_loss"],
        },
        "extra_terms_loss_share": runs.stats([
            (m - g) / g for m, g in zip(at_train_n["model_measured"]["values"], at_train_n["own_gamma_measured"], strict=True)
        ]),
        "length_shift": shift,
        "distance_over_training": curve,
        "train_wall_s": summary["wall_s"],
    }
