"""Experiment configs: each module defines typed `ExperimentConfig`s whose docstrings say the command,
the expected runtime on a 2-core CPU and the number to reproduce. `icl list` shows them."""

from __future__ import annotations

from experiments import families, paper

EXPERIMENTS = {config.name: config for config in paper.CONFIGS + families.CONFIGS}
DEFAULT = "paper_1layer"


def names() -> list[str]:
    return sorted(EXPERIMENTS)


def get(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known experiments: {', '.join(names())}")
    return EXPERIMENTS[name]
