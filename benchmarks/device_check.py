"""One prepared check of this code on an accelerator machine, within a time budget; writes JSON.

    python benchmarks/device_check.py --out DIR [--budget-s 480]   (benchmarks/device_check.sh wraps it)

In order, each step timed and recorded as soon as it ends (a cut-off run keeps what it measured):
  1. environment: devices, backend, versions;
  2. precision: a float32 dot of the size the models use, at the backend's default precision and
     at "highest", against float64 (shows what TF32 / bf16 passes would cost the float-precision
     checks), and the one-step GD construction vs `solvers.gd` in float32 under the policy;
  3. `icl verify` (constructions vs solvers, float64);
  4. the default job `icl train` (the one-layer paper run), its summary numbers, and the run
     loop's efficiency (`benchmarks/bench_loop.py`: the loop's steps/s over the bare chunk's) and
     a learning-rate sweep in one program against its runs one by one (`benchmarks/bench_sweep.py`);
  5. the float-precision tests on the accelerator (constructions, solvers, the Gram path, models,
     precision policy; pytest in float64 as in CI);
  6. training speed of each figure's model (the "variants" study of `icl list`: one LSA layer, 5 clipped layers,
     softmax, sine with MLP embedding, classic tokens), steps/s after compilation;
  7. the speed benchmark `benchmarks/bench_train.py`;
  8. figure scripts in full mode, cheapest first, while the budget lasts (each under `timeout`;
     outputs under SCRATCH/figures, never over the repo's records), then the whole paper's full
     modes projected from them (`paper_projection`).
Run directories and figure outputs go to --scratch (default DIR/scratch); the JSON alone to DIR.
Steps run as subprocesses of this interpreter with the repo root on PYTHONPATH, so the project
need not be pip-installed on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Tests whose claims are "equal to float precision": they must hold on every backend.
PRECISION_TESTS = ("tests/test_precision.py", "tests/test_constructions.py", "tests/test_solvers.py",
                   "tests/test_gram.py", "tests/test_models.py")
SPEED_STEPS = 2000
# Full-mode figure scripts, cheapest first (2-core CPU training wall time in their JSON records).
FIGURES = ("fig1_plateau", "claim1_gamma_star", "claim4_task_diversity", "claim3_algorithm_transition",
           "claim5_order", "fig1_one_layer", "fig3_recurrence")


def run(cmd: list[str], timeout: float, env: dict) -> dict:
    """Run a command with a deadline; its exit code, wall time and the tail of its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(timeout, 1))
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        parts = [p.decode(errors="replace") if isinstance(p, bytes) else p for p in (expired.stdout, expired.stderr)]
        code, text = "timeout", "".join(p or "" for p in parts)
    return {"cmd": " ".join(cmd[1:]), "rc": code, "wall_s": round(time.perf_counter() - start, 2), "tail": text[-1500:]}


