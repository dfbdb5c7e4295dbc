"""Explicit learners the models are compared against, behind one interface and registry:

    predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] or [B, d], **hparams) -> [B, M] or [B]

`solvers.names()` lists them, `solvers.get(name)` returns the function. A *spec* names a solver
with some hyper-parameters fixed, `"ridge(lam=0.1)"` or `"knn(k=5)"`; `parse_spec` reads it, and
experiment configs (`compare_against`) and task families (`baselines`) may use specs wherever
they use names. `prefix_predictions` / `error_curve` evaluate any solver on every prefix of the
context at once. Every solver runs its matrix products at "highest" precision on every backend
(`icl.precision`).
"""

from __future__ import annotations

import json
import math
import re

from icl.solvers.baselines import (
    averaging,
    dmmse,
    dmmse_posterior,
    kernel_ridge,
    knn,
    lasso,
    lasso_weights,
    logistic_regression,
    logistic_weights,
    mean_label,
    soft_threshold,
)
from icl.solvers.linear import (
    bayes_ridge,
    gd,
    gd_plus_plus,
    gd_weights,
    least_squares,
    newton,
    preconditioned_gd,
    ridge,
    ridge_weights,
)
from icl.solvers.optimal import gamma_star, gd_direction, optimal_gd_lr, preconditioned_loss
from icl.solvers.prefix import bootstrap_band, error_curve, prefix_masks, prefix_predictions

def _noise(task) -> float:
    return float(getattr(task, "noise_std", 0.0))


def _weight(task) -> float:
    return float(getattr(task, "weight_std", 1.0))


def _gamma_star(task, _key):
    if not hasattr(task, "input_covariance"):
        raise ValueError(f"preconditioned_gd needs gamma_matrix for task family {task.family!r}")
    return gamma_star(task.input_covariance, task.n_ctx, _noise(task), _weight(task))


def _pool(task, _key):
    if not hasattr(task, "pool"):
        raise ValueError(f"dmmse needs a pool of tasks; task family {task.family!r} has none")
    return task.pool


def _const(value):
    return lambda _task, _key: value


# name -> (function, {hyper-parameter: default(task, key)}). The defaults suit a task family
# (`compare.solver_predictor` fills in those the caller, the spec and the family leave open):
#   gd, gd_plus_plus     lr = optimal_gd_lr(task) (closed form); GD++ gamma = 0
#   preconditioned_gd    gamma_matrix = Gamma*(task's input covariance, N, noise, weight scale)
#   ridge, bayes_ridge   the Bayes-optimal lam = noise_std^2 / weight_std^2
#   newton               10 Newton-Schulz steps
#   lasso                alpha = max(noise_std^2 / weight_std, 1e-3), FISTA to its KKT test
#   logistic_regression  lam = 1 / weight_std^2 (MAP under w ~ N(0, tau^2 I))
#   kernel_ridge         bandwidth = sqrt(d), lam = max(noise_std^2, 1e-3)
#   knn                  k = 3 (Garg et al. 2022)
#   dmmse                pool = task.pool, noise_std = task.noise_std
_REGISTRY = {
    "gd": (gd, {"lr": optimal_gd_lr}),
    "gd_plus_plus": (gd_plus_plus, {"lr": optimal_gd_lr, "gamma": _const(0.0)}),
    "preconditioned_gd": (preconditioned_gd, {"gamma_matrix": _gamma_star}),
    "least_squares": (least_squares, {}),
    "ridge": (ridge, {"lam": lambda task, _: (_noise(task) / _weight(task)) ** 2}),
    "bayes_ridge": (bayes_ridge, {"noise_std": lambda task, _: _noise(task), "weight_std": lambda task, _: _weight(task)}),
    "newton": (newton, {"steps": _const(10)}),
    "lasso": (lasso, {"alpha": lambda task, _: max(_noise(task) ** 2 / _weight(task), 1e-3)}),
    "logistic_regression": (logistic_regression, {"lam": lambda task, _: 1.0 / _weight(task) ** 2}),
    "kernel_ridge": (kernel_ridge, {"bandwidth": lambda task, _: math.sqrt(task.d),
                                    "lam": lambda task, _: max(_noise(task) ** 2, 1e-3)}),
    "knn": (knn, {"k": _const(3)}),
    "averaging": (averaging, {}),
    "mean_label": (mean_label, {}),
    "dmmse": (dmmse, {"pool": _pool, "noise_std": lambda task, _: _noise(task)}),
}


def names() -> list[str]:
    """The registered solver names, sorted."""
    return sorted(_REGISTRY)


def get(name: str):
    """The solver function registered as `name`, with a clear error for an unknown name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(names())}")
    return _REGISTRY[name][0]


def task_defaults(name: str, task, key, given: dict) -> dict:
    """The default hyper-parameters of solver `name` for `task` that `given` leaves open
    (computed only for those; `key` draws the tasks some defaults are estimated on)."""
    get(name)
    return {hp: default(task, key) for hp, default in _REGISTRY[name][1].items() if hp not in given}


_SPEC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def parse_spec(spec: str) -> tuple[str, dict]:
    """`"ridge(lam=0.1)"` -> ("ridge", {"lam": 0.1}); `"gd"` -> ("gd", {}).

    Hyper-parameters are `key=value` separated by commas or semicolons; values are read as JSON
    (numbers, true/false, quoted strings), else kept as bare strings (`method=ista`). The solver
    name must be registered.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"solver spec must look like 'name' or 'name(key=value, ...)', got {spec!r}")
    name, body = match.group(1), match.group(2)
    get(name)
    hparams = {}
    for item in re.split(r"[,;]", body or ""):
        if not item.strip():
            continue
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"solver spec {spec!r}: expected key=value, got {item.strip()!r}")
        text = text.strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        hparams[key.strip()] = value
    return name, hparams


def split_specs(text: str) -> tuple[str, ...]:
    """`"gd,ridge(lam=0.1, steps=2),knn"` -> ("gd", "ridge(lam=0.1, steps=2)", "knn"): commas
    inside parentheses do not split."""
    out, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    out.append(current.strip())
    return tuple(s for s in out if s)


__all__ = [
    "averaging", "bayes_ridge", "bootstrap_band", "dmmse", "dmmse_posterior", "error_curve", "gamma_star",
    "gd", "gd_direction", "gd_plus_plus", "gd_weights", "get", "kernel_ridge", "knn", "lasso",
    "lasso_weights", "least_squares", "logistic_regression", "logistic_weights", "mean_label", "names",
    "newton", "optimal_gd_lr", "parse_spec", "task_defaults", "preconditioned_loss", "prefix_masks", "prefix_predictions", "preconditioned_gd",
    "ridge", "ridge_weights", "soft_threshold", "split_specs",
]
