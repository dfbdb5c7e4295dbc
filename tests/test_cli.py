"""The `icl` command's defaults: the run directory a command resolves to, and what `icl compare`
compares with when not told (training and comparing themselves: tests/test_train.py)."""

import dataclasses
import json

import pytest

from icl import cli, experiments, rundir
from icl.config import TrainConfig, apply_overrides


def test_default_run_dir_leaves_out_the_fields_a_finished_run_may_change():
    tiny = experiments.get("tiny")
    free = apply_overrides(tiny, ["compare_against=ridge(lam=0.1),knn", "train.final_eval_tasks=500", "train.steps=7"])
    assert free.compare_against != tiny.compare_against  # the overrides took
    assert cli.default_run_dir(free) == cli.default_run_dir(tiny)
    for other in ("model.n_layers=2", "train.batch_size=32", "task.noise_std=0.1"):  # fields that shape training do
        assert cli.default_run_dir(apply_overrides(tiny, [other])) != cli.default_run_dir(tiny), other
    # train.steps is left out, every other free field is named at its default
    named = rundir.naming_config(free)
    assert named == rundir.naming_config(tiny) and "steps" not in named["train"]
    assert "train.final_eval_tasks" in rundir.FREE_FIELDS and named["train"]["final_eval_tasks"] == TrainConfig().final_eval_tasks
    assert "compare_against" in rundir.FREE_FIELDS and tuple(named["compare_against"]) == ("gd", "least_squares")


def test_default_run_dir_of_a_config_with_free_fields_at_their_defaults_is_its_plain_hash():
    """The default job's name did not move with the rule: its compare_against is its task's
    baselines and its final_eval_tasks the default, so the hash is of its whole config minus
    train.steps and minus the fields added since (model.family "lsa", train.objective "query",
    task.weight_mean 0.0, the curricula off, no sweep), as before; train.data_parallel (now "auto")
    names it at 1, its default then, whatever its value (a layout field)."""
    import hashlib

    config = experiments.get(experiments.DEFAULT)
    data = config.to_dict()
    data["train"].pop("steps")
    assert data["model"].pop("family") == "lsa" and data["train"].pop("objective") == "query"
    assert data["task"].pop("weight_mean") == 0.0
    assert [data["train"].pop(k) for k in ("curriculum", "curriculum_every", "loop_curriculum")] == ["none", 2000, "none"]
    assert [data["train"].pop(k) for k in ("sweep", "sweep_values")] == ["", ()]
    assert data["train"]["data_parallel"] == "auto"
    data["train"]["data_parallel"] = 1
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    assert cli.default_run_dir(config).name == f"{config.name}-{digest}" == "paper_1layer-5184ca67"
    for layout in (1, 2, 0):
        laid_out = dataclasses.replace(config, train=dataclasses.replace(config.train, data_parallel=layout))
        assert cli.default_run_dir(laid_out).name == "paper_1layer-5184ca67"


def test_train_with_another_compare_against_resumes_the_same_directory_and_compare_defaults_to_it(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "tiny", "--no-progress", "--set", "train.steps=40"]) == 0
    first = capsys.readouterr().out
    run_dir = tmp_path / cli.default_run_dir(experiments.get("tiny"))
    assert f"-> {cli.default_run_dir(experiments.get('tiny'))}" in first
    evals = [r for r in rundir.read_log(run_dir) if "event" not in r]
    assert [r["step"] for r in evals] == [0, 20, 40]
    # the same command with another table: the same directory, no training, only the table
    assert cli.main(["train", "tiny", "--no-progress", "--set", "train.steps=40",
                     "--set", "compare_against=ridge(lam=0.1),least_squares(features=square)"]) == 0
    second = capsys.readouterr().out
    assert f"-> {cli.default_run_dir(experiments.get('tiny'))}" in second
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run_dir.name]
    assert [r for r in rundir.read_log(run_dir) if "event" not in r] == evals  # nothing retrained
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary["solvers"]) == ["ridge(lam=0.1)", "least_squares(features=square)"]
    assert summary["solvers"]["least_squares(features=square)"]["hparams"] == {"features": "square"}
    # icl compare without --against: the run's own compare_against (config.json), not gd,least_squares
    saved = json.loads((run_dir / "config.json").read_text())["compare_against"]
    assert cli.main(["compare", str(run_dir), "--tasks", "200"]) == 0
    table = json.loads((run_dir / "compare.json").read_text())
    assert list(table["solvers"]) == list(saved)


def test_compare_help_says_its_default(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["compare", "--help"])
    assert stop.value.code == 0
    assert "default: the run's compare_against" in " ".join(capsys.readouterr().out.split())


def test_the_default_run_directory_keeps_its_name_across_added_fields():
    """Fields added since run directories were first named (model.family, train.objective) stay
    out of the name at the value older runs had, so `icl train` still finds (and resumes) the
    directory an older version made: runs/paper_1layer-5184ca67 (the name before the model
    registry). A non-default value of an added field does name the directory."""
    from icl import experiments
    from icl.config import apply_overrides

    config = experiments.get("paper_1layer")
    assert str(cli.default_run_dir(config)) == "runs/paper_1layer-5184ca67"
    assert cli.default_run_dir(apply_overrides(config, ["train.objective=causal"])) != cli.default_run_dir(config)
    assert cli.default_run_dir(apply_overrides(config, ["model=gpt2"])) != cli.default_run_dir(config)
