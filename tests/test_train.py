"""Training through the real entry points on tiny configs: resume, retracing, seeds, bad input."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from icl import cli, experiments, precision, train
from icl.config import ExperimentConfig, apply_overrides, override


def tiny(**train_kw):
    config = experiments.get("tiny")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_kw))


def read_params(run_dir, step=None):
    return jax.tree.map(np.asarray, train.load_params(run_dir, step=step)[1])


def test_cli_train_then_compare(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "tiny", "--out", str(out), "--no-progress", "--set", "train.steps=100"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and (out / "figure.png").stat().st_size > 10_000
    assert summary["model"]["loss"][0] < 0.6 * summary["zero_loss"]  # it learned something
    assert set(summary["solvers"]) == {"gd", "least_squares"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(0, 101, 20))
    assert "steps/s" in capsys.readouterr().out
    assert cli.main(["compare", str(out), "--against", "gd,ridge,newton", "--tasks", "500"]) == 0
    table = json.loads((out / "compare.json").read_text())
    assert set(table["solvers"]) == {"gd", "ridge", "newton"} and table["step"] == 100


def test_resume_is_exact(tmp_path):
    """A run killed after its step-40 checkpoint and resumed ends bit-for-bit like an unbroken one."""
    config = tiny(steps=60, eval_every=10, ckpt_every=20)
    train.train(config, tmp_path / "straight", progress=False)
    broken = tmp_path / "broken"
    assert train.train(config, broken, until_step=50, progress=False) == {"stopped_at": 50}
    shutil.rmtree(broken / "checkpoints" / "50")  # the kill came before the step-50 checkpoint
    assert train.train(config, broken, progress=False)["resumed_from"] == 40
    jax.tree.map(np.testing.assert_array_equal, read_params(tmp_path / "straight"), read_params(broken))
    # a finished run keeps its summary instead of recomputing it
    summary = json.loads((broken / "summary.json").read_text())
    assert train.train(config, broken, progress=False) == summary


def test_a_run_saved_before_a_field_existed_still_resumes(tmp_path):
    """A config.json written before a field was added counts that field as its default."""
    config = tiny(steps=20, eval_every=10, ckpt_every=10)
    train.train(config, tmp_path, until_step=10, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["model"]["token_layout"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert train.train(config, tmp_path, progress=False)["resumed_from"] == 10
    changed = apply_overrides(config, ["train.seed=1"])
    with pytest.raises(train.CheckpointMismatch, match="train.seed"):
        train.train(changed, tmp_path, progress=False)


def test_a_run_saved_before_samplers_resumes_on_its_own_stream(tmp_path):
    """A config.json without `train.sampler` trained on plain jax.random: it loads as "threefry",
    so resuming it with today's default sampler is refused, and with "threefry" continues it."""
    config = tiny(steps=20, eval_every=10, ckpt_every=10)
    old = apply_overrides(config, ["train.sampler=threefry"])
    train.train(old, tmp_path, until_step=10, progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["train"]["sampler"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(train.CheckpointMismatch, match="train.sampler"):
        train.train(config, tmp_path, progress=False)
    assert train.train(old, tmp_path, progress=False)["resumed_from"] == 10
    saved["train"]["fast_sampling"] = True
    with pytest.raises(ValueError, match="fast_sampling=true"):
        ExperimentConfig.from_dict(saved)


def test_train_step_compiles_once():
    trainer = train.Trainer(tiny(n_seeds=2))
    params, opt_state = trainer.init()
    keys = train.data_keys(trainer.config)
    for start in (0, 7, 14, 21):
        params, opt_state, losses = trainer.train_chunk(params, opt_state, keys, start, 7)
    assert losses.shape == (7, 2)
    assert trainer._chunk._cache_size() == 1  # traced and compiled once for every start step


def test_vmapped_seeds_equal_single_runs():
    many = train.Trainer(tiny(n_seeds=4, seed=10))
    params, opt_state = many.init()
    params, _, losses = many.train_chunk(params, opt_state, train.data_keys(many.config), 0, 15)
    for i in range(4):
        one = train.Trainer(tiny(n_seeds=1, seed=10 + i))
        p1, o1 = one.init()
        p1, _, l1 = one.train_chunk(p1, o1, train.data_keys(one.config), 0, 15)
        np.testing.assert_allclose(losses[:, i], l1[:, 0], rtol=1e-10)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b[0], rtol=1e-9, atol=1e-12), params, p1)
    assert not np.allclose(losses[:, 0], losses[:, 1])  # the seeds really differ


