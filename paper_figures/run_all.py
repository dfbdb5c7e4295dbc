"""Run every figure and claim script, several at a time: the paper in one command.

    python paper_figures/run_all.py [--quick] [--jobs N] [--only fig2_depth fig3_recurrence ...] [--out DIR]

Each script (`paper_figures/fig*.py`, `claim*.py`) runs as its own process, as `python SCRIPT
[--quick]` would; N of them at once (default: the machine's CPU count). Why: XLA:CPU keeps
the second core of a 2-core machine mostly idle on these programs (small batched products, one
op at a time), so two trainings side by side get through 1.4-1.8x the work of one (measured, 2
cores: figure 2's 5-layer stack 6.1 steps/s alone, 5.0 + 5.3 two at once; figure 4 9.0 vs 6.5 +
6.1; figure 5 11.6 vs 7.2 + 8.0; `benchmarks/bench_figures.py --experiments NAME` in two shells).
Every script's own numbers are unchanged: each run is a pure function of its config and its
device layout (here one CPU device per script; a script run alone splits a large batch of a deep
attention stack over the cores, `icl.devices`: the same training up to float rounding), and its
`wall_s` is its own (measured while sharing the machine).

How many at once (`--jobs`, default `plan_jobs` on the device a child process finds): on a CPU,
the CPU count, each script with its share of the cores as JAX devices (JAX_NUM_CPU_DEVICES); on
GPUs, GPU_JOBS_PER_DEVICE scripts per GPU, each started with
XLA_PYTHON_CLIENT_PREALLOCATE=false and XLA_PYTHON_CLIENT_MEM_FRACTION = 0.9 / (scripts per GPU),
so several small programs fill one GPU instead of the first taking 75 % of its memory; on TPUs,
one (a TPU chip takes one process).

Order: the longest first (the previous `wall_s` in each script's numbers file; scripts without
one first of all), figure 3 after figure 2 (it loops figure 2's shared runs, which are trained
once, by whichever comes first: a run directory takes one trainer at a time). Each script's
output goes to <out>/logs/<script>.log; a line per start and end is printed here. Exit status 1
when any script fails (all others still run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from icl.devices import usable_cores

HERE = Path(__file__).resolve().parent
AFTER = {"fig3_recurrence": "fig2_depth"}  # script -> the script whose runs it reuses
GPU_JOBS_PER_DEVICE = 4  # the paper's programs are small: one alone leaves a GPU mostly idle
PROBE = "import jax; print(jax.default_backend(), jax.device_count())"


def probe_device(python: str) -> tuple[str, int]:
    """(backend, device count) as a script would see them, asked of a child process (this one
    never initialises an accelerator, so it holds none of its memory); ("cpu", 1) if it fails."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300, check=True)
        backend, count = out.stdout.split()[-2:]
        return backend, int(count)
    except (OSError, subprocess.SubprocessError, ValueError):
        return "cpu", 1


def plan_jobs(backend: str, n_devices: int, n_cpus: int, jobs: int | None = None) -> tuple[int, dict[str, str]]:
    """(scripts at once, extra environment for each) on this device (see the module docstring);
    `jobs`: the user's count instead (one script at a time on a TPU regardless). On a CPU each
    script gets its share of the cores as JAX devices (`icl.devices`: with as many scripts as
    cores, one each, so two scripts' data-parallel splits never fight for the same cores)."""
    if backend == "gpu":
        per_device = GPU_JOBS_PER_DEVICE
        return jobs or per_device * n_devices, {"XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                                                "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 / per_device:.3f}"}
    if backend == "tpu":
        return 1, {}
    jobs = jobs or max(n_cpus, 1)
    return jobs, {"JAX_NUM_CPU_DEVICES": str(max(n_cpus // jobs, 1))}


def scripts(only: list[str] | None) -> list[str]:
    """The figure and claim scripts by name (fig*.py, claim*.py), optionally only some."""
    names = sorted(p.stem for p in [*HERE.glob("fig*.py"), *HERE.glob("claim*.py")])
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"run_all: unknown script(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in only]
    return names


def previous_wall_s(out: Path, name: str) -> float:
    """The wall time the script's last numbers file records (inf when there is none: unknown
    work goes first)."""
    try:
        return float(json.loads((out / f"{name}.json").read_text())["wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("inf")


def ready(name: str, done: set[str], selected: set[str]) -> bool:
    return AFTER.get(name) not in selected or AFTER[name] in done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every script's --quick mode (outputs in paper_figures/quick/)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="scripts at once (default: by device: the CPU count, 4 per GPU, 1 on TPU)")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="these scripts (names without .py)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the scripts")
    parser.add_argument("--out", type=Path, default=None,
                        help="every script's --out (default paper_figures/, or paper_figures/quick/ with --quick)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    backend, n_devices = probe_device(args.python)
    jobs, extra_env = plan_jobs(backend, n_devices, usable_cores(), args.jobs)
    if "JAX_NUM_CPU_DEVICES" in os.environ or "--xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        extra_env.pop("JAX_NUM_CPU_DEVICES", None)  # the caller chose the CPU devices
    env = {**os.environ, **extra_env}
    print(f"run_all: {backend} x {n_devices}: {jobs} script(s) at once"
          + (f" ({', '.join(f'{k}={v}' for k, v in extra_env.items())})" if extra_env else ""), flush=True)
    out = args.out.resolve() if args.out else (HERE / "quick" if args.quick else HERE)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    waiting = sorted(scripts(args.only), key=lambda n: -previous_wall_s(out, n))
    selected, done, failed = set(waiting), set(), []
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    started = time.perf_counter()
    while waiting or running:
        for name in [n for n in waiting if ready(n, done, selected)][: jobs - len(running)]:
            waiting.remove(name)
            with open(logs / f"{name}.log", "w") as log:
                cmd = [args.python, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else []),
                       *(["--out", str(out)] if args.out else [])]
                running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.perf_counter())
            print(f"=== {name}: started ({len(running)} running)", flush=True)
        time.sleep(0.2)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            done.add(name)
            took = time.perf_counter() - t0
            if proc.returncode == 0:
                print(f"=== {name}: ok in {took:.0f} s", flush=True)
            else:
                failed.append(name)
                tail = (logs / f"{name}.log").read_text().splitlines()[-15:]
                print(f"=== {name}: FAILED (exit {proc.returncode}) after {took:.0f} s; log {logs / (name + '.log')}:",
                      *("    " + line for line in tail), sep="\n", file=sys.stderr, flush=True)
    total = time.perf_counter() - started
    if failed:
        print(f"run_all: {len(failed)} of {len(selected)} failed: {' '.join(failed)} ({total:.0f} s)", file=sys.stderr)
        return 1
    print(f"run_all: all {len(selected)} scripts passed in {total:.0f} s with {jobs} at once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
