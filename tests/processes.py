"""`icl train` as a real process, for the tests that signal, kill or race one (test_faults,
test_loop): started on the CPU with the tiny float64 run that checkpoints at every evaluation
(5 steps, ~ms each: many chances to hit a save), and waited for within a deadline."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["tiny", "--no-progress", "--set", "train.dtype=float64", "--set", "train.steps=120",
        "--set", "train.eval_every=5", "--set", "train.ckpt_every=5", "--set", "train.eval_tasks=64"]
DEADLINE_S = 120


def start(out: Path, *extra: str) -> subprocess.Popen:
    """`icl train --out out` with ARGS, then `extra` (a later --set of a field wins)."""
    cmd = [sys.executable, "-m", "icl", "train", "--out", str(out), *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for the process within the deadline (a hang fails the test) and return (code, output)."""
    try:
        out, _ = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"icl train hung for {DEADLINE_S} s: {proc.communicate()[0][-2000:]}")
    return proc.returncode, out
