"""Training throughput of every model family beside the causal transformer's, side by side.

    python benchmarks/bench_families.py                 # the deep CPU-sized models of icl.experiments.recurrent
    python benchmarks/bench_families.py --part rec      # the one-layer raw-token models
    python benchmarks/bench_families.py --repeats 1

For each model of the chosen part of `icl.experiments.recurrent` (d = 5, T = 21 pairs, batch 64,
causal objective, float32), the bare compiled train chunk (`Trainer.train_chunk`, `--steps` steps
a call, compiled before the clock starts) is timed in one process, the models interleaved round by
round, best of `--repeats`. Prints steps/s and the ratio to the transformer's (GPT-2 in the deep
part, causal linear attention in the one-layer part) and writes benchmarks/families.json (or --out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import jax

from icl import train
from icl.experiments import recurrent

REFERENCE = {"deep": "gpt2", "rec": "la"}


def chunk_timer(config, steps: int):
    """A function returning the seconds of one `steps`-step train chunk (compiled here)."""
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, eval_every=steps))
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    keys = trainer.keys()
    state = {"params": params, "opt": opt_state, "step": 0}
    jax.block_until_ready(trainer.train_chunk(params, opt_state, keys, 0, steps))  # compile

    def once() -> float:
        t0 = time.perf_counter()
        state["params"], state["opt"], _ = trainer.train_chunk(state["params"], state["opt"], keys, state["step"], steps)
        jax.block_until_ready(state["params"])
        state["step"] += steps
        return time.perf_counter() - t0

    return once


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("deep", "rec"), default="deep")
    p.add_argument("--task", default="linear")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).with_name("families.json")))
    args = p.parse_args()
    chosen = {name: config for (part, name, task), config in recurrent.RUNS.items() if part == args.part and task == args.task}
    timers = {name: chunk_timer(config, args.steps) for name, config in chosen.items()}
    best = {name: float("inf") for name in timers}
    for _ in range(args.repeats):
        for name, once in timers.items():
            best[name] = min(best[name], once())
    rates = {name: args.steps / s for name, s in best.items()}
    ref = rates[REFERENCE[args.part]]
    print(f"{'model':<10}{'family':<18}{'steps/s':>10}{'vs ' + REFERENCE[args.part]:>10}")
    for name, rate in rates.items():
        print(f"{name:<10}{chosen[name].model.family:<18}{rate:>10.1f}{rate / ref:>10.2f}")
    record = {
        "command": f"python benchmarks/bench_families.py --part {args.part} --task {args.task} --steps {args.steps} "
                   f"--repeats {args.repeats}",
        "steps_per_s": rates, "ratio_to_reference": {n: r / ref for n, r in rates.items()}, "reference": REFERENCE[args.part],
        "configs": {n: c.to_dict() for n, c in chosen.items()},
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
