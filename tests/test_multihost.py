"""Multi-process training through the documented launch, on one machine: N local processes of
`icl train --distributed` with JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, each
with 8/N virtual CPU devices, joined by jax.distributed over localhost (gloo collectives).

Checked in float64 against a 1-process, 1-device run of the same config (loss curves and
parameters to 1e-10 relative): data split over 2 processes; seeds split over 2 processes, stopped
at a checkpoint and resumed in 4 processes (the gradient all-reduce then crosses processes in
another order, so agreement is to float64 rounding, not to the bit); one process writes and prints."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from icl import distributed, train

TINY = ["tiny", "--no-progress", "--set", "train.dtype=float64", "--set", "train.n_seeds=2",
        "--set", "train.steps=40", "--set", "train.ckpt_every=20"]
SEEDS_OVER_PROCESSES = ["--set", "train.seed_parallel=2", "--set", "train.data_parallel=4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(n_processes: int, out, *args, total_devices: int = 8, timeout: float = 300) -> list[str]:
    """Start `icl train --distributed` in n processes (total_devices / n CPU devices each) the way
    the README says; return each process's stdout."""
    port = _free_port()
    procs = []
    for index in range(n_processes):
        env = {
            **os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={total_devices // n_processes}",
            "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": str(n_processes),
            "JAX_PROCESS_ID": str(index),
        }
        cmd = [sys.executable, "-m", "icl", "train", "--distributed", "--out", str(out), *TINY, *args]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            proc.kill()
    for proc, text in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, text[-3000:]
    return outputs


def params(run_dir, step=None):
    return jax.tree.map(np.asarray, train.load_params(run_dir, step=step)[1])


def curve(run_dir) -> np.ndarray:
    """[records, 3, seeds]: train_loss, held-out loss and GD's loss at every logged step."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return np.array([[r["train_loss"], r["loss"], r["ref_loss"]] for r in rows if "train_loss" in r])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same config in one process on one device."""
    out = tmp_path_factory.mktemp("one_process") / "run"
    subprocess.run([sys.executable, "-m", "icl", "train", "--out", str(out), *TINY], check=True,
                   capture_output=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    return out


def test_data_split_over_two_processes_follows_one_process(reference, tmp_path):
    out = tmp_path / "run"
    printed = launch(2, out, "--set", "train.data_parallel=8")
    np.testing.assert_allclose(curve(out), curve(reference), rtol=1e-10, atol=0)
    assert "2 process(es)" in printed[0] and "'data': 8" in printed[0]
    # one process writes and prints
    assert "wrote" in printed[0] and "wrote" not in printed[1] and "held-out tasks" not in printed[1]
    summary = json.loads((out / "summary.json").read_text())
    np.testing.assert_allclose(summary["model"]["loss"], json.loads((reference / "summary.json").read_text())["model"]["loss"], rtol=1e-10)


def test_seeds_over_processes_then_resume_in_four_processes_is_exact(reference, tmp_path):
    """Each process holds one seed's parameters: the final table gathers them; a checkpoint
    written by 2 processes resumes in 4 (2 devices each) and the run follows the 1-process one."""
    out = tmp_path / "run"
    printed = launch(2, out, *SEEDS_OVER_PROCESSES, "--until-step", "20")
    assert "stopped at step 20" in printed[0] and not (out / "summary.json").exists()
    first_half = curve(out)
    np.testing.assert_allclose(first_half, curve(reference)[: len(first_half)], rtol=1e-10, atol=0)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    jax.tree.map(close, params(out, 20), params(reference, 20))

    printed = launch(4, out, *SEEDS_OVER_PROCESSES)
    assert "resuming" in printed[0] and "4 process(es)" in printed[0]
    np.testing.assert_allclose(curve(out), curve(reference), rtol=1e-10, atol=0)
    jax.tree.map(close, params(out), params(reference))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["model"]["loss"]) == 2 and len(summary["devices"]) == 8 and summary["resumed_from"] == 20
    np.testing.assert_allclose(summary["model"]["loss"], json.loads((reference / "summary.json").read_text())["model"]["loss"], rtol=1e-10)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"JAX_COORDINATOR_ADDRESS": "localhost:1234"}, "JAX_NUM_PROCESSES and JAX_PROCESS_ID must be set"),
        ({"JAX_COORDINATOR_ADDRESS": "localhost", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "host:port"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "must be an integer"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "must be smaller than"),
        ({"JAX_NUM_PROCESSES": "2"}, "JAX_COORDINATOR_ADDRESS .* is not"),
    ],
)
def test_bad_cluster_environment_is_one_clear_error(env, message):
    with pytest.raises(ValueError, match=message):
        distributed.cluster_from_env(env)


def test_cluster_environment_is_passed_explicitly():
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3",
           "JAX_LOCAL_DEVICE_IDS": "0,1"}
    assert distributed.cluster_from_env(env) == {
        "coordinator_address": "10.0.0.1:8476", "num_processes": 4, "process_id": 3, "local_device_ids": [0, 1]}
    assert distributed.cluster_from_env({}) == {}  # JAX's own detection (SLURM, MPI, TPU pod)