def test_seed_groups_equal_one_vmap():
    """train.seed_group runs the seeds in groups (lax.map over vmaps): the same numbers."""
    runs = []
    for group in (0, 2):
        trainer = train.Trainer(tiny(n_seeds=4, seed=3, seed_group=group))
        params, opt_state = trainer.init()
        runs.append(trainer.train_chunk(params, opt_state, train.data_keys(trainer.config), 0, 12))
    (p_all, _, l_all), (p_grouped, _, l_grouped) = runs
    np.testing.assert_allclose(l_grouped, l_all, rtol=1e-10)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), p_grouped, p_all)
    with pytest.raises(ValueError, match="seed_group .3. must divide n_seeds .4."):
        tiny(n_seeds=4, seed_group=3)


def test_divergence_stops_and_every_checkpoint_is_finite(tmp_path):
    """SGD at lr 1e3: the held-out loss overflows at step 5 while the training loss is still
    finite; the run stops there and its last checkpoint (step 4) has a finite held-out loss."""
    config = apply_overrides(tiny(steps=200, eval_every=1, ckpt_every=2),
                             ["optim.name=sgd", "optim.lr=1e3", "optim.grad_clip=0", "train.dtype=float32"])
    with pytest.raises(train.TrainingDiverged, match=r"non-finite held-out loss within steps 4-5 .*last good checkpoint is step 4"):
        train.train(config, tmp_path, progress=False)
    config, params, step = train.load_params(tmp_path)
    assert step == 4
    batch = config.task.sample(train.heldout_key(config, 0), config.train.eval_tasks)
    evaluate = train.Trainer(config).evaluator(train.reference_solver(config)[0])
    assert np.isfinite(np.asarray(evaluate(params, batch)["loss"])).all()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {"event": "diverged", "after_step": 4, "steps": 1, "what": "held-out loss"}
    assert cli.main(["train", "tiny", "--out", str(tmp_path / "cli"), "--no-progress", "--set", "optim.name=sgd",
                     "--set", "optim.lr=1e6", "--set", "optim.grad_clip=0"]) == 3


def test_checkpoint_that_does_not_match_is_refused(tmp_path):
    train.train(tiny(steps=20, eval_every=10, ckpt_every=10), tmp_path / "a", progress=False)
    wider = apply_overrides(tiny(steps=20, eval_every=10, ckpt_every=10), ["task.d=4"])
    with pytest.raises(train.CheckpointMismatch, match="another config .*task.d"):
        train.train(wider, tmp_path / "a", progress=False)
    shutil.copytree(tmp_path / "a" / "checkpoints", tmp_path / "b" / "checkpoints")
    (tmp_path / "b" / "config.json").write_text(wider.to_json())  # an edited config.json
    with pytest.raises(train.CheckpointMismatch, match=r"does not match the config .*\(1, 1, 4, 4\)"):
        train.train(wider, tmp_path / "b", progress=False)


def test_bad_cli_input_gets_clear_errors(capsys):
    assert cli.main(["train", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'nope'; known experiments: " in err and "paper_1layer" in err and "tiny" in err
    assert cli.main(["train", "tiny", "--set", "model.layers=2"]) == 2
    assert "model has no field 'layers'; valid: n_layers" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--set", "modl.n_layers=2"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--set", "train.steps=many"]) == 2
    assert "cannot read 'many' as int" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--set", "task=quadratic"]) == 2
    assert "unknown task family 'quadratic'" in capsys.readouterr().err
    assert cli.main(["train", "tiny", "--set", "train.ckpt_every=15"]) == 2
    assert "multiple of eval_every" in capsys.readouterr().err
    assert cli.main(["compare", "/nonexistent"]) == 2


def test_config_roundtrip_and_overrides():
    config = apply_overrides(
        experiments.get("paper_1layer"),
        ["task.input_dist=gaussian", "task.covariance=[[1,0],[0,2]]", "task.d=2", "model.shared=true", "optim.lr=3e-4"],
    )
    assert config.task.covariance == ((1.0, 0.0), (0.0, 2.0)) and config.model.shared and config.optim.lr == 3e-4
    assert ExperimentConfig.from_dict(json.loads(config.to_json())) == config
    sine = override(config, "task=sine")
    assert sine.task.family == "sine" and ExperimentConfig.from_dict(json.loads(sine.to_json())) == sine


