"""A trained LSA stack against the GD construction: the model interpolated towards it, and both
under a shift of the test inputs (von Oswald et al. 2023, Fig. 2).

Interpolation (`weights.interpolate`) works in the product space of each layer,
A = W_q W_k^T and B = W_v W_o, the only products a linear attention layer's function depends on:
the trained (A, B) is first rescaled to (cA, B / c), c = <A, A*> / <A, A> (the scale the pair
leaves free, fitted to the construction's A*), then mixed, (1 - t)(cA, B / c) + t (A*, B*). The
target is `constructions.gd_model(d, N, lr=eta)`, whose one layer IS one GD step at rate eta;
t = 1/2 is the paper's "interpolated" model. If the trained model is GD up to that scale, the
interpolated model has the same loss as both.

Out of distribution, test inputs are scaled x -> alpha x (`compare.input_scale_variants`) while
eta stays the one fitted at alpha = 1; a model that implements GD follows GD's loss at every alpha.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from icl import compare, constructions, runs, solvers, train, weights
from icl.config import ExperimentConfig

HALFWAY = 0.5  # t of the paper's interpolated model


def interpolated_params(config: ExperimentConfig, params: dict, eta: float, t: float = HALFWAY) -> dict:
    """Per seed, `weights.interpolate(model, gd_model(eta), t)` as parameters stacked [S, ...]
    (a model of `config`'s spec with key size d + 1)."""
    target = constructions.gd_model(config.task.d, config.task.n_ctx, lr=eta, layers=config.model.n_layers)
    mids = [weights.interpolate(model, target, t) for model in train.seed_models(config, params)]
    return runs.stack_seeds([nnx.to_pure_dict(nnx.state(mid, nnx.Param)) for mid in mids])


def piece_metrics(trainer: train.Trainer, params: dict, batch, eta: float) -> dict:
    """The trained and the interpolated model vs one GD step (rate eta) on `batch`: per seed
    "model_loss", "interp_loss", "interp_model_cos", "model_cos" [S] and the GD loss."""
    evaluate = trainer.evaluator(functools.partial(solvers.gd, lr=eta))
    model = jax.device_get(evaluate(params, batch))
    mid = jax.device_get(evaluate(interpolated_params(trainer.config, params, eta), batch))
    return {
        "model_loss": model["loss"].tolist(), "gd_loss": float(model["ref_loss"][0]),
        "interp_loss": mid["loss"].tolist(), "interp_model_cos": mid["model_cos"].tolist(),
        "model_cos": model["model_cos"].tolist(),
    }


def piece_table(measured: dict[str, dict]) -> dict:
    """{str(step): piece_metrics} (as `runs.train_in_pieces` returns it) -> {"steps": [P], and per
    metric its values in step order: "model_loss", "interp_loss", "interp_model_cos", "model_cos"
    [P, S], "gd_loss" [P]}."""
    steps = sorted(int(s) for s in measured)
    keys = ("model_loss", "interp_loss", "interp_model_cos", "model_cos", "gd_loss")
    return {"steps": steps, **{k: [measured[str(s)][k] for s in steps] for k in keys}}


def ood_sweep(config: ExperimentConfig, params: dict, eta: float, alphas: np.ndarray, n_tasks: int) -> dict:
    """Loss at every input scale alpha (each on `n_tasks` tasks from the OOD held-out key) of one
    GD step at `eta`, and of every seed's trained and interpolated model:
    {"alphas", "gd": [A], "model" / "interpolated": runs.stats over seeds of [A, S]}."""
    spec = train.model_spec(config)
    n_seeds = config.train.n_seeds
    predictors = {"gd": jax.jit(lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta))}
    per_kind = {"model": runs.unstack_seeds(params, n_seeds),
                "interpolated": runs.unstack_seeds(interpolated_params(config, params, eta), n_seeds)}
    for i in range(n_seeds):
        for kind, trees in per_kind.items():
            predictors[f"{kind}/{i}"] = jax.jit(lambda xc, yc, xq, p=trees[i]: spec.model(p).predict(xc, yc, xq))
    key = train.heldout_key(config, train.HeldOut.OOD)
    losses = compare.sweep(predictors, compare.input_scale_variants(config.task, alphas), key, n_tasks)
    per_seed = {kind: np.array([losses[f"{kind}/{i}"] for i in range(n_seeds)]).T for kind in per_kind}  # [A, S]
    return {"alphas": np.asarray(alphas).tolist(), "gd": losses["gd"], "model": runs.stats(per_seed["model"]),
            "interpolated": runs.stats(per_seed["interpolated"])}
