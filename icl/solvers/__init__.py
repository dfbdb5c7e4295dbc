"""Explicit learners the models are compared against, behind one interface and registry:

    predict(x_ctx [B, N, d], y_ctx [B, N], x_query [B, M, d] or [B, d], **hparams) -> [B, M] or [B]

`solvers.names()` lists them, `solvers.get(name)` returns the function.
"""

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
from icl.solvers.optimal import gamma_star, gd_direction, optimal_gd_lr

_REGISTRY = {
    "gd": gd,
    "gd_plus_plus": gd_plus_plus,
    "preconditioned_gd": preconditioned_gd,
    "least_squares": least_squares,
    "ridge": ridge,
    "bayes_ridge": bayes_ridge,
    "newton": newton,
}


def names() -> list[str]:
    """The registered solver names, sorted."""
    return sorted(_REGISTRY)


def get(name: str):
    """The solver function registered as `name`, with a clear error for an unknown name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(names())}")
    return _REGISTRY[name]


__all__ = [
    "bayes_ridge", "gamma_star", "gd", "gd_direction", "gd_plus_plus", "gd_weights", "get",
    "least_squares", "names", "newton", "optimal_gd_lr", "preconditioned_gd", "ridge", "ridge_weights",
]
