"""A hyper-parameter sweep in one compiled program (`train.sweep`, `train.sweep_values`): each
column is the one-seed run of its value, the run directory records which column is which, and a
sweep resumes exactly."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from icl import cli, experiments, precision, train
from icl.config import ExperimentConfig, apply_overrides


def tiny(optim=None, **train_kw):
    config = experiments.get("tiny")
    optim = dataclasses.replace(config.optim, **(optim or {}))
    return dataclasses.replace(config, optim=optim, train=dataclasses.replace(config.train, **train_kw))


def chunk(config, steps):
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    return trainer.train_chunk(params, opt_state, train.data_keys(config), 0, steps)


@pytest.mark.parametrize("field, values, optim, dtype, rtol", [
    ("lr", (3e-3, 1e-2, 3e-2), {"schedule": "constant"}, "float64", 1e-13),
    ("b2", (0.9, 0.999), {"name": "adam"}, "float64", 1e-13),
    ("weight_decay", (0.0, 0.5), {"name": "adamw", "lr": 3e-2}, "float64", 1e-13),
    # a single run's optax schedule of a Python-float lr is computed in float32 (a weak-typed
    # constant against an int32 step count), a column's at the run's dtype: in float64 they differ
    # by the float32 rounding of the warm-up / cosine lr (1e-8), so this one is checked in float32
    ("lr", (3e-3, 1e-2, 3e-2), {"schedule": "cosine", "warmup_steps": 4}, "float32", 1e-5),
])
def test_each_column_is_the_run_of_its_value(field, values, optim, dtype, rtol):
    """Column (v, i) trains as the one-seed run with optim.<field> = v and seed + i: to float64
    rounding (measured <= 4e-16 after 12 steps), or float32 rounding amplified by Adam (the
    parameters' largest relative difference 5e-6 for b2, at the 12th step)."""
    config = tiny(optim, n_seeds=2, seed=5, sweep=field, sweep_values=values, dtype=dtype)
    assert config.train.n_columns == 2 * len(values)
    with precision.at_dtype(dtype):
        params, _, losses = chunk(config, 12)
        assert losses.shape == (12, config.train.n_columns) and losses.dtype == np.dtype(dtype)
        for c, info in enumerate(train.columns(config)):
            one = train.column_config(config, c)
            assert getattr(one.optim, field) == info[f"optim.{field}"] and one.train.seed == info["seed"]
            p1, _, l1 = chunk(one, 12)
            np.testing.assert_allclose(losses[:, c], l1[:, 0], rtol=rtol)
            jax.tree.map(lambda a, b, c=c: np.testing.assert_allclose(a[c], b[0], atol=10 * rtol * np.max(np.abs(b[0]))),
                         params, p1)
    # the values see the same seeds' tasks and initial weights, and really train differently
    assert [info["seed"] for info in train.columns(config)] == [5, 6] * len(values)
    np.testing.assert_array_equal(losses[0, 0], losses[0, 2])  # step 0: same weights, same tasks
    moved = [np.max(np.abs(x[2] - x[0])) / np.max(np.abs(x[0])) for x in jax.tree.leaves(params)]
    assert max(moved) > 1e-3, moved


def test_a_sweep_run_writes_its_columns_and_resumes_exactly(tmp_path):
    config = tiny({"lr": 1e-2}, steps=40, eval_every=10, ckpt_every=20, n_seeds=2, sweep="lr", sweep_values=(3e-3, 3e-2),
                  dtype="float32")
    summary = train.train(config, tmp_path / "straight", progress=False)
    assert summary["columns"] == [{"seed": 0, "optim.lr": 3e-3}, {"seed": 1, "optim.lr": 3e-3},
                                  {"seed": 0, "optim.lr": 3e-2}, {"seed": 1, "optim.lr": 3e-2}]
    assert len(summary["model"]["loss"]) == 4 and summary["seeds"] == [0, 1, 0, 1]
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert all(len(r["loss"]) == 4 for r in log if "loss" in r)
    broken = tmp_path / "broken"
    assert train.train(config, broken, until_step=30, progress=False) == {"stopped_at": 30}
    shutil.rmtree(broken / "checkpoints" / "30")
    assert train.train(config, broken, progress=False)["resumed_from"] == 20
    straight = jax.tree.map(np.asarray, train.load_params(tmp_path / "straight")[1])
    jax.tree.map(np.testing.assert_array_equal, straight, jax.tree.map(np.asarray, train.load_params(broken)[1]))
    # float32, as the CLI trains it: each column equals its own one-seed run to float32 rounding
    for c in (1, 2):
        alone = train.train(train.column_config(config, c), tmp_path / f"column{c}", progress=False)
        np.testing.assert_allclose(summary["model"]["loss"][c], alone["model"]["loss"][0], rtol=2e-5)


def test_the_cli_takes_a_sweep_and_old_run_names_stay(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "tiny", "--out", str(out), "--no-progress", "--set", "train.steps=20", "--set", "train.n_seeds=2",
                     "--set", "train.sweep=lr", "--set", "train.sweep_values=[0.001,0.01]"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [c["optim.lr"] for c in summary["columns"]] == [0.001, 0.001, 0.01, 0.01]
    table = capsys.readouterr().out
    for lr, loss in ((0.001, summary["model"]["loss"][:2]), (0.01, summary["model"]["loss"][2:])):  # the model per value
        assert f"trained model lr={lr:g}" in table and f"{np.mean(loss):#.4g} ± {np.std(loss):.2g}" in table
    assert table.count("  vs model lr=") == 2 * len(summary["solvers"])
    assert cli.main(["compare", str(out), "--against", "ridge"]) == 0
    assert "  vs model lr=0.01 " in capsys.readouterr().out
    config = experiments.get("paper_1layer")
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config
    swept = apply_overrides(config, ["train.sweep=lr", "train.sweep_values=[0.001,0.01]"])
    assert ExperimentConfig.from_dict(json.loads(swept.to_json())) == swept
    assert cli.default_run_dir(config) != cli.default_run_dir(swept)


@pytest.mark.parametrize("overrides, message", [
    (["train.sweep=lr"], "sweep and sweep_values go together"),
    (["train.sweep_values=[0.1]"], "sweep and sweep_values go together"),
    (["train.sweep=grad_clip", "train.sweep_values=[1.0]"], "sweep must be one of lr, b1, b2, weight_decay"),
    (["train.sweep=lr", "train.sweep_values=[0.01,-1]"], "sweep_values: optim: lr must be > 0"),
    (["train.sweep=b2", "train.sweep_values=[1.5]"], "sweep_values: optim: b1 and b2 must lie in"),
    (["train.sweep=lr", 'train.sweep_values=["a"]'], "sweep_values must be numbers"),
    (["optim.name=adam", "train.sweep=weight_decay", "train.sweep_values=[0.1]"], "needs optim.name = adamw"),
    (["optim.name=sgd", "train.sweep=b1", "train.sweep_values=[0.5]"], "needs optim.name = adam or adamw"),
])
def test_a_bad_sweep_gets_a_one_line_error(overrides, message, capsys):
    with pytest.raises(ValueError, match=message):
        apply_overrides(experiments.get("tiny"), overrides)
    sets = [a for o in overrides for a in ("--set", o)]
    assert cli.main(["train", "tiny", "--no-progress", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message.split(":")[0] in err