def test_module_entry_point_runs_in_float32(tmp_path):
    """`python -m icl` in a fresh process (float32, as users run it)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "icl", "train", "tiny", "--out", str(tmp_path), "--no-progress", "--set", "train.steps=40"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "trained model" in result.stdout
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 40


def test_sigterm_checkpoints_and_the_run_resumes(tmp_path):
    """Nothing is lost on kill: SIGTERM ends the run at the next chunk with a checkpoint."""
    import signal
    import time

    cmd = [sys.executable, "-m", "icl", "train", "tiny", "--out", str(tmp_path), "--no-progress",
           "--set", "train.steps=1000000", "--set", "train.ckpt_every=1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    log = tmp_path / "log.jsonl"
    deadline = time.monotonic() + 120
    # the signal goes only after an observable event: evaluations at steps 0, 20 and 40 in the log
    # (the loop is running, with its signal handler installed); a process that dies or a log that
    # never grows fails here, with the process's output, instead of signalling blindly
    while not log.exists() or len(log.read_text().splitlines()) < 3:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no third log line within 120 s (exit {proc.returncode}): {out[-1500:]}\n{err[-1500:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"icl train did not stop within 120 s of SIGTERM: {proc.communicate()[1][-2000:]}")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM at step" in out
    stopped = int(out.split("stopped by SIGTERM at step ")[1].split(";")[0])
    last_logged = json.loads(log.read_text().splitlines()[-1])["step"]
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) if (tmp_path / "checkpoints").exists() else None
    assert ckpts and str(stopped) in ckpts, f"checkpoints {ckpts} after stopping at {stopped}; stdout:\n{out}\nstderr:\n{err[-3000:]}"
    _, _, step = train.load_params(tmp_path)
    assert step == stopped == last_logged and step % 20 == 0 and step < 1_000_000


def test_compare_of_a_float64_run_evaluates_in_float64(tmp_path):
    """`icl compare` in a fresh process (float64 off) switches float64 on for a float64 run: the
    exact least-squares fit of a noiseless task then costs ~1e-30, not float32's ~1e-13."""
    out = tmp_path / "run"
    train.train(tiny(steps=20, eval_every=10, ckpt_every=10, dtype="float64"), out, progress=False)
    done = subprocess.run([sys.executable, "-m", "icl", "compare", str(out), "--against", "least_squares", "--tasks", "200"],
                          capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert done.returncode == 0, done.stderr
    table = json.loads((out / "compare.json").read_text())
    assert table["solvers"]["least_squares"]["loss"] < 1e-25


def test_the_reference_follows_the_task_and_is_logged(tmp_path):
    """`train.reference` defaults to one GD step for linear regression and to the family's own
    learner elsewhere; the log's ref_loss is that solver's loss on the evaluation tasks, and a
    config.json written before the field existed (whose log called it gd_loss) loads as "gd"."""
    linear = tiny()
    assert linear.train.reference == "gd"
    sine = override(linear, "task=sine")
    assert sine.train.reference == "kernel_ridge"
    assert override(linear, "task=linear_classification").train.reference == "logistic_regression"
    assert override(override(linear, "train.reference=ridge(lam=0.5)"), "task=sine").train.reference == "ridge(lam=0.5)"
    with pytest.raises(ValueError, match="^train: reference: unknown solver 'nope'"):
        override(linear, "train.reference=nope")
    config = apply_overrides(sine, ["train.steps=20", "train.eval_every=10", "train.ckpt_every=10", "train.eval_tasks=64"])
    summary = train.train(config, tmp_path, progress=False)
    assert summary["reference"]["solver"] == "kernel_ridge" and set(summary["reference"]["hparams"]) == {"bandwidth", "lam"}
    with precision.at_dtype(config.train.dtype):  # the run's tasks and hyper-parameters: drawn at its dtype
        batch = config.task.sample(train.heldout_key(config, train.HeldOut.EVAL), 64)
        predict, _ = train.reference_solver(config)
        want = float(0.5 * np.mean((np.asarray(predict(batch.x_ctx, batch.y_ctx, batch.x_query)) - np.asarray(batch.y_query)) ** 2))
    log = train.rundir.read_log(tmp_path)
    assert [r["step"] for r in log] == [0, 10, 20]
    np.testing.assert_allclose([r["ref_loss"] for r in log], [[want] * config.train.n_seeds] * 3, rtol=1e-5)
    # an older run: config without the field, log with gd_loss
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["train"]["reference"]
    assert ExperimentConfig.from_dict(saved).train.reference == "gd"
    (tmp_path / "log.jsonl").write_text('{"step": 0, "loss": [1.0], "gd_loss": [0.5]}\n')
    assert train.rundir.read_log(tmp_path) == [{"step": 0, "loss": [1.0], "ref_loss": [0.5]}]