def precision_numbers() -> dict:
    """Max relative error of float32 dots vs float64 at default and highest precision, and the
    float32 one-step GD construction vs the GD solver (both under the precision policy)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from icl import constructions, solvers, tasks

    x = jax.random.normal(jax.random.key(0), (4096, 11, 11), jnp.float32)
    exact = np.einsum("bij,bjk->bik", np.asarray(x, np.float64), np.asarray(x, np.float64))
    out = {}
    for name in ("default", "highest"):
        with jax.default_matmul_precision(name):
            got = jax.jit(lambda a: jnp.einsum("bij,bjk->bik", a, a))(x)
        out[f"dot_rel_err_{name}"] = float(np.max(np.abs(np.asarray(got, np.float64) - exact)) / np.max(np.abs(exact)))
    task = tasks.get("linear", d=10, n_ctx=10)
    batch = task.sample(jax.random.key(1), 4096)
    lr = solvers.optimal_gd_lr(task, jax.random.key(2))
    model = constructions.gd_model(d=10, n_ctx=10, lr=lr, layers=1, dtype=jnp.float32)
    y_model = jax.jit(model)(batch)
    y_gd = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, steps=1)
    out["construction_vs_gd_max_abs_err_float32"] = float(jnp.max(jnp.abs(y_model - y_gd)))
    out["construction_vs_gd_scale"] = float(jnp.max(jnp.abs(y_gd)))
    return out


def paper_projection(steps: dict) -> dict:
    """The whole paper's full modes on this device, projected: each figure that ran to the end
    here counts its measured wall time; every other script counts its committed record's
    training wall time (2-core CPU) scaled by the median speed-up of the figures that ran
    (record wall / wall here). One script at a time; a rough number, labelled as such (a record's
    training time counts runs another script reuses: figure 3 trains none of figure 2's)."""
    records = {p.stem: json.loads(p.read_text()) for p in (ROOT / "paper_figures").glob("*.json")}
    records = {name: r for name, r in records.items() if isinstance(r, dict) and "figure" in r}  # a script's record
    cpu_s = {name: max(float(r.get("wall_s") or 0), float(r.get("train_wall_s") or 0))  # a rerun trains every run
             for name, r in records.items() if r.get("mode") == "full"}
    measured = {name.removeprefix("figure:"): s["wall_s"] for name, s in steps.items()
                if name.startswith("figure:") and s.get("rc") == 0 and "wall_s" in s}
    ratios = sorted(cpu_s[n] / w for n, w in measured.items() if cpu_s.get(n) and w > 0)
    if not ratios:
        return {"note": "no figure finished here: nothing to scale by"}
    speedup = ratios[len(ratios) // 2]
    projected = {n: measured.get(n, s / speedup) for n, s in cpu_s.items()}
    return {"speedup_vs_records": round(speedup, 2), "measured": sorted(measured), "cpu_record_total_s": round(sum(cpu_s.values())),
            "projected_total_s": round(sum(projected.values())), "scripts": len(projected)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all steps")
    parser.add_argument("--scratch", type=Path, help="run directories and figure outputs (default OUT/scratch)")
    args = parser.parse_args()
    scratch = args.scratch or args.out / "scratch"
    deadline = time.perf_counter() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    result_path = args.out / "device_check.json"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    sys.path.insert(0, str(ROOT))
    icl = [sys.executable, "-m", "icl"]
    result: dict = {"budget_s": args.budget_s, "steps": {}}

    def record(name: str, value) -> None:
        result["steps"][name] = value
        result_path.write_text(json.dumps(result, indent=1))
        print(f"[device_check] {name}: {json.dumps(value)[:300]}", flush=True)

    import jax

    result["devices"] = [str(d) for d in jax.devices()]
    result["backend"] = jax.default_backend()
    result["versions"] = {"python": platform.python_version(), "jax": jax.__version__}
    for module in ("flax", "optax", "orbax.checkpoint", "matplotlib", "tqdm"):
        try:
            result["versions"][module] = __import__(module, fromlist=["_"]).__version__
        except ImportError:
            result["versions"][module] = None  # the figure steps need matplotlib: they will say so
    record("environment", {"devices": result["devices"], "backend": result["backend"]})
    record("precision", precision_numbers())
    record("verify", run(icl + ["verify"], deadline - time.perf_counter(), env))

    default_dir = scratch / "runs" / "paper_1layer"
    step = run(icl + ["train", "--out", str(default_dir), "--no-progress"], deadline - time.perf_counter(), env)
    if (default_dir / "summary.json").exists():
        summary = json.loads((default_dir / "summary.json").read_text())
        step["summary"] = {k: summary[k] for k in ("model", "zero_loss", "wall_s", "train_steps_per_s", "devices")}
        step["summary"]["solvers"] = {name: {"loss": row["loss"], "model_cos": row["model_cos"]}
                                      for name, row in summary["solvers"].items()}
    record("default_job", step)

    loop = args.out / "loop.json"  # the run loop's steps/s over its bare train chunk's, at a cheap step
    step = run([sys.executable, "benchmarks/bench_loop.py", "--repeats", "2", "--out", str(loop)],
               min(120.0, deadline - time.perf_counter()), env)
    if loop.exists():
        step["results"] = {k: v for k, v in json.loads(loop.read_text()).items() if k != "machine"}
    record("loop_efficiency", step)

    sweep = args.out / "sweep.json"  # 8 learning rates in one program vs one after another
    step = run([sys.executable, "benchmarks/bench_sweep.py", "--repeats", "1", "--steps", "1000", "--batch", "16",
                "--batch", "2048", "--out", str(sweep)], min(120.0, deadline - time.perf_counter()), env)
    if sweep.exists():
        step["results"] = json.loads(sweep.read_text())["rows"]
    record("sweep", step)

    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PRECISION_TESTS]
    record("precision_tests", run(tests, min(180.0, deadline - time.perf_counter()), env))

    from icl import experiments

    for name in experiments.studies()["variants"]:
        folder = scratch / "speed" / name
        sets = (f"train.steps={SPEED_STEPS}", "train.eval_every=500", f"train.ckpt_every={SPEED_STEPS}")
        cmd = icl + ["train", name, "--out", str(folder), "--no-progress"] + [a for s in sets for a in ("--set", s)]
        step = run(cmd, min(90.0, deadline - time.perf_counter()), env)
        if (folder / "summary.json").exists():
            summary = json.loads((folder / "summary.json").read_text())
            step["summary"] = {k: summary.get(k) for k in ("model", "wall_s", "train_steps_per_s")}
        record(f"speed:{name}", step)

    bench = args.out / "bench_train.json"
    step = run([sys.executable, "benchmarks/bench_train.py", "--out", str(bench)], deadline - time.perf_counter(), env)
    if bench.exists():
        step["results"] = json.loads(bench.read_text())
    record("bench_train", step)

    for name in FIGURES:
        left = deadline - time.perf_counter()
        if left < 20:
            record(f"figure:{name}", {"skipped": "budget spent"})
            continue
        folder = scratch / "figures" / name
        step = run([sys.executable, f"paper_figures/{name}.py", "--out", str(folder)], left, env)
        numbers = folder / f"{name}.json"
        if numbers.exists():
            step["numbers"] = json.loads(numbers.read_text())
        record(f"figure:{name}", step)
    result["paper_projection"] = paper_projection(result["steps"])
    record("paper_projection", result["paper_projection"])
    result["wall_s"] = round(args.budget_s - (deadline - time.perf_counter()), 1)
    result_path.write_text(json.dumps(result, indent=1))
    print(f"[device_check] wrote {result_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
