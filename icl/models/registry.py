"""Model families behind a registry, as task families are (`icl.tasks.base.register`).

A model family is a frozen dataclass (its architecture's fields, validated in `__post_init__`)
decorated `@register("name")`, with

  * `build(self, d: int, key) -> nnx.Module`: the model for d-dimensional inputs, its `nnx.Param`
    variables initialised from `key` (an int or a JAX key); the module has
      - `predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d]) -> [B, M]`: each query
        predicted from the whole context (the solver interface, `icl.solvers`), and
      - `__call__(batch) -> [B, M]`, the same on an `icl.tasks.base.Batch`;
  * `objectives(self) -> tuple[str, ...]`: the training objectives this config supports:
      "query"  - the loss at the M query tokens (von Oswald et al. 2023);
      "causal" - every position is a query for the pairs before it, the loss averaged over
                 positions (Garg et al. 2022); the module then also has
                 `predict_prefixes(x [B, T, d], y [B, T]) -> [B, T]`, position t predicted
                 from (x_1, y_1, ..., x_{t-1}, y_{t-1}, x_t);
  * optionally `splits_on_cpu(self) -> bool`: True where a batch split over CPU cores was
    measured to train faster (`icl.devices.auto_data_parallel`; without it a run stays on one
    CPU device unless `train.data_parallel` says otherwise).

`build(config, d, key)` dispatches on the config's family; `icl.config.ExperimentConfig.model`
holds any registered family's config (`--set model=<family>` switches, `--set model.<field>=`
sets a field), and the trainer, checkpoints, `icl compare`, `icl aot` and `icl.runs` reach the
model only through `build`, `predict` and `predict_prefixes`. `tests/test_model_families.py`
holds every registered family to that contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

OBJECTIVES = ("query", "causal")

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: `@register("gpt2")` adds a model family (a frozen dataclass) under `name`."""

    def add(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is already registered ({_REGISTRY[name]})")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"model family {name!r} must be a dataclass, got {cls}")
        for method in ("build", "objectives"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"model family {name!r} must define {method}() (see icl.models.registry)")
        cls.family = name
        _REGISTRY[name] = cls
        return cls

    return add


def names() -> list[str]:
    """The registered model family names, sorted."""
    return sorted(_REGISTRY)


def family(name: str) -> type:
    """The config dataclass registered as `name`, with a clear error for an unknown name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model family {name!r}; known families: {', '.join(names())}")
    return _REGISTRY[name]


def get(name: str, **fields) -> Any:
    """The config of model family `name` with `fields` (its dataclass fields), validated."""
    cls = family(name)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"model {name}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    return cls(**fields)


def family_of(config: Any) -> str:
    """The registered family name of a model config, with a clear error for anything else."""
    name = getattr(type(config), "family", None)
    if name not in _REGISTRY or _REGISTRY[name] is not type(config):
        raise ValueError(f"model: expected the config of a registered model family ({', '.join(names())}), got {config!r}")
    return name


def build(config: Any, d: int, key: jax.Array | int = 0):
    """The model of `config`'s family for d-dimensional inputs, its parameters initialised from `key`."""
    family_of(config)
    return config.build(d, key)


def check_objective(config: Any, objective: str) -> None:
    """A one-line error unless `objective` is known and `config`'s family supports it."""
    if objective not in OBJECTIVES:
        raise ValueError(f"train: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    supported = config.objectives()
    if objective not in supported:
        raise ValueError(
            f"train: objective {objective!r} is not supported by model family {family_of(config)!r} with this config "
            f"(supported: {', '.join(supported)})"
        )
