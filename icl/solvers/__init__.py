"""Explicit learners the models are compared against, behind one interface and registry:

    predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] or [B, d], **hparams) -> [B, M] or [B]

`solvers.names()` lists them, `solvers.get(name)` returns the function. A *spec* names a solver
with some hyper-parameters fixed, `"ridge(lam=0.1)"` or `"knn(k=5)"`; `parse_spec` reads it, and
experiment configs (`compare_against`) and task families (`baselines`) may use specs wherever
they use names. `prefix_predictions` / `error_curve` evaluate any solver on every prefix of the
context at once. Every solver runs its matrix products at "highest" precision on every backend
(`icl.precision`).

Any solver runs on a feature map of the inputs with the spec hyper-parameter `features`,
`"least_squares(features=square)"`: `solver(phi(X), y, phi(x_q))` (`icl.solvers.features`: the
named maps, `on_features`, `register_feature`). Loading this package checks the `baselines` of
every task family (and those registered later, at registration): a name that is no solver, or
an unknown feature map, is an error naming the family.
"""

from __future__ import annotations

import functools
import json
import math
import re

from icl.solvers import features, network as _network, online as _online, weighted as _weighted
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
from icl.solvers.features import FeatureTask, on_features, register as register_feature
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
from icl.solvers.network import relu_net_gd
from icl.solvers.online import online_sgd, online_sgd_weights
from icl.solvers.optimal import gamma_star, gd_direction, optimal_gd_lr, preconditioned_loss
from icl.solvers.prefix import (
    bootstrap_band,
    error_curve,
    fixed_scale_prefixes,
    prefix_masks,
    prefix_mode,
    prefix_predictions,
    zero_padding_exact,
)
from icl.solvers.trees import boosted_trees, greedy_tree, greedy_tree_unbounded
from icl.solvers.weighted import weighted_gd, weighted_gd_weights
from icl.tasks import base as _tasks_base

# Exact on zero-padded contexts (icl/solvers/prefix.py): every prefix in one vmapped program.
for _fn in (least_squares, ridge, bayes_ridge, newton, preconditioned_gd):
    zero_padding_exact(_fn)
for _fn in (gd, gd_plus_plus):
    zero_padding_exact(_fn, lr_per_example=True)

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
#   online_sgd           lr = 1 / tr E[x x^T] (normalised LMS; icl/solvers/online.py)
#   weighted_gd          lr = optimal_gd_lr(task) (as gd), decay = 0.9 (icl/solvers/weighted.py)
#   greedy_tree          max_depth = 4 (Garg et al. 2022; the decision_tree family: its depth)
#   boosted_trees        100 rounds of depth-3 trees, lr 0.1 (icl/solvers/trees.py)
#   relu_net_gd          Garg et al. 2022's "2-layer NN, GD": 100 ReLU units, Adam lr 5e-3, 100 steps,
#                        batch 100, seed 0 (init keys fold_in(key(seed), task index, n); icl/solvers/network.py)
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
    "online_sgd": (online_sgd, {"lr": _online.task_lr}),
    "weighted_gd": (weighted_gd, {"lr": optimal_gd_lr, "decay": _const(_weighted.DEFAULT_DECAY)}),
    "greedy_tree": (greedy_tree, {"max_depth": _const(4)}),
    "greedy_tree_unbounded": (greedy_tree_unbounded, {}),
    "boosted_trees": (boosted_trees, {"n_trees": _const(100), "max_depth": _const(3), "lr": _const(0.1)}),
    "relu_net_gd": (relu_net_gd, {"hidden": _const(_network.HIDDEN), "lr": _const(_network.LR),
                                  "steps": _const(_network.STEPS), "batch_size": _const(_network.BATCH_SIZE),
                                  "seed": _const(_network.SEED)}),
}


def names() -> list[str]:
    """The registered solver names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, features: str | None = None):
    """The solver function registered as `name`, with a clear error for an unknown name; with
    `features` (a feature map's name, `icl.solvers.features`), that solver on phi(x):
    `on_features(features, solver)`."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(names())}")
    fn = _REGISTRY[name][0]
    return fn if features is None else on_features(features, fn)


