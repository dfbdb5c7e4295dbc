"""The experiment registry: names, studies, the quick/full/intermediate transform, clear errors."""

import dataclasses

import pytest

from icl import cli, experiments, tasks
from icl.config import ExperimentConfig, TrainConfig
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
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "paper_1layer (default)" in out and "families" in out
    assert cli._experiment("tiny", [], quick=True) == experiments.get("tiny", mode="quick")


def test_no_top_level_experiments_package():
    with pytest.raises(ModuleNotFoundError):
        __import__("experiments")
