"""Which learning algorithm is a trained in-context learner closest to? (Akyürek et al. 2022, Sec. 4)

Trained transformers' predictions match one step of GD when they are small, and ridge regression at
the Bayes-optimal lam = sigma^2 / tau^2 (least squares without noise) when they are deep. On held-out
contexts with M probe queries each (from the task's input distribution) every learner f gets an
implicit linear fit (`icl.probes.implicit_fit`: w_hat the least-squares fit of its predictions on the
probes), and the closest algorithm is measured by
    SPD(f, g)  = E_D E_x (f(x | D) - g(x | D))^2           squared prediction difference
    ILWD(f, g) = E_D ||w_hat_f(D) - w_hat_g(D)||^2          implicit linear weight difference
With isotropic probes E_x (dw . x)^2 = ||dw||^2, so for linear learners SPD ~ ILWD up to sampling.
The algorithms (`algorithms`):
  gd1     one GD step at the closed-form optimal lr (`solvers.optimal_gd_lr`);
  gd<L>   L steps of GD, lr tuned for L steps on tuning tasks (`tuning.tune_gd`);
  ridge   ridge at lam = sigma^2 / tau^2 (sigma > 0 only; at sigma = 0 it is least squares);
  ls      least squares.
Each model seed is also matched to the ridge lam of a grid closest to it by ILWD.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from icl import compare, probes, runs, solvers, train
from icl.analysis.depth import off_plateau
from icl.analysis.tuning import tune_gd
from icl.compare import Predictor
from icl.config import ExperimentConfig
from icl.tasks.base import Batch

METRICS = ("spd", "ilwd")
GD_LR_RANGE = 1.6  # gd<L>'s lr is tuned on [0, 1.6 eta_1]


def algorithms(config: ExperimentConfig, depths: Sequence[int], n_tune: int) -> tuple[dict[str, Predictor], dict[str, dict]]:
    """({key: predictor}, {key: hyper-parameters}) of gd1, gd<L> for every depth L > 1 (lr tuned on
    `n_tune` tuning tasks), ridge (when the task has label noise) and ls, for `config.task`."""
    task = config.task
    eta1 = solvers.optimal_gd_lr(task, train.heldout_key(config, train.HeldOut.GD_LR))
    tune_batch = task.sample(train.heldout_key(config, train.HeldOut.TUNE), n_tune)
    preds: dict[str, Predictor] = {"gd1": functools.partial(solvers.gd, lr=eta1, steps=1)}
    hparams: dict[str, dict] = {"gd1": {"lr": eta1, "steps": 1, "tuning": "closed form E[a y] / E[a^2]"}}
    for depth in depths:
        if depth > 1:
            lr = tune_gd(tune_batch, depth, GD_LR_RANGE * eta1)
            preds[f"gd{depth}"] = functools.partial(solvers.gd, lr=lr, steps=depth)
            hparams[f"gd{depth}"] = {"lr": lr, "steps": depth, "tuning": "201-point grid on [0, 1.6 eta_1] then golden section"}
    if task.noise_std > 0:
        lam = (task.noise_std / task.weight_std) ** 2
        preds["ridge"] = functools.partial(solvers.ridge, lam=lam)
        hparams["ridge"] = {"lam": lam}
    preds["ls"] = solvers.least_squares
    hparams["ls"] = {}
    return preds, hparams


def fit(predict: Predictor, batch: Batch) -> probes.ImplicitFit:
    """The implicit linear fit of `predict` on the contexts of `batch`, its queries as the probes."""
    return probes.implicit_fit(predict, batch.x_ctx, batch.y_ctx, batch.x_query)


def algorithm_table(fits: Mapping[str, probes.ImplicitFit], batch: Batch) -> dict:
    """{"algorithm_loss": {key: loss on the probes' labels}, "algorithm_distances": {"a|b": {"spd",
    "ilwd"}} for every pair a before b}."""
    keys = list(fits)
    return {
        "algorithm_loss": {k: float(compare.loss(f.predictions, batch.y_query)) for k, f in fits.items()},
        "algorithm_distances": {f"{a}|{b}": {m: float(v) for m, v in probes.distances(fits[a], fits[b]).items()}
                                for i, a in enumerate(keys) for b in keys[i + 1:]},
    }


def model_distances(models: Sequence, batch: Batch, fits: Mapping[str, probes.ImplicitFit], lam_grid: np.ndarray) -> dict[str, list[float]]:
    """Per seed (one model each): loss, linear_residual (the implicit fit's residual / the predictions'
    mean square), the ridge lam of lam_grid closest by ILWD and that ILWD, and "<metric>_<key>" to
    every algorithm. {name: [S]}."""
    ridge_path = [solvers.ridge_weights(batch.x_ctx, batch.y_ctx, float(lam)) for lam in lam_grid]  # [G] x [B, d]
    rows: dict[str, list[float]] = {"loss": [], "linear_residual": [], "best_ridge_lam": [], "best_ridge_ilwd": [],
                                    **{f"{m}_{k}": [] for k in fits for m in METRICS}}
    for model in models:
        own = fit(model.predict, batch)
        rows["loss"].append(float(compare.loss(own.predictions, batch.y_query)))
        rows["linear_residual"].append(float(own.residual_mse.mean() / (own.predictions**2).mean()))
        path = [float(probes.ilwd(own.weights, w)) for w in ridge_path]  # ILWD to ridge(lam) along the grid
        rows["best_ridge_lam"].append(float(lam_grid[int(np.argmin(path))]))
        rows["best_ridge_ilwd"].append(float(np.min(path)))
        for k, algo in fits.items():
            for m, v in probes.distances(own, algo).items():
                rows[f"{m}_{k}"].append(float(v))
    return rows


def closest(values: Mapping[str, float], keys: Sequence[str], metric: str) -> str:
    """The algorithm key whose values["<metric>_<key>"] is smallest (the first on ties)."""
    return min(keys, key=lambda k: values[f"{metric}_{k}"])


def summarise(rows: Mapping[str, list[float]], keys: Sequence[str], plateau_loss: float) -> tuple[dict, dict]:
    """({"closest_per_seed", "off_plateau", "closest_by_mean"}: the closest algorithm per seed, over
    the seeds off the initial plateau (loss < plateau_loss, with their means of every row) and by the
    mean over seeds; {row: stats over seeds})."""
    n_seeds = len(rows["loss"])
    per_seed = {m: [closest({k: v[s] for k, v in rows.items()}, keys, m) for s in range(n_seeds)] for m in METRICS}
    off, plateau = off_plateau(rows["loss"], plateau_loss, rows)
    if off.any():
        plateau["best_ridge_lam_median"] = float(np.median(np.asarray(rows["best_ridge_lam"])[off]))
        plateau["closest"] = {m: closest(plateau, keys, m) for m in METRICS}
    by_mean = {m: closest({k: np.mean(v) for k, v in rows.items()}, keys, m) for m in METRICS}
    return ({"closest_per_seed": per_seed, "off_plateau": plateau, "closest_by_mean": by_mean},
            {k: runs.stats(v) for k, v in rows.items()})
