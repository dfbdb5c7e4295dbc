"""paper_figures/run_all.py picks how many scripts run at once from the device a child process
finds: the CPU count on a CPU, several per GPU with a share of its memory each, one on a TPU."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "paper_figures" / "run_all.py"


def load():
    spec = importlib.util.spec_from_file_location("run_all", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_jobs_per_device():
    run_all = load()
    assert run_all.plan_jobs("cpu", 1, 2) == (2, {"JAX_NUM_CPU_DEVICES": "1"})
    assert run_all.plan_jobs("cpu", 1, 8, jobs=2) == (2, {"JAX_NUM_CPU_DEVICES": "4"})  # the user's count: 4 cores each
    assert run_all.plan_jobs("cpu", 1, 2, jobs=4) == (4, {"JAX_NUM_CPU_DEVICES": "1"})
    assert run_all.plan_jobs("tpu", 8, 96) == (1, {})
    assert run_all.plan_jobs("tpu", 8, 96, jobs=3) == (1, {})
    jobs, env = run_all.plan_jobs("gpu", 2, 16)
    assert jobs == 2 * run_all.GPU_JOBS_PER_DEVICE
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) * run_all.GPU_JOBS_PER_DEVICE <= 0.9 + 1e-9


def test_the_probe_asks_a_child_process_and_falls_back_to_the_cpu():
    run_all = load()
    backend, count = run_all.probe_device(sys.executable)
    assert backend in ("cpu", "gpu", "tpu") and count >= 1
    assert run_all.probe_device("/nonexistent/python") == ("cpu", 1)
