"""Training and solver throughput on this machine, next to a minimal hand-written step.

    python benchmarks/bench_train.py            # the full table (a few minutes on 2 cores)
    python benchmarks/bench_train.py --quick    # a smoke run with small sizes

Prints a table and writes benchmarks/results.json (or --out). Every training figure is measured in
the same process as a minimal pure-jnp implementation of the same step (same task sampling, same
linear-attention math, same optax optimiser, no Flax), so `ratio` is the cost of our abstractions.
Rates are the best of `--repeats` timed chunks after compilation. FLOPs come from XLA's cost
analysis of one step; the machine's rate from a large float32 matmul.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from icl import experiments, solvers, train
from icl.config import apply_overrides
from icl.tasks import rng


def best_rate(fn, *args, n_items: int, repeats: int) -> tuple[float, float]:
    """(compile seconds, best items per second) of `fn(*args)`, blocking on the result."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = max(best, n_items / (time.perf_counter() - t0))
    return compile_s, best


def matmul_flops(repeats: int) -> float:
    """The machine's float32 matmul rate (FLOP/s) on a 2048 x 2048 product."""
    n = 2048
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    _, rate = best_rate(f, a, n_items=1, repeats=repeats)
    return 2 * n**3 * rate


def step_flops(jitted, *args) -> float:
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


# -- the minimal hand-written step -------------------------------------------------------------
def minimal_chunk(config, n_steps: int):
    """The same training chunk as `train.Trainer` in plain jnp: linear 1-head LSA layers with
    weights q, k, v, o [D, D], tokens [x, y] / [x_q, 0] evaluated in Gram space, the same sampler
    and optimiser."""
    task, cfg = config.task, config.train
    n_layers, shared = config.model.n_layers, config.model.shared
    optimizer = train.build_optimizer(config.optim, cfg.steps)

    def forward(p, batch):  # Gram-space recursion, as icl.models.gram (C once, then D x D maps)
        ctx = jnp.concatenate([batch.x_ctx, batch.y_ctx[..., None]], -1)
        queries = jnp.concatenate([batch.x_query, jnp.zeros_like(batch.y_query)[..., None]], -1)
        gram = jnp.einsum("bnd,bne->bde", ctx, ctx)
        for layer in range(n_layers):
            w = jax.tree.map(lambda a, layer=layer: a[0 if shared else layer], p)
            a, b = w["q"] @ w["k"].T, w["v"] @ w["o"]  # [D, D]
            if layer < n_layers - 1:
                m = jnp.eye(a.shape[0]) + jnp.einsum("de,bef,fg->bdg", a, gram, b)
                queries, gram = queries @ m, jnp.swapaxes(m, 1, 2) @ gram @ m
            else:
                queries = queries + jnp.einsum("bmd,de,bef,fg->bmg", queries, a, gram, b)
        return -queries[:, :, -1]

    def loss(p, batch):
        return 0.5 * jnp.mean((forward(p, batch) - batch.y_query) ** 2)

    def step(p, s, key, t):
        batch = task.sample(jax.random.fold_in(key, t), cfg.batch_size)
        value, grads = jax.value_and_grad(loss)(p, batch)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    def chunk(p, s, keys, start):
        def body(carry, t):
            p, s, value = jax.vmap(step, in_axes=(0, 0, 0, None))(*carry, keys, t)
            return (p, s), value

        return jax.lax.scan(body, (p, s), start + jnp.arange(n_steps))

    d_tok = task.d + 1
    n_sets = 1 if shared else n_layers
    init = lambda key: {n: 0.02 * jax.random.normal(jax.random.fold_in(key, i), (n_sets, d_tok, d_tok)) for i, n in enumerate("qkvo")}
    seeds = jax.random.split(jax.random.key(0), cfg.n_seeds)
    params = jax.vmap(init)(seeds)
    return jax.jit(chunk), (params, jax.vmap(optimizer.init)(params), train.data_keys(config), jnp.int32(0))


def ours_chunk(config, n_steps: int):
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    return jax.jit(trainer._train_chunk, static_argnums=3), (params, opt_state, trainer.keys(), n_steps, jnp.int32(0))


