"""Fault injection on real `icl train` processes: kill -9 and Ctrl-C at random moments, including
while a checkpoint is being written; two trainers on one directory; a full disk; damaged,
edited and deleted files. After each: no hang (every process has a deadline), a clear message,
nothing lost that was checkpointed, final parameters bit-identical to an uninterrupted run's
(float64), and records (config, log, summary) that tell the truth."""

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from icl import train
from processes import DEADLINE_S, finish, start


def run(out: Path, *extra: str) -> tuple[int, str]:
    return finish(start(out, *extra))


def params(run_dir: Path):
    return jax.tree.map(np.asarray, train.load_params(run_dir)[1])


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = DEADLINE_S) -> None:
    """Poll `condition()` until it holds; fail with `what` and the process's output if the
    process exits first or `timeout` seconds pass (the process is killed then)."""
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"icl train exited with {proc.returncode} before {what}: {proc.communicate()[0][-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s: {proc.communicate()[0][-2000:]}")
        time.sleep(0.05)


def logged_steps(run_dir: Path) -> int:
    """How many evaluation lines the run's log holds (0 before it exists)."""
    try:
        return sum(1 for line in (run_dir / "log.jsonl").read_text().splitlines() if line.startswith('{"step"'))
    except FileNotFoundError:
        return 0


def wait_for_save(run_dir: Path, timeout: float = 60) -> bool:
    """Poll until a checkpoint is being written (orbax's temporary directory exists)."""
    end = time.monotonic() + timeout
    ckpt = run_dir / "checkpoints"
    while time.monotonic() < end:
        try:
            if any("tmp" in entry.name for entry in os.scandir(ckpt)):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return False


