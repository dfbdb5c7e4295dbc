"""The run loop around the compiled step (icl.train): checkpoints written behind the training by a
writer thread, each chunk's results read one chunk late, one compiled chunk for every chunk
length, and the loop's own overhead in the summary. What must still hold: a kill -9 while saves
are in flight leaves a complete latest checkpoint and a resume bit-identical to an unbroken run;
the log's records are those of a plain synchronous loop, step for step."""

import itertools
import json
import os
import random
import signal
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from icl import experiments, precision, train
from icl.config import apply_overrides
from processes import DEADLINE_S, finish, start

# processes.ARGS (tiny, float64, a checkpoint at every evaluation: the writer is always busy, the
# loop runs ahead of it), 150 steps: a kill lands among saves in flight
STEPS = ("--set", "train.steps=150")


def checkpoints(run_dir: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(run_dir / "checkpoints"))
    except FileNotFoundError:
        return []


def latest(run_dir: Path) -> int:
    """The newest complete checkpoint's step on disk (-1 if none)."""
    return max((int(name) for name in checkpoints(run_dir) if name.isdigit()), default=-1)


def evaluations(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "event" not in r]


def without_wall(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "wall_s"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop_reference") / "run"
    code, text = finish(start(out, *STEPS))
    assert code == 0, text
    return out


def test_kill_during_async_saves_leaves_a_complete_latest_checkpoint(reference, tmp_path):
    """kill -9 at random moments after the first checkpoints, while the writer thread has saves in
    flight: what orbax lists as the latest is complete and loads, is a checkpointed step of the log,
    and the resumed run ends bit-identical to the uninterrupted one, with its log."""
    out, rng, kills = tmp_path / "run", random.Random(26), 0
    for _ in range(3):
        proc = start(out, *STEPS)
        end = time.monotonic() + DEADLINE_S
        first = latest(out)
        while latest(out) < first + 10 and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.002)  # two new checkpoints: the loop and the writer are running
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:  # it finished first
            assert proc.returncode == 0, proc.communicate()[0][-2000:]
            break
        proc.send_signal(signal.SIGKILL)
        code, text = finish(proc)
        assert code == -signal.SIGKILL, text
        kills += 1
        config, params, step = train.load_params(out)  # the latest complete checkpoint reads whole
        assert step % 5 == 0 and 0 < step <= 150
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.tree.map(np.asarray, params)))
        logged = [r["step"] for r in evaluations(out)]
        assert step in logged  # its record reached the log before the checkpoint did
    assert kills >= 1
    code, text = finish(start(out, *STEPS))
    assert code == 0, text
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, train.load_params(out)[1]),
                 jax.tree.map(np.asarray, train.load_params(reference)[1]))
    got, want = evaluations(out), evaluations(reference)
    assert [without_wall(r) for r in got] == [without_wall(r) for r in want]
    assert not any("tmp" in name for name in checkpoints(out)), checkpoints(out)  # nothing half-written is left listed


def tiny(**train_kw):
    config = experiments.get("tiny")
    return apply_overrides(config, ["train.dtype=float64", *(f"train.{k}={v}" for k, v in train_kw.items())])


def test_log_equals_a_synchronous_loop_and_the_chunk_compiles_once(tmp_path, monkeypatch):
    """The loop reads chunk k after dispatching chunk k+1; its records must still be chunk k's: a
    plain loop (train a chunk, wait, evaluate, wait) over the same chunks gives the same records,
    exactly. Chunk lengths 10, 10, 3 (to until_step 23), then 7, 10, 10, 7 (to 47): one compiled
    train chunk in each run, and the resumed run ends where an unbroken one does."""
    trainers = []

    class Recording(train.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(train, "Trainer", Recording)
    config = tiny(steps=47, eval_every=10, ckpt_every=10)
    out = tmp_path / "run"
    assert train.train(config, out, until_step=23, progress=False) == {"stopped_at": 23}
    summary = train.train(config, out, progress=False)
    assert summary["resumed_from"] == 23 and summary["steps"] == 47
    assert [t._chunk._cache_size() for t in trainers] == [1, 1]  # every length in one program
    assert 0.0 <= summary["loop_overhead"] <= 1.0 and summary["train_steps_per_s"] > 0

    # the synchronous loop, by hand, over the same chunk boundaries
    monkeypatch.undo()
    with precision.at_dtype("float64"):
        trainer = train.Trainer(config)
        params, opt_state = trainer.init()
        keys = trainer.keys()
        batch = config.task.sample(train.heldout_key(config, train.HeldOut.EVAL), config.train.eval_tasks)
        evaluate = trainer.evaluator(train.reference_solver(config)[0])
        want = [{"step": 0, **{k: np.asarray(v).tolist() for k, v in jax.device_get(evaluate(params, batch)).items()}}]
        bounds = [0, 10, 20, 23, 30, 40, 47]
        for a, b in itertools.pairwise(bounds):
            params, opt_state, losses = trainer.train_chunk(params, opt_state, keys, a, b - a)
            losses = np.asarray(losses)
            assert losses.shape == (b - a, 1)
            metrics = jax.device_get(evaluate(params, batch))
            want.append({"step": b, "train_loss": losses.mean(0).tolist(), **{k: np.asarray(v).tolist() for k, v in metrics.items()}})
    got = [without_wall(r) for r in train.rundir.read_log(out) if "event" not in r]
    assert got == want
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, train.load_params(out)[1]), jax.tree.map(np.asarray, params))


def test_a_short_chunk_is_the_same_steps_as_a_full_one():
    """The while loop of `count` steps in the program of eval_every: 3 steps then 7 equal 10 steps
    bit for bit (a resume at an odd step is exact), and the program is compiled once."""
    with precision.at_dtype("float64"):
        trainer = train.Trainer(tiny(steps=100, eval_every=10, n_seeds=2))
        params, opt_state = trainer.init()
        keys = trainer.keys()
        whole = trainer.train_chunk(params, opt_state, keys, 0, 10)
        p, o, l3 = trainer.train_chunk(params, opt_state, keys, 0, 3)
        p, o, l7 = trainer.train_chunk(p, o, keys, 3, 7)
        jax.tree.map(np.testing.assert_array_equal, (p, o), whole[:2])
        np.testing.assert_array_equal(np.concatenate([l3, l7]), whole[2])
        assert trainer._chunk._cache_size() == 1


def test_a_stop_asked_before_the_first_chunk_checkpoints_after_it(tmp_path, monkeypatch):
    """SIGTERM that arrives before the loop has dispatched anything (during compilation or the
    step-0 evaluation): the loop still trains its first chunk, checkpoints it and stops (it must
    neither spin nor stop without the checkpoint)."""
    enter = train._Interrupts.__enter__

    def requested_at_once(self):
        enter(self)
        self.requested = signal.SIGTERM
        return self

    monkeypatch.setattr(train._Interrupts, "__enter__", requested_at_once)
    config = tiny(steps=40, eval_every=10, ckpt_every=20)
    with pytest.raises(SystemExit) as stopped:
        train.train(config, tmp_path, progress=False)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert train.load_params(tmp_path)[2] == 10
    assert [r["step"] for r in train.rundir.read_log(tmp_path)] == [0, 10]
