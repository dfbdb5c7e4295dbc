"""Explicit learners on a model's learned features (von Oswald et al. 2023, Sec. 4 and Fig. 5).

A model with an input embedding f (an MLP x -> f(x) in R^D, `model.embed`) followed by one linear
self-attention layer can be compared with explicit learners that run on the same features:
  GD on features             one GD step from w = 0 on (f(x_i), y_i):
                             y_hat(x_q) = (lr / N) sum_i y_i f(x_i) . f(x_q)   (`solvers.gd`)
  least squares on features  the min-norm least-squares fit on (f(x_i), y_i) (D > N: interpolates)
The one-step rate that is optimal on a batch is closed form: with a = (1/N) sum_i y_i f(x_i) . f(x_q)
(`solvers.gd_direction`), lr* = argmin_lr sum (lr a - y_q)^2 = sum a y_q / sum a^2.
Does a trained transformer do GD on its own features? Compare it with GD on them at lr*.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, solvers
from icl.compare import Predictor
from icl.tasks.base import Batch

PER_SEED = ("tf_vs_gdfeat_cos", "tf_vs_gdfeat_preds_diff", "tf_own_features_gd_loss", "tf_own_features_gd_lr",
            "tf_vs_own_features_gd_cos", "tf_features_lstsq_loss", "gd_features_lstsq_loss")


def gd_on_features(model, lr: float) -> Predictor:
    """One GD step at rate lr on the features model.embed(x)."""
    def predict(x_ctx, y_ctx, x_query):  # [B, N, d], [B, N], [B, M, d] -> [B, M]
        return solvers.gd(model.embed(x_ctx), y_ctx, model.embed(x_query), lr=lr)
    return predict


def least_squares_on_features(model) -> Predictor:
    """Min-norm least squares on the features model.embed(x)."""
    def predict(x_ctx, y_ctx, x_query):  # [B, N, d], [B, N], [B, M, d] -> [B, M]
        return solvers.least_squares(model.embed(x_ctx), y_ctx, model.embed(x_query))
    return predict


def optimal_feature_lr(model, batch: Batch) -> float:
    """The one-step GD rate on model.embed's features with the lowest loss on `batch`:
    sum a y_q / sum a^2 with a the GD direction (solvers.gd_direction)."""
    a = solvers.gd_direction(model.embed(batch.x_ctx), batch.y_ctx, model.embed(batch.x_query))  # [B, M]
    return float(jnp.sum(a * batch.y_query) / jnp.sum(a * a))


def compare_feature_learners(tf_models: Sequence, gd_models: Sequence, validation: Batch, test: Batch) -> dict[str, list[float]]:
    """Per seed (tf_models[s] trained end to end, gd_models[s] GD on learned features), on `test`:
    the two models' model_cos / preds_diff; GD on the TF's own features at the rate optimal on
    `validation` (its loss, rate and model_cos with the TF); least squares on each model's features.
    {key of PER_SEED: [S]}."""
    per_seed: dict[str, list[float]] = {k: [] for k in PER_SEED}
    for tf, gdm in zip(tf_models, gd_models, strict=True):
        both = compare.compare(tf.predict, gdm.predict, test)
        per_seed["tf_vs_gdfeat_cos"].append(float(both["model_cos"]))
        per_seed["tf_vs_gdfeat_preds_diff"].append(float(both["preds_diff"]))
        lr = optimal_feature_lr(tf, validation)
        own = compare.compare(tf.predict, gd_on_features(tf, lr), test)
        per_seed["tf_own_features_gd_lr"].append(lr)
        per_seed["tf_own_features_gd_loss"].append(float(own["loss_other"]))
        per_seed["tf_vs_own_features_gd_cos"].append(float(own["model_cos"]))
        for key, model in (("tf_features_lstsq_loss", tf), ("gd_features_lstsq_loss", gdm)):
            y_hat = least_squares_on_features(model)(test.x_ctx, test.y_ctx, test.x_query)
            per_seed[key].append(float(compare.loss(y_hat, test.y_query)))
    return per_seed


def sine_example(task, key: jax.Array, predictors: dict[str, Predictor], n_points: int = 201) -> dict:
    """One task of a sine family drawn with `key`, and every predictor's output on a grid of n_points
    queries over [-input_range, input_range]. The true function A sin(x + phi) = a sin x + b cos x
    is recovered from the (noise-free) context by least squares on (sin x_i, cos x_i).
    {"x", "truth", "x_ctx", "y_ctx", name: predictions} (lists)."""
    batch = task.sample(key, 1)
    r = task.input_range
    grid = jnp.linspace(-r, r, n_points)[None, :, None].astype(batch.x_ctx.dtype)  # [1, n_points, 1]
    x_ctx = batch.x_ctx[0, :, 0]  # [N]
    a, b = np.linalg.lstsq(np.stack([np.sin(x_ctx), np.cos(x_ctx)], -1), np.asarray(batch.y_ctx[0]), rcond=None)[0]
    truth = a * np.sin(grid[0, :, 0]) + b * np.cos(grid[0, :, 0])
    out = {"x": np.asarray(grid[0, :, 0]).tolist(), "truth": np.asarray(truth).tolist(),
           "x_ctx": np.asarray(x_ctx).tolist(), "y_ctx": np.asarray(batch.y_ctx[0]).tolist()}
    return out | {name: np.asarray(predict(batch.x_ctx, batch.y_ctx, grid)[0]).tolist() for name, predict in predictors.items()}

