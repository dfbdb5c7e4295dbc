"""Deep LSA stacks: training that may diverge or stall, and every layer against as many solver steps
(von Oswald et al. 2023, Figs. 3-4).

A K-layer stack is compared with K steps of GD (lr tuned for K steps) and of GD++ (lr, gamma fitted;
`icl.analysis.tuning`), and the read-out after its layer l (`compare.layer_predictors`) with l steps
of each at the same hyper-parameters: loss, model_cos (cosine of the sensitivities d y_hat / d x_q),
model_diff and preds_diff (`icl.compare`).

Deep unshared stacks are unstable (docs/math.md): a run whose loss turns non-finite stops with
`train.TrainingDiverged` and is evaluated at its last good checkpoint (`runs.train_or_last_good`). A seed
can also stay on the initial loss plateau; `off_plateau` summarises the seeds that left it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from icl import compare, runs, solvers, train
from icl.config import ExperimentConfig
from icl.tasks.base import Batch

METRICS = ("model_cos", "model_diff", "preds_diff")
SOLVERS = ("gd", "gd_plus_plus")


def solver_losses(batch: Batch, steps: int, hparams: Mapping[str, float]) -> dict:
    """{"gd_loss", "gd_plus_plus_loss"} of `steps` steps of GD and GD++ at `hparams` (tune_depth's keys) on `batch`."""
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    gd = solvers.gd(xc, yc, xq, lr=hparams["gd_lr"], steps=steps)
    pp = solvers.gd_plus_plus(xc, yc, xq, lr=hparams["gd_plus_plus_lr"], gamma=hparams["gd_plus_plus_gamma"], steps=steps)
    return {"gd_loss": float(compare.loss(gd, batch.y_query)), "gd_plus_plus_loss": float(compare.loss(pp, batch.y_query))}


def compare_layers(config: ExperimentConfig, params: dict, batch: Batch, hparams: Mapping[str, float]) -> dict:
    """Per seed of params [S, ...]: the read-out after every layer l of the stack vs l steps of GD and
    of GD++ at `hparams` (tune_depth's keys, for K steps). {"final": the row of layer K, "layers":
    [row per layer]}, a row {"loss": [S], "gd_loss", "gd_plus_plus_loss", "<metric>_<solver>": [S]}."""
    spec = train.model_spec(config)
    gd_hp = {"lr": hparams["gd_lr"]}
    pp_hp = {"lr": hparams["gd_plus_plus_lr"], "gamma": hparams["gd_plus_plus_gamma"]}

    def one(p, b):
        out = {}
        for i, layer_predict in enumerate(compare.layer_predictors(spec.model(p))):
            gd = lambda xc, yc, xq, s=i + 1: solvers.gd(xc, yc, xq, steps=s, **gd_hp)
            pp = lambda xc, yc, xq, s=i + 1: solvers.gd_plus_plus(xc, yc, xq, steps=s, **pp_hp)
            out[i] = {"gd": compare.compare(layer_predict, gd, b), "gd_plus_plus": compare.compare(layer_predict, pp, b)}
        return out

    raw = jax.device_get(jax.jit(jax.vmap(one, in_axes=(0, None)))(params, batch))
    layers = []
    for i in range(config.model.n_layers):
        row = {"loss": raw[i]["gd"]["loss"].tolist(), "gd_loss": float(raw[i]["gd"]["loss_other"][0]),
               "gd_plus_plus_loss": float(raw[i]["gd_plus_plus"]["loss_other"][0])}
        for name in SOLVERS:
            for metric in METRICS:
                row[f"{metric}_{name}"] = raw[i][name][metric].tolist()
        layers.append(row)
    return {"final": layers[-1], "layers": layers}


def off_plateau(loss: Sequence[float], threshold: float, values: Mapping[str, Sequence[float]]) -> tuple[np.ndarray, dict]:
    """(mask [S] of the seeds whose loss is below `threshold`, i.e. that left the initial loss
    plateau; {"seeds": their indices, key: the mean of values[key] over them (when there are any)})."""
    off = np.asarray(loss) < threshold
    out: dict = {"seeds": np.flatnonzero(off).tolist()}
    if off.any():
        out.update({key: float(np.mean(np.asarray(v)[off])) for key, v in values.items()})
    return off, out


def summarise(result: dict, plateau_loss: float) -> dict:
    """The numbers of one stack: stats over seeds of every per-seed measurement of its last layer
    and of every layer, the solvers' losses, and the means over the seeds off the plateau."""
    final = result["final"]
    out = {key: runs.stats(v) for key, v in final.items() if isinstance(v, list)}
    out.update({key: final[key] for key in ("gd_loss", "gd_plus_plus_loss")})
    per_layer = [{key: (runs.stats(v) if isinstance(v, list) else v) for key, v in row.items()} for row in result["layers"]]
    _, means = off_plateau(final["loss"], plateau_loss, {k: final[k] for k in ("loss", "model_cos_gd", "model_cos_gd_plus_plus")})
    plateau = {"seeds": means.pop("seeds"), "median_loss": float(np.median(final["loss"])), **means}
    return {"final": out, "per_layer": per_layer, "diverged": result["diverged"], "off_plateau": plateau,
            "train_steps_per_s": result["train_steps_per_s"], "train_wall_s": result["train_wall_s"],
            "final_log_step": result["log"][-1]["step"] if result["log"] else 0}