def evaluations(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if "event" not in r]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    code, text = run(out)
    assert code == 0, text
    return out


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    """The same run stopped at step 60 (checkpoints 55 and 60); tests damage copies of it."""
    out = tmp_path_factory.mktemp("half") / "run"
    code, text = run(out, "--until-step", "60")
    assert code == 0, text
    return out


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Bit-identical parameters; a log with every evaluation once, equal to the reference's."""
    jax.tree.map(np.testing.assert_array_equal, params(run_dir), params(reference))
    got, want = evaluations(run_dir), evaluations(reference)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(got, want, strict=True):
        assert {k: v for k, v in a.items() if k != "wall_s"} == {k: v for k, v in b.items() if k != "wall_s"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 120 and summary["model"] == json.loads((reference / "summary.json").read_text())["model"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupt_during_checkpoint_writes_then_resume_is_exact(sig, reference, tmp_path):
    """Three interruptions in one run, each while orbax is writing a checkpoint; Ctrl-C is sent
    twice (the second lands during the save and must neither hang nor cut it)."""
    out, rng, hits = tmp_path / "run", random.Random(int(sig)), 0
    for _ in range(3):
        proc = start(out)
        time.sleep(rng.uniform(0.0, 1.0))
        hits += wait_for_save(out)
        alive = proc.poll() is None  # else it finished the run before the signal: exit 0
        proc.send_signal(sig)
        if sig == signal.SIGINT:
            time.sleep(0.01)
            proc.send_signal(sig)
        code, text = finish(proc)
        # Ctrl-C: 130 (cli.main, after checkpointing or deferred past the save); kill -9: -9
        expected = (130 if sig == signal.SIGINT else -signal.SIGKILL) if alive else 0
        state = "running" if alive else "finished"
        assert code == expected, f"exit {code}, expected {expected} (signal sent to a {state} process): {text[-2000:]}"
        assert "Traceback" not in text, text
        if code == 0:
            break
    assert hits >= 1  # at least one interruption landed while a checkpoint was in flight
    code, text = run(out)
    assert code == 0, text
    assert_same_run(out, reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall_s"] >= max(r.get("wall_s", 0) for r in evaluations(out)) - 1e-6  # wall time of all pieces


def test_second_trainer_on_the_same_directory_is_refused(tmp_path):
    """A second `icl train` on a directory whose trainer is running exits 2 naming the holder; the
    first (a run far too long to end by itself, so it is certainly still training when the second
    asks) goes on, stops on SIGTERM with a checkpoint, and the directory is free again after it."""
    out, long_run = tmp_path / "run", ("--set", "train.steps=1000000")
    first = start(out, *long_run)
    try:
        wait_until(lambda: logged_steps(out) >= 2, first, "a first training chunk in the log (step 5)")
        code, text = run(out, *long_run)
        assert code == 2 and f"{out} is in use: pid {first.pid} on" in text and "Traceback" not in text, text
        assert first.poll() is None, "the first trainer stopped while the second was refused"
        first.send_signal(signal.SIGTERM)
        code, text = finish(first)
    finally:  # never leave the million-step run behind
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM at step" in text, text
    stopped = int(text.split("stopped by SIGTERM at step ")[1].split(";")[0])
    code, text = run(out, *long_run, "--until-step", str(stopped + 5))  # the lock was released
    assert code == 0 and f"resuming {out} from step {stopped}" in text, text
    assert train.load_params(out)[2] == stopped + 5


def test_damaged_latest_checkpoint_falls_back_to_the_one_before(reference, half, tmp_path):
    out = copy_of(half, tmp_path)
    latest = out / "checkpoints" / "60"
    assert (out / "checkpoints" / "55").exists()
    for path in sorted(p for p in latest.rglob("*") if p.is_file()):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncate every file
    code, text = run(out)
    assert code == 0, text
    assert "checkpoint 60 is unreadable" in text and (out / "corrupt" / "60").exists()
    assert_same_run(out, reference)


def test_deleted_checkpoint_files_and_records(reference, half, tmp_path):
    out = copy_of(half, tmp_path)
    shutil.rmtree(out / "checkpoints" / "60" / "default")  # a checkpoint without its data
    (out / "log.jsonl").unlink()
    code, text = run(out)
    assert code == 0, text
    jax.tree.map(np.testing.assert_array_equal, params(out), params(reference))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0] == {"event": "log_gap", "from_step": 0, "to_step": 55} and "warning" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["log_complete"] is False and summary["resumed_from"] == 55


def test_config_and_step_records_stay_true(reference, half, tmp_path):
    out = copy_of(half, tmp_path)
    config = (out / "config.json").read_text()
    (out / "config.json").unlink()  # checkpoints without a config: never adopt another config
    code, text = run(out, "--set", "task.n_ctx=7")
    assert code == 2 and "no config.json" in text
    (out / "config.json").write_text(config)
    code, text = run(out, "--set", "train.steps=40")  # below the checkpoint: refused, not mislabelled
    assert code == 2 and "beyond train.steps = 40" in text
    code, text = run(out, "--set", "optim.schedule=cosine")
    assert code == 2 and "another config (differs in: optim.schedule)" in text
    # a bad solver spec fails before any training, and the corrected one is then accepted
    code, text = run(out, "--set", "compare_against=gd,ridge(foo=1)")
    assert code == 2 and "unexpected keyword argument 'foo'" in text and "Traceback" not in text
    assert run(out, "--set", "compare_against=gd,ridge(lam=0.1)")[0] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["solvers"]) == ["gd", "ridge(lam=0.1)"]
    assert summary["model"] == json.loads((reference / "summary.json").read_text())["model"]


def test_cosine_schedule_cannot_be_extended(tmp_path):
    out = tmp_path / "run"
    assert run(out, "--set", "optim.schedule=cosine", "--set", "train.steps=20")[0] == 0
    code, text = run(out, "--set", "optim.schedule=cosine", "--set", "train.steps=40")
    assert code == 2 and "cosine schedule over 20 steps" in text


def test_failed_start_does_not_block_the_directory(tmp_path):
    out = tmp_path / "run"
    code, text = run(out, "--set", "train.data_parallel=64")  # more devices than there are
    assert code == 2 and "devices requested" in text and not (out / "config.json").exists()
    (out).mkdir(exist_ok=True)
    (out / "config.json").write_text("{}")  # a start that died before its first checkpoint
    code, text = run(out, "--set", "train.steps=10")
    assert code == 0, text


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _disk_bytes(path: Path) -> int:
    """Bytes a directory tree occupies on its file system (whole blocks, as tmpfs counts them)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def test_full_disk_is_a_clear_error_and_loses_nothing(reference, half, tmp_path):
    """The disk fills while the first new checkpoint (65) is written, after a known one (60, from
    `half`): a one-line error naming both, checkpoint 60 still the latest and readable, and with
    room again the run resumes from 60 and ends bit-identical to the uninterrupted one."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "20m"):
        pytest.skip("cannot mount a small tmpfs here (needs root in a machine that allows mounts)")
    try:
        out = Path(shutil.copytree(half, disk / "run"))
        assert train.load_params(out)[2] == 60
        # room for the config's rewrite and a few log lines (4 KiB pages each), not for another
        # checkpoint: half of one (~28 KiB of tiny's 56 KiB)
        room = _disk_bytes(out / "checkpoints" / "60") // 2
        assert room >= 4 * 4096, room
        size_k = (_used_bytes(disk) + room) // 1024
        subprocess.run(["mount", "-o", f"remount,size={size_k}k", str(disk)], check=True)
        code, text = run(out)
        # the last line says it, and nothing else is printed: no traceback, from the main thread or
        # from orbax's writer threads (the manager is closed before the error leaves `train`).
        last = text.strip().splitlines()[-1]
        assert code == 2, text
        assert last.startswith("error: [Errno 28] No space left on device while writing checkpoint 65 (latest complete: 60)"), text
        assert "Traceback" not in text and "icl/" not in text and "orbax" not in text, text
        assert train.load_params(out)[2] == 60  # the known checkpoint survived, still the latest
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        code, text = run(out)
        assert code == 0, text
        assert f"resuming {out} from step 60" in text, text
        assert_same_run(out, reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
