"""Trained models shipped with the package: the full-mode runs of the paper's figures, ready to
load with no training.

Each model is a run directory as `icl train` writes it, cut to what reading it needs:
`config.json`, `summary.json` (the held-out table the run recorded), `log.jsonl` and its final
orbax checkpoint (parameters of every seed and the optimiser state; no pickles). It lives in
`icl/pretrained/<name>/`, so everything that reads a run directory reads it:

    from icl import pretrained
    pretrained.names()                          # ['fig1_one_layer', ...]
    model = pretrained.load("fig1_one_layer")   # seed 0's model: model(batch), model.predict(...)
    run = pretrained.run("fig1_one_layer")      # an icl.runs.Run: config, summary, log, params [S, ...]

and on the command line `pretrained:NAME` stands for the directory wherever a run directory is
accepted (`icl compare pretrained:fig1_one_layer --against gd`), and the figure scripts' `--pretrained`
copies a shipped run whose config is exactly the script's (`matches`) instead of training it.
`tests/test_pretrained.py`
reloads each and reproduces the held-out loss its summary records; `python
paper_figures/export_pretrained.py RUN_DIR ...` makes them from finished run directories.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PREFIX = "pretrained:"


def names() -> list[str]:
    """The shipped models, sorted."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "config.json").exists())


def path(name: str) -> Path:
    """The run directory of the shipped model `name`, with a clear error for an unknown one."""
    if name not in names():
        raise ValueError(f"unknown pretrained model {name!r}; shipped: {', '.join(names()) or 'none'}")
    return ROOT / name


def resolve(run_dir: str | Path) -> Path:
    """A run directory argument as a path: "pretrained:NAME" -> the shipped model's directory."""
    text = str(run_dir)
    return path(text.removeprefix(PREFIX)) if text.startswith(PREFIX) else Path(run_dir)


def is_pretrained(run_dir: str | Path) -> bool:
    """Whether a run directory argument names a shipped model (`pretrained:NAME`)."""
    return str(run_dir).startswith(PREFIX)


def output_dir(run_dir: str | Path) -> Path:
    """Where a command writes what it makes of a run directory argument: the run directory
    itself, or runs/pretrained/NAME (in the working directory) for a shipped model, so the
    package is never written to."""
    text = str(run_dir)
    return Path("runs") / "pretrained" / text.removeprefix(PREFIX) if is_pretrained(text) else Path(run_dir)


def matches(config) -> bool:
    """Whether a shipped model has `config`'s name and exactly its config (so it is that run),
    whatever device layout either says (`icl.config.LAYOUT_FIELDS`)."""
    from icl.config import ExperimentConfig, at_layout_names  # here: keep `import icl.pretrained` light

    if config.name not in names():
        return False
    shipped = ExperimentConfig.from_dict(json.loads((ROOT / config.name / "config.json").read_text()))
    return at_layout_names(shipped) == at_layout_names(config)


def run(name: str):
    """The shipped model `name` as an `icl.runs.Run` (config, summary, log, parameters of every seed)."""
    from icl import runs  # runs imports the trainer; keep `import icl.pretrained` light

    return runs.load(path(name))


def load(name: str, seed: int = 0):
    """The model of seed index `seed` of the shipped run `name` (an nnx module: `model(batch)`,
    `model.predict(x_ctx, y_ctx, x_query)`)."""
    loaded = run(name)
    models = loaded.models()
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < len(models):
        raise ValueError(f"pretrained {name!r}: seed must be an index in 0..{len(models) - 1}, got {seed!r}")
    return models[seed]
