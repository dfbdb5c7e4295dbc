"""A learning-rate sweep in one compiled program (`train.sweep=lr`) against the same runs one after
another, side by side in one process.

    python benchmarks/bench_sweep.py                          # 8 lrs, batch 16 and 256, best of 3
    python benchmarks/bench_sweep.py --batch 2048 --repeats 1
    python benchmarks/bench_sweep.py --set model.n_layers=3   # any other --set on top

For each batch size, the config is `paper_1layer` with that batch (plus any --set) and `--values`
learning rates (log-spaced 1e-4 to 1e-2, one seed each):

  * sweep:    one Trainer with train.sweep=lr, its train chunk called back to back over `--steps`
              steps (compiled before the clock starts): run-steps/s = steps x values / seconds;
  * one by one: for each lr, the one-seed run's Trainer (`train.column_config`), the same calls.

Both train exactly the same runs (tests/test_sweep.py checks a column equals its one-seed run).
Prints a table and writes benchmarks/sweep.json (or --out) with the ratio sweep / one by one.
The ratio is the point of the sweep on an accelerator, where a small model leaves the device
idle; on a CPU the runs share the same cores, so expect a gain only when a step is cheap.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

from icl import experiments, train
from icl.config import apply_overrides


def chunk_rate(config, steps: int) -> float:
    """Run-steps/s (steps x columns / s) of the train chunk alone, compiled before the clock."""
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    keys = trainer.keys()
    every = config.train.eval_every
    jax.block_until_ready(trainer.train_chunk(params, opt_state, keys, 0, every))  # compile
    t0 = time.perf_counter()
    for step in range(0, steps, every):
        params, opt_state, _ = trainer.train_chunk(params, opt_state, keys, step, min(every, steps - step))
    jax.block_until_ready(params)
    return steps * config.train.n_columns / (time.perf_counter() - t0)


def one_by_one_rate(config, steps: int) -> float:
    """Run-steps/s of the sweep's runs trained one after another (compile excluded, as above)."""
    seconds = sum(steps / chunk_rate(train.column_config(config, c), steps) for c in range(config.train.n_columns))
    return steps * config.train.n_columns / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, action="append", help="batch sizes (default 16 and 256)")
    p.add_argument("--values", type=int, default=8, help="learning rates in the sweep")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=str(Path(__file__).with_name("sweep.json")))
    args = p.parse_args()
    lrs = [float(v) for v in np.geomspace(1e-4, 1e-2, args.values)]
    rows = []
    for batch in args.batch or [16, 256]:
        settings = [f"train.batch_size={batch}", "train.sweep=lr", f"train.sweep_values={json.dumps(lrs)}", *args.set]
        config = apply_overrides(experiments.get("paper_1layer"), settings)
        sweep = one = 0.0
        for _ in range(args.repeats):  # alternating, best of each
            sweep = max(sweep, chunk_rate(config, args.steps))
            one = max(one, one_by_one_rate(config, args.steps))
        rows.append({"batch_size": batch, "values": args.values, "sweep_run_steps_per_s": round(sweep, 1),
                     "one_by_one_run_steps_per_s": round(one, 1), "ratio": round(sweep / one, 2)})
        print(f"batch {batch:>5}: sweep of {args.values} lrs {sweep:10.0f} run-steps/s, one by one {one:10.0f} "
              f"-> {sweep / one:.2f}x", flush=True)
    record = {"benchmark": "sweep", "command": " ".join(["python", *sys.argv]), "steps": args.steps,
              "repeats": args.repeats, "settings": args.set, "lrs": lrs, "rows": rows,
              "devices": [str(d) for d in jax.devices()], "jax": jax.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d")}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