def configure(layers: int, shared: bool, n_seeds: int = 1, batch: int = 2048, **extra):
    sets = [f"model.n_layers={layers}", f"model.shared={shared}", f"train.n_seeds={n_seeds}", f"train.batch_size={batch}"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return apply_overrides(experiments.get("paper_1layer"), sets)


def bench_training(args, machine_flops: float) -> list[dict]:
    rows = []
    for layers in args.layers:
        for shared in (False, True):
            if shared and layers == 1:
                continue
            config = configure(layers, shared, batch=args.batch)
            row = {"layers": layers, "shared": shared, "batch": args.batch}
            for name, build in (("ours", ours_chunk), ("minimal", minimal_chunk)):
                fn, fn_args = build(config, args.steps)
                compile_s, rate = best_rate(fn, *fn_args, n_items=args.steps, repeats=args.repeats)
                one_fn, one_args = build(config, 1)
                flops = step_flops(one_fn, *one_args)
                row[name] = {
                    "steps_per_s": round(rate, 1), "tasks_per_s": round(rate * args.batch),
                    "compile_s": round(compile_s, 2), "gflop_per_step": round(flops / 1e9, 4),
                    "gflop_per_s": round(flops * rate / 1e9, 2),
                }
            row["ratio"] = round(row["minimal"]["steps_per_s"] / row["ours"]["steps_per_s"], 3)
            row["fraction_of_matmul_peak"] = round(row["ours"]["gflop_per_s"] * 1e9 / machine_flops, 4)
            rows.append(row)
            print(f"L={layers} shared={shared}: ours {row['ours']['steps_per_s']} steps/s, "
                  f"minimal {row['minimal']['steps_per_s']} steps/s, ratio {row['ratio']}", flush=True)
    return rows


def bench_sampling(args) -> dict:
    """Batches of paper_1layer tasks per second from each `train.sampler` (`icl.tasks.rng`)."""
    task = experiments.get("paper_1layer").task

    def chunk(key):
        def body(c, t):
            batch = task.sample(jax.random.fold_in(key, t), args.batch)
            return c + batch.y_query.sum(), None
        return jax.lax.scan(body, 0.0, jnp.arange(args.steps))[0]

    out = {}
    for sampler in rng.SAMPLERS:
        _, rate = best_rate(jax.jit(chunk), rng.key(0, sampler), n_items=args.steps, repeats=args.repeats)
        out[sampler] = {"batches_per_s": round(rate, 1), "ms_per_batch": round(1e3 / rate, 3)}
    return out


def bench_seeds(args) -> list[dict]:
    rows = []
    for batch in (args.batch, args.batch // 8):
        base = None
        # every seed in one vmap, then (train.seed_group) groups of 4 seeds run one after another
        variants = [(n, 0) for n in args.seeds] + [(n, 4) for n in args.seeds if n > 4]
        for n_seeds, group in variants:
            fn, fn_args = ours_chunk(configure(1, False, n_seeds=n_seeds, batch=batch, **{"train.seed_group": group}), args.steps)
            _, rate = best_rate(fn, *fn_args, n_items=args.steps, repeats=args.repeats)
            base = base or rate
            rows.append({"batch_per_seed": batch, "n_seeds": n_seeds, "seed_group": group, "steps_per_s": round(rate, 1),
                         "seed_steps_per_s": round(rate * n_seeds, 1), "speedup_vs_sequential": round(rate * n_seeds / base, 3)})
            print(f"seeds={n_seeds} group={group or n_seeds} batch/seed={batch}: {rows[-1]['seed_steps_per_s']} seed-steps/s "
                  f"({rows[-1]['speedup_vs_sequential']}x sequential)", flush=True)
    return rows


def bench_solvers(args) -> dict:
    task = experiments.get("paper_1layer").task
    batch = task.sample(jax.random.key(0), args.solver_tasks)
    lr = solvers.optimal_gd_lr(task, jax.random.key(1))
    fns = {
        "gd_1step": lambda b: solvers.gd(b.x_ctx, b.y_ctx, b.x_query, lr=lr),
        "gd_10steps": lambda b: solvers.gd(b.x_ctx, b.y_ctx, b.x_query, lr=lr, steps=10),
        "least_squares": lambda b: solvers.least_squares(b.x_ctx, b.y_ctx, b.x_query),
        "ridge": lambda b: solvers.ridge(b.x_ctx, b.y_ctx, b.x_query, 0.1),
        "newton_10": lambda b: solvers.newton(b.x_ctx, b.y_ctx, b.x_query, steps=10),
        "least_squares_all_prefixes": lambda b: solvers.prefix_predictions(solvers.least_squares, b.x_ctx, b.y_ctx, b.x_query),
    }
    out = {}
    for name, fn in fns.items():
        _, rate = best_rate(jax.jit(fn), batch, n_items=args.solver_tasks, repeats=args.repeats)
        out[name] = {"tasks_per_s": round(rate)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    if args.quick:
        args.layers, args.seeds, args.batch, args.steps, args.repeats, args.solver_tasks = [1, 2], [1, 4], 256, 20, 2, 2000
        if args.out == Path(__file__).with_name("results.json"):
            args.out = Path(__file__).with_name("results_quick.json")
    else:
        args.layers, args.seeds, args.batch, args.steps, args.repeats, args.solver_tasks = [1, 2, 4, 8], [1, 4, 16], 2048, 100, 5, 10000
    machine = matmul_flops(args.repeats)
    print(f"devices {jax.devices()}; float32 matmul {machine / 1e9:.0f} GFLOP/s", flush=True)
    results = {
        "command": "python benchmarks/bench_train.py" + (" --quick" if args.quick else ""),
        "devices": [str(d) for d in jax.devices()], "python": platform.python_version(), "jax": jax.__version__,
        "machine_matmul_gflop_per_s": round(machine / 1e9, 1),
        "training": bench_training(args, machine),
        "sampling": bench_sampling(args),
        "seeds": bench_seeds(args),
        "solvers": bench_solvers(args),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("sampling", "solvers", "peak_rss_mb")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
