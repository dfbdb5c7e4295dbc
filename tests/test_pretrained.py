"""The shipped models (`icl.pretrained`): each loads from the package with no training and
reproduces the held-out losses its summary recorded; `pretrained:NAME` works where a run
directory does; loading leaves the caller's x64 setting alone."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from icl import precision, pretrained, train

NAMES = pretrained.names()


def test_models_are_shipped():
    assert "fig1_one_layer" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_model_reproduces_its_recorded_held_out_loss(name):
    run = pretrained.run(name)
    summary = run.summary
    assert run.step == summary["steps"] == run.config.train.steps
    with precision.at_dtype(run.config.train.dtype):
        table = train.final_table(run.config, run.params, [], summary["n_tasks"])
    np.testing.assert_allclose(table["model"]["loss"], summary["model"]["loss"], rtol=1e-5)
    assert table["zero_loss"] == pytest.approx(summary["zero_loss"], rel=1e-6)


def test_load_gives_a_ready_model_and_clear_errors():
    x64 = jax.config.jax_enable_x64
    model = pretrained.load("fig1_one_layer", seed=1)
    config = pretrained.run("fig1_one_layer").config
    batch = config.task.sample(jax.random.key(0), 8)
    assert model(batch).shape == (8, config.task.n_query)
    assert jax.config.jax_enable_x64 == x64
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; shipped: .*fig1_one_layer"):
        pretrained.load("nope")
    with pytest.raises(ValueError, match="seed must be an index in 0..4"):
        pretrained.load("fig1_one_layer", seed=5)
    assert pretrained.resolve("pretrained:fig1_one_layer") == pretrained.ROOT / "fig1_one_layer"


def test_compare_accepts_a_pretrained_model_and_writes_outside_the_package(tmp_path):
    before = sorted(p.name for p in (pretrained.ROOT / "fig1_one_layer").iterdir())
    done = subprocess.run([sys.executable, "-m", "icl", "compare", "pretrained:fig1_one_layer", "--against", "gd",
                           "--tasks", "500"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "gd" in done.stdout
    written = tmp_path / "runs" / "pretrained" / "fig1_one_layer" / "compare.json"
    assert json.loads(written.read_text())["n_tasks"] == 500
    assert sorted(p.name for p in (pretrained.ROOT / "fig1_one_layer").iterdir()) == before


def test_every_shipped_run_of_a_registered_experiment_matches_it_on_any_layout():
    """`--pretrained` reuses a shipped model only when its config is the script's: the shipped
    configs say data_parallel 1 (their layout), the registry "auto"; a layout does not make it
    another run (`icl.config.LAYOUT_FIELDS`), anything else does."""
    import dataclasses

    from icl import experiments

    shipped = [n for n in pretrained.names() if n in experiments.names()]
    assert len(shipped) >= 30
    for name in shipped:
        config = experiments.get(name)
        assert pretrained.matches(config), name
        for layout in (1, 2, 0):
            assert pretrained.matches(dataclasses.replace(config, train=dataclasses.replace(config.train, data_parallel=layout)))
    other = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=config.train.seed + 1))
    assert not pretrained.matches(other)
