"""Does the first layer of a "classic"-token model copy each label y_i next to its input x_i?

With tokens x_1, y_1, ..., x_N, y_N, x_q (`token_layout="separate"`), the token sensitivity of the
first layer is
    S_ij = E_tasks || d h1(x_i) / d y_j ||_2,
the norm of the gradient of the first layer's output at token x_i with respect to the label token
y_j. A layer that copies y_i into x_i's token (an induction-head-like step, von Oswald et al. 2023,
Sec. 4) concentrates S on the diagonal:
    copy_score = mean_i S_ii / sum_j S_ij,
1 for a perfect copy, 1/N for no preference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icl import runs, train
from icl.config import ExperimentConfig

SENSITIVITY_TASKS = 2000  # held-out tasks S is averaged over


def token_sensitivities(model, batch) -> np.ndarray:
    """S [N, N]: mean over the batch's tasks of || d h1(x_i) / d y_j || (h1 = the first layer's
    output tokens; x_i sits at token 2i, y_i at 2i + 1)."""
    n = batch.n_ctx

    def first_layer_x_tokens(y_ctx, x_ctx, x_query):  # one task: y_ctx [N] -> h1 at the x tokens [N, D]
        tokens = model.tokens(x_ctx[None], y_ctx[None], x_query[None])
        return model.layers[0](tokens, 2 * n)[0, 0 : 2 * n : 2]

    jac = jax.vmap(jax.jacfwd(first_layer_x_tokens))(batch.y_ctx, batch.x_ctx, batch.x_query)  # [B, N, D, N]
    return np.asarray(jnp.linalg.norm(jac, axis=2).mean(0))


def copy_score(s: np.ndarray) -> float:
    """mean_i S_ii / sum_j S_ij of a sensitivity matrix S [N, N]."""
    return float(np.mean(np.diag(s) / s.sum(1)))


def sensitivities(config: ExperimentConfig, params: dict, batch) -> list[np.ndarray]:
    """S [N, N] of every seed's model (params stacked [S, ...])."""
    return [token_sensitivities(model, batch) for model in train.seed_models(config, params)]


def evaluate(config: ExperimentConfig, params: dict, summary: dict) -> dict:
    """The study's numbers: losses of the final table (model per seed, one GD step, least squares,
    zero), the model-vs-GD measures, and the copy score and mean S of the trained and the initial
    parameters, on `SENSITIVITY_TASKS` tasks of the final held-out key."""
    batch = config.task.sample(train.heldout_key(config, train.HeldOut.FINAL), SENSITIVITY_TASKS)
    sens = {"trained": sensitivities(config, params, batch), "init": sensitivities(config, runs.initial_params(config), batch)}
    gd = summary["solvers"]["gd"]
    return {
        "n_tasks": summary["n_tasks"],
        "zero_loss": summary["zero_loss"],
        "model_loss": runs.stats(summary["model"]["loss"]),
        "gd_loss": gd["loss"],
        "gd_eta": gd["hparams"]["lr"],
        "least_squares_loss": summary["solvers"]["least_squares"]["loss"],
        **{k: runs.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "copy_score_trained": runs.stats([copy_score(s) for s in sens["trained"]]),
        "copy_score_init": runs.stats([copy_score(s) for s in sens["init"]]),
        "sensitivity_trained_mean": np.mean(sens["trained"], 0).tolist(),
        "sensitivity_init_mean": np.mean(sens["init"], 0).tolist(),
        "sensitivity_tasks": int(batch.batch_size),
        "train_wall_s": summary["wall_s"],
        "train_steps_per_s": summary["train_steps_per_s"],
    }
