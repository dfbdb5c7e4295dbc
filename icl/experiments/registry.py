"""The registry of named experiments: each is a full-mode `ExperimentConfig` and its quick profile.

Full mode is the paper's steps, batch and seeds; quick mode swaps in another `TrainConfig`
(minutes on a 2-core CPU, the CI smoke size), and `--steps` / `--batch-size` give an
"intermediate" full run. `scaled` is that one transform, used by `icl train` and every figure
script. A study registers its runs in one module of this package:

    register(config, quick=TrainConfig(steps=500, batch_size=256, n_seeds=2, ...), study="fig2_depth")
"""

from __future__ import annotations

import dataclasses

from icl.config import ExperimentConfig, TrainConfig

DEFAULT = "paper_1layer"


@dataclasses.dataclass(frozen=True)
class Entry:
    config: ExperimentConfig  # full mode
    quick: TrainConfig | None  # quick mode's training; None = the full one (already CI-sized)
    study: str  # the module or figure it belongs to, for `icl list`


_ENTRIES: dict[str, Entry] = {}


def register(config: ExperimentConfig, quick: TrainConfig | None = None, study: str = "other") -> ExperimentConfig:
    """Add `config` under `config.name` (a name may be registered once); returns it."""
    if config.name in _ENTRIES and _ENTRIES[config.name].config != config:
        raise ValueError(f"experiment {config.name!r} is already registered with another config")
    _ENTRIES[config.name] = Entry(config, quick, study)
    return config


def names() -> list[str]:
    return sorted(_ENTRIES)


def studies() -> dict[str, list[str]]:
    """{study: [experiment names]} in registration order."""
    out: dict[str, list[str]] = {}
    for name, entry in _ENTRIES.items():
        out.setdefault(entry.study, []).append(name)
    return out


def entry(name: str) -> Entry:
    if name not in _ENTRIES:
        raise ValueError(f"unknown experiment {name!r}; known experiments: {', '.join(names())} (see `icl list`)")
    return _ENTRIES[name]


KEPT_IN_QUICK = ("reference", "objective", "curriculum", "curriculum_every", "loop_curriculum")


def scaled(config: ExperimentConfig, quick: TrainConfig | None = None, *, mode: str = "full",
           steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The config in `mode`: "full" as given, with `steps` / `batch_size` replacing the paper's
    (an intermediate run); "quick" with the `quick` TrainConfig (steps / batch_size not allowed),
    keeping what the config trains on and against (`KEPT_IN_QUICK`: reference, objective, curricula)."""
    if mode == "quick":
        if steps or batch_size:
            raise ValueError("quick mode has its own steps and batch size; --steps / --batch-size are for full mode")
        kept = {name: getattr(config.train, name) for name in KEPT_IN_QUICK}
        return config if quick is None else dataclasses.replace(config, train=dataclasses.replace(quick, **kept))
    if mode != "full":
        raise ValueError(f"mode must be 'full' or 'quick', got {mode!r}")
    changes = {k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v}
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes)) if changes else config


def get(name: str, mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The registered experiment `name` in `mode` (see `scaled`)."""
    found = entry(name)
    return scaled(found.config, found.quick, mode=mode, steps=steps, batch_size=batch_size)