def register(name: str, fn, defaults: dict | None = None):
    """Add the solver `fn(x_ctx, y_ctx, x_query, *, mask=None, **hparams)` under `name` from
    outside this file (your own module, a notebook); `defaults`: {hyper-parameter: default(task,
    key)}, as in `_REGISTRY`. Register a solver before a task family that lists it. Returns fn."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"solvers.register: the name must be an identifier, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"solvers.register: solver {name!r} is already registered ({_REGISTRY[name][0]})")
    if not callable(fn):
        raise TypeError(f"solvers.register: solver {name!r} must be callable, got {fn!r}")
    defaults = dict(defaults or {})
    bad = [hp for hp, default in defaults.items() if not callable(default)]
    if bad:
        raise TypeError(f"solvers.register: the defaults of {name!r} must be functions (task, key) -> value; not: {bad}")
    _REGISTRY[name] = (fn, defaults)
    return fn


def hparam_names(name: str) -> tuple[str, ...] | None:
    """The hyper-parameters solver `name` takes: its keyword arguments after (x_ctx, y_ctx,
    x_query), less `mask` (prefix evaluation's), plus `features`; None when it takes any
    (`**kwargs`) or its signature cannot be read."""
    import inspect

    try:
        params = list(inspect.signature(get(name)).parameters.values())[3:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return (*(p.name for p in params if p.kind is not p.VAR_POSITIONAL and p.name != "mask"), "features")


def bind(name: str, hparams: dict):
    """Solver `name` with `hparams` bound (`functools.partial`); a `features` entry picks the
    feature map instead of being passed on (`get(name, features=...)`). A hyper-parameter the
    solver does not take is a ValueError naming it and those it takes."""
    known = hparam_names(name)
    unknown = [k for k in hparams if known is not None and k not in known]
    if unknown:
        raise ValueError(f"{name}() got an unexpected keyword argument {unknown[0]!r}; "
                         f"its hyper-parameters: {', '.join(known)}")
    rest = {k: v for k, v in hparams.items() if k != "features"}
    return functools.partial(get(name, features=hparams.get("features")), **rest)


def task_defaults(name: str, task, key, given: dict) -> dict:
    """The default hyper-parameters of solver `name` for `task` that `given` leaves open
    (computed only for those; `key` draws the tasks some defaults are estimated on). With
    `given["features"]`, they are computed on the mapped task (`FeatureTask`: the solver sees
    phi(x), so e.g. GD's optimal lr is that of the features)."""
    get(name)
    if given.get("features") is not None:
        task = FeatureTask(task, given["features"])
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
        if not text:
            raise ValueError(f"solver spec {spec!r}: {key.strip()} has no value (expected key=value)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        hparams[key.strip()] = value
    if "features" in hparams:
        try:
            features.get(hparams["features"])
        except ValueError as error:
            raise ValueError(f"solver spec {spec!r}: {error}") from None
    return name, hparams


def check_baselines(family: str, specs) -> None:
    """Raise a one-line ValueError naming task family `family` and the spec unless every spec
    in `specs` (its `baselines`, or what its `default_baselines()` returns) parses as a
    registered solver (and feature map)."""
    for spec in specs:
        try:
            parse_spec(spec)
        except ValueError as error:
            raise ValueError(f"task family {family!r}: baseline {spec!r}: {error}") from None


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


# Families registered so far are checked now, later ones at registration (tasks sit below solvers).
_tasks_base.install_baseline_check(check_baselines)

__all__ = [
    "boosted_trees", "greedy_tree", "greedy_tree_unbounded", "online_sgd", "online_sgd_weights",
    "weighted_gd", "weighted_gd_weights",
    "FeatureTask", "bind", "check_baselines", "features", "on_features", "prefix_mode", "register",
    "register_feature", "zero_padding_exact",
    "averaging", "bayes_ridge", "bootstrap_band", "dmmse", "dmmse_posterior", "error_curve", "gamma_star",
    "gd", "gd_direction", "gd_plus_plus", "gd_weights", "get", "hparam_names", "kernel_ridge", "knn", "lasso",
    "lasso_weights", "least_squares", "logistic_regression", "logistic_weights", "mean_label", "names",
    "newton", "optimal_gd_lr", "parse_spec", "task_defaults", "preconditioned_loss", "prefix_masks", "prefix_predictions",
    "fixed_scale_prefixes",
    "preconditioned_gd", "relu_net_gd",
    "ridge", "ridge_weights", "soft_threshold", "split_specs",
]
