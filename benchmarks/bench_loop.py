"""Loop efficiency: the run loop's training rate over the bare compiled train chunk's, side by side.

    python benchmarks/bench_loop.py                 # the issue's config, best of 3 (a few minutes on 2 cores)
    python benchmarks/bench_loop.py --repeats 1     # one round
    python benchmarks/bench_loop.py --set train.eval_tasks=2048   # any other --set on top

The config is `icl train paper_1layer --set train.batch_size=16 --set train.steps=6000 --set
train.eval_tasks=64` (plus any --set): at batch 16 a step is cheap, as on a GPU, so everything
the loop does around the compiled step (evaluation, host syncs, the log, the progress bar,
checkpoints) shows. In one process, alternating, `--repeats` times (best of each):

  * bare:  `Trainer.train_chunk` called back to back over the run's steps in chunks of
           `eval_every` (no evaluation, no host sync until the end): steps/s;
  * loop:  the whole `icl.train.train` (progress bar on, written to /dev/null) in a fresh run
           directory; its summary's `train_steps_per_s` (after the first chunk, which compiles)
           and `loop_overhead` (the share of the loop's wall time not spent in compiled train
           chunks and evaluations).

Prints a table and writes benchmarks/loop.json (or --out) with the ratio loop / bare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax

from icl import experiments, train
from icl.config import apply_overrides

ISSUE_SETTINGS = ["train.batch_size=16", "train.steps=6000", "train.eval_tasks=64"]


def bare_rate(config) -> float:
    """Steps/s of the train chunk alone over the run's steps (compiled before the clock starts)."""
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    keys = trainer.keys()
    cfg = config.train
    jax.block_until_ready(trainer.train_chunk(params, opt_state, keys, 0, cfg.eval_every))  # compile
    t0 = time.perf_counter()
    step = 0
    while step < cfg.steps:
        n = min(cfg.eval_every, cfg.steps - step)
        params, opt_state, _ = trainer.train_chunk(params, opt_state, keys, step, n)
        step += n
    jax.block_until_ready(params)
    return cfg.steps / (time.perf_counter() - t0)


def loop_rate(config, scratch: Path) -> dict:
    """The summary's rates of one whole `train.train` in a fresh run directory."""
    run_dir = Path(tempfile.mkdtemp(dir=scratch))
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # the bar, unseen
        t0 = time.perf_counter()
        summary = train.train(config, run_dir, progress=True, echo=lambda *a, **k: None)
        wall = time.perf_counter() - t0
    rate, wait = summary["train_steps_per_s"], summary.get("checkpoint_wait_s", 0.0)
    steady = config.train.steps - config.train.eval_every  # the steps after the first chunk
    return {"train_steps_per_s": rate, "loop_overhead": summary.get("loop_overhead"), "checkpoint_wait_s": wait,
            # the rate counting the wait for the checkpoints still being written when training ended
            "steps_per_s_with_checkpoint_wait": round(steady / (steady / rate + wait), 1), "call_wall_s": round(wall, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=str(Path(__file__).with_name("loop.json")))
    args = p.parse_args()
    settings = ISSUE_SETTINGS + args.set
    config = apply_overrides(experiments.get("paper_1layer"), settings)
    bare, loops = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.repeats):
            bare.append(bare_rate(config))
            loops.append(loop_rate(config, Path(scratch)))
            print(f"round {i + 1}: bare chunk {bare[-1]:,.0f} steps/s; loop {loops[-1]['train_steps_per_s']:,.0f} steps/s, "
                  f"overhead {loops[-1]['loop_overhead']}, then {loops[-1]['checkpoint_wait_s']} s for the last checkpoints "
                  f"({loops[-1]['steps_per_s_with_checkpoint_wait']:,.0f} steps/s with it)", flush=True)
    best_bare = max(bare)
    best_loop = max(loops, key=lambda r: r["train_steps_per_s"] or 0)
    ratio = best_loop["train_steps_per_s"] / best_bare
    result = {
        "command": "python benchmarks/bench_loop.py " + " ".join(sys.argv[1:]),
        "config": "icl train paper_1layer " + " ".join(f"--set {s}" for s in settings),
        "eval_every": config.train.eval_every, "ckpt_every": config.train.ckpt_every,
        "repeats": args.repeats,
        "bare_chunk_steps_per_s": [round(r, 1) for r in bare],
        "loop_train_steps_per_s": [r["train_steps_per_s"] for r in loops],
        "loop_overhead": [r["loop_overhead"] for r in loops],
        "checkpoint_wait_s": [r["checkpoint_wait_s"] for r in loops],
        "steps_per_s_with_checkpoint_wait": [r["steps_per_s_with_checkpoint_wait"] for r in loops],
        "best_bare_steps_per_s": round(best_bare, 1),
        "best_loop_steps_per_s": best_loop["train_steps_per_s"],
        "ratio": round(ratio, 3),
        "ratio_with_checkpoint_wait": round(max(r["steps_per_s_with_checkpoint_wait"] for r in loops) / best_bare, 3),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1), "platform": platform.platform(),
                    "devices": [str(d) for d in jax.devices()], "jax": jax.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(f"best of {args.repeats}: bare chunk {best_bare:,.0f} steps/s, loop {best_loop['train_steps_per_s']:,.0f} "
          f"steps/s: {ratio:.0%} of the bare chunk (loop overhead {best_loop['loop_overhead']})")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
