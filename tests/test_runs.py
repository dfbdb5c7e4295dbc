"""The runs API on a real tiny run: load, curves, per-seed models, seed stacking, train_in_pieces."""

import dataclasses

import jax
import numpy as np
import pytest

from icl import experiments, runs, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=40, eval_every=20, ckpt_every=20, n_seeds=2))
    run_dir = tmp_path_factory.mktemp("run")
    summary, run = runs.train_run(config, run_dir)
    return config, run_dir, summary, run


def test_load_gives_config_summary_log_and_params(tiny_run):
    config, run_dir, summary, run = tiny_run
    loaded = runs.load(run_dir)
    assert loaded.config == config and loaded.step == 40 and loaded.summary == summary
    steps, losses = loaded.curve("loss")
    assert steps == [0, 20, 40] and len(losses[0]) == 2  # a value per seed
    models = loaded.models()
    batch = config.task.sample(jax.random.key(3), 8)
    assert len(models) == 2 and models[0](batch).shape == batch.y_query.shape  # [B, M]
    np.testing.assert_array_equal(jax.tree.leaves(loaded.params)[0], jax.tree.leaves(run.params)[0])


def test_stack_unstack_round_trip(tiny_run):
    config, *_ = tiny_run
    stacked = runs.initial_params(config)
    per_seed = runs.unstack_seeds(stacked, config.train.n_seeds)
    assert len(per_seed) == 2
    for got, want in zip(jax.tree.leaves(runs.stack_seeds(per_seed)), jax.tree.leaves(stacked)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(jax.tree.leaves(per_seed[1])[0], jax.tree.leaves(train.init_params(config, config.train.seed + 1))[0])


def test_train_in_pieces_measures_each_step_once(tmp_path):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=40, eval_every=20, ckpt_every=20))
    calls = []

    def measure(step, params):
        calls.append(step)
        return float(np.sum(np.abs(jax.tree.leaves(params)[0])))

    first = runs.train_in_pieces(config, tmp_path, [0, 20, 40], measure, "m.json", init=lambda: runs.initial_params(config))
    again = runs.train_in_pieces(config, tmp_path, [0, 20, 40], measure, "m.json")
    assert calls == [0, 20, 40] and first == again and set(first) == {"0", "20", "40"}


def test_float64_run_restores_the_callers_precision(tmp_path):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=20, eval_every=20, ckpt_every=20, dtype="float64"))
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        train.train(config, tmp_path, progress=False, echo=lambda *_: None)
        assert jax.config.jax_enable_x64 is False
    finally:
        jax.config.update("jax_enable_x64", before)
