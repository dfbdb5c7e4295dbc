"""A one-layer LSA trained at context length N, tested at other lengths N'.

Zhang, Frei & Bartlett (2024, Thm. 4.2): the trained model's test loss at N' is that of
preconditioned GD with Gamma*(N) applied at N'. For x ~ N(0, Sigma) it has a closed form
(`solvers.preconditioned_loss(Gamma, Sigma, N', sigma, tau)`), set next to the best possible
preconditioner at that length, Gamma*(N'), and to the measured loss, 0.5 (y_hat - y)^2 averaged over
held-out tasks, of every seed's model and of preconditioned GD with that seed's own Gamma.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers, train
from icl.config import ExperimentConfig


def measured_loss(model, batch) -> tuple[float, float]:
    """Mean and standard error of 0.5 (y_hat - y)^2 of `model` over the batch's queries (float64)."""
    sq = 0.5 * np.asarray(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query, np.float64) ** 2
    return float(sq.mean()), float(sq.std() / np.sqrt(sq.size))


def own_gamma_loss(gamma: np.ndarray, batch) -> float:
    """Loss of preconditioned GD with `gamma` [d, d] on the batch."""
    y_hat = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=jnp.asarray(gamma, batch.x_ctx.dtype))
    return float(compare.loss(y_hat, batch.y_query))


def rows(config: ExperimentConfig, params: dict, gammas: list[np.ndarray], test_lengths, n_tasks: int,
         converged: list[int]) -> dict:
    """{"rows": one per N' of `test_lengths`}: each seed's measured loss (runs.stats, mean standard
    error, and the seeds of `converged` alone: the theory speaks of the optimum, not a stalled
    seed), preconditioned GD with each seed's Gamma on the same tasks, and the closed forms for the
    trained Gammas, Gamma*(N) and Gamma*(N'). The tasks at the i-th length come from
    fold_in(held-out key EXTRA, i)."""
    task, sigma = config.task, config.task.input_covariance
    hyper = (task.noise_std, task.weight_std)
    star = solvers.gamma_star(sigma, task.n_ctx, *hyper)
    models = train.seed_models(config, params)
    out = []
    for i, n_test in enumerate(test_lengths):
        key = jax.random.fold_in(train.heldout_key(config, train.HeldOut.EXTRA), i)
        batch = dataclasses.replace(task, n_ctx=n_test).sample(key, n_tasks)
        measured, stderr = zip(*(measured_loss(model, batch) for model in models), strict=True)
        out.append({
            "n_test": n_test,
            "model_measured": runs.stats(list(measured)),
            "model_stderr": float(np.mean(stderr)),
            "model_measured_converged_seeds": [measured[s] for s in converged],
            "own_gamma_measured": [own_gamma_loss(g, batch) for g in gammas],
            "closed_form_trained_gamma": runs.stats([solvers.preconditioned_loss(g, sigma, n_test, *hyper) for g in gammas]),
            "closed_form_gamma_star_train_n": solvers.preconditioned_loss(star, sigma, n_test, *hyper),
            "closed_form_gamma_star_test_n": solvers.preconditioned_loss(solvers.gamma_star(sigma, n_test, *hyper), sigma, n_test, *hyper),
        })
    return {"rows": out}
