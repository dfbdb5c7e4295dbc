"""The experiment registry: names, studies, the quick/full/intermediate transform, clear errors."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from icl import cli, experiments, rundir, runs, tasks, train
from icl.config import ExperimentConfig, TrainConfig, apply_overrides
from icl.experiments import registry


def test_every_registered_experiment_is_valid_in_both_modes():
    assert experiments.DEFAULT in experiments.names()
    for name in experiments.names():
        for mode in ("full", "quick"):
            config = experiments.get(name, mode=mode)
            assert isinstance(config, ExperimentConfig) and config.name == name
            assert ExperimentConfig.from_dict(config.to_dict()) == config  # JSON round trip


def test_studies_cover_every_name_once():
    listed = [n for names in experiments.studies().values() for n in names]
    assert sorted(listed) == experiments.names() and len(set(listed)) == len(listed)
    assert {"paper", "families"} <= set(experiments.studies())


def test_scaled_modes():
    base = experiments.get("paper_1layer")
    quick = TrainConfig(steps=30, batch_size=16, eval_every=10, ckpt_every=30, eval_tasks=64, final_eval_tasks=100)
    assert registry.scaled(base, quick, mode="quick").train == dataclasses.replace(quick, reference="gd")
    sine = dataclasses.replace(base, name="sine_ridge", task=tasks.get("sine"), train=dataclasses.replace(base.train, reference="ridge"))
    assert registry.scaled(sine, quick, mode="quick").train.reference == "ridge"  # quick keeps the reference
    assert registry.scaled(base, None, mode="quick") is base  # no quick profile: the config is already small
    assert registry.scaled(base, quick) is base
    mid = registry.scaled(base, quick, steps=700, batch_size=128)
    assert (mid.train.steps, mid.train.batch_size) == (700, 128)
    assert dataclasses.replace(mid.train, steps=base.train.steps, batch_size=base.train.batch_size) == base.train
    with pytest.raises(ValueError, match="quick mode has its own steps"):
        registry.scaled(base, quick, mode="quick", steps=10)
    with pytest.raises(ValueError, match="mode must be"):
        registry.scaled(base, quick, mode="fast")


def test_unknown_name_and_conflicting_registration():
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        experiments.get("nope")
    other = dataclasses.replace(experiments.get("tiny"), task=experiments.get("paper_1layer").task)
    with pytest.raises(ValueError, match="already registered"):
        experiments.register(other)
    experiments.register(experiments.get("tiny"), study="paper")  # the same config again: a no-op


def test_cli_lists_studies_and_trains_quick(tmp_path, capsys):
    """`icl list` names the studies; `icl train NAME --quick` trains the quick profile (batch 256,
    2 seeds for fig2_L1_sep, not the full 2048 x 5), here cut to 40 steps: the run directory holds
    exactly that config, 40 steps were taken, and the parameters moved from their initial values."""
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "paper_1layer (default)" in out and "families" in out
    sets = ["train.steps=40", "train.eval_every=20", "train.ckpt_every=40", "train.eval_tasks=128", "train.final_eval_tasks=200"]
    run_dir = tmp_path / "run"
    argv = ["train", "fig2_L1_sep", "--quick", "--out", str(run_dir), "--no-progress", *(a for s in sets for a in ("--set", s))]
    assert cli.main(argv) == 0
    quick, full = experiments.get("fig2_L1_sep", mode="quick"), experiments.get("fig2_L1_sep")
    trained = ExperimentConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert trained == apply_overrides(quick, sets) == cli._experiment("fig2_L1_sep", sets, quick=True)
    assert (trained.train.batch_size, trained.train.n_seeds) == (256, 2) != (full.train.batch_size, full.train.n_seeds)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 40 and [r["step"] for r in rundir.read_log(run_dir)] == [0, 20, 40]
    _, params, step = train.load_params(run_dir)
    assert step == 40
    initial = jax.tree.leaves(runs.initial_params(trained))
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(jax.tree.leaves(params), initial, strict=True)]
    assert min(moved) > 1e-3  # Adam at lr 1e-3 moves every weight by ~1e-3 per step; untrained: 0


def test_no_top_level_experiments_package():
    with pytest.raises(ModuleNotFoundError):
        __import__("experiments")
