"""A/B microbenchmark: formulations of a deep pure linear LSA stack's train step on this machine.

    python benchmarks/bench_depth_paths.py                  # L = 1, 2, 4, 8, separate and shared
    python benchmarks/bench_depth_paths.py --quick          # a smoke run (small batch, L = 1, 2)
    python benchmarks/bench_depth_paths.py --layers 8 --variants maps tokens

Every variant is one full training step of the paper_1layer setup (d = 10, N = 10, D = 11, batch
2048, float32, the same on-device task sampler and optax Adam as `icl.train`), scanned over
`--steps` steps inside one jitted call; only the forward formulation differs. With A_h = W_q^h
(W_k^h)^T, B_h = W_v^h W_o^h [D, D] and the context Gram matrix C = sum_{i<=N} e_i^T e_i:

  maps     the Gram recursion: M = I + sum_h A_h C B_h, C <- M^T C M, q <- q M (icl.models.gram);
  tokens   token space with the products: E <- E + sum_h ((E A_h) C) B_h, C recomputed per layer;
  qkv      token space as `AttentionLayer` computes it: q, k, v projections, memory sum_i v_i k_i^T;
  lib_*    `icl.models.gram.stack_predictions` with method tokens / maps / auto (what ships);
  model    the library's own step (`icl.train.Trainer`), whatever path it picks;
  minimal  `benchmarks/bench_train.py`'s hand-written step (its Gram recursion, no Flax).

The CPU is shared, so absolute rates are noisy: variants are timed **interleaved** (A, B, C, A, B,
C, ... for `--rounds` rounds) in one process; each row reports, per variant, the median wall-clock
steps/s, the median CPU milliseconds per step (all threads; steadier than the wall clock when other
processes share the cores), and both as median per-round ratios to the first variant. Writes benchmarks/depth_paths.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from icl import experiments, train
from icl.config import apply_overrides
from icl.models import gram

try:  # run as a script (python benchmarks/bench_depth_paths.py): its folder is on the path
    import bench_train
except ImportError:  # imported as benchmarks.bench_depth_paths
    from benchmarks import bench_train


# -- forward formulations: params {q, k, v, o} [S, H, D, k] (S = 1 shared or L sets) -> y_hat [B, M]
def _tokens(x_ctx, y_ctx, x_query):
    ctx = jnp.concatenate([x_ctx, y_ctx[..., None]], -1)  # [B, N, D]
    queries = jnp.concatenate([x_query, jnp.zeros(x_query.shape[:-1] + (1,), x_query.dtype)], -1)  # [B, M, D]
    return ctx, queries


def _products(p, layer, shared):
    w = jax.tree.map(lambda a: a[0 if shared else layer], p)
    return jnp.einsum("hdk,hek->hde", w["q"], w["k"]), jnp.einsum("hdk,hke->hde", w["v"], w["o"])  # [H, D, D] x 2


def forward_maps(p, batch, n_layers, shared):
    ctx, queries = _tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
    c = jnp.einsum("bnd,bne->bde", ctx, ctx)  # [B, D, D]
    for i in range(n_layers):
        a, b = _products(p, i, shared)
        if i + 1 < n_layers:
            m = jnp.eye(c.shape[-1], dtype=c.dtype)[None] + jnp.einsum("hde,bef,hfg->bdg", a, c, b)
            queries, c = queries @ m, jnp.swapaxes(m, 1, 2) @ c @ m
        else:
            queries = queries + jnp.einsum("bhme,bef,hfg->bmg", jnp.einsum("bmd,hde->bhme", queries, a), c, b)
    return -queries[..., -1]


def forward_tokens(p, batch, n_layers, shared):
    ctx, queries = _tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
    n = ctx.shape[1]
    e = jnp.concatenate([ctx, queries], 1)  # [B, T, D]
    for i in range(n_layers):
        a, b = _products(p, i, shared)
        if i + 1 < n_layers:
            c = jnp.einsum("bnd,bne->bde", e[:, :n], e[:, :n])
            ea = jnp.einsum("btd,hde->bhte", e, a)  # [B, H, T, D]
            e = e + jnp.einsum("bhte,bef,hfg->btg", ea, c, b)
        else:
            c = jnp.einsum("bnd,bne->bde", e[:, :n], e[:, :n])
            q = e[:, n:]
            e = q + jnp.einsum("bhme,bef,hfg->bmg", jnp.einsum("bmd,hde->bhme", q, a), c, b)
    return -e[..., -1]


def forward_qkv(p, batch, n_layers, shared):
    ctx, queries = _tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
    n = ctx.shape[1]
    e = jnp.concatenate([ctx, queries], 1)  # [B, T, D]
    for i in range(n_layers):
        w = jax.tree.map(lambda a, i=i: a[0 if shared else i], p)
        src = e if i + 1 < n_layers else e[:, n:]
        q = jnp.einsum("btD,hDk->bhtk", src, w["q"])
        k = jnp.einsum("bnD,hDk->bhnk", e[:, :n], w["k"])
        v = jnp.einsum("bnD,hDk->bhnk", e[:, :n], w["v"])
        mem = jnp.einsum("bhnv,bhnk->bhvk", v, k)
        e = src + jnp.einsum("bhtv,hvD->btD", jnp.einsum("bhvk,bhtk->bhtv", mem, q), w["o"])
    return -e[..., -1]


def forward_library(method):
    """The shipped `icl.models.gram` implementation with a fixed `method` (see its docstring)."""

    def forward(p, batch, n_layers, shared):
        ctx, queries = _tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
        weights = [gram.products(*(p[n][0 if shared else i] for n in "qkvo")) for i in range(n_layers)]
        return gram.stack_predictions(weights, ctx, queries, method)[-1]

    return forward


FORWARDS = {"maps": forward_maps, "tokens": forward_tokens, "qkv": forward_qkv}
for _method in (*gram.METHODS, "auto"):
    FORWARDS[f"lib_{_method}"] = forward_library(_method)


def configure(layers: int, shared: bool, batch: int, n_ctx: int = 10):
    sets = [f"model.n_layers={layers}", f"model.shared={shared}", f"train.batch_size={batch}", f"task.n_ctx={n_ctx}"]
    return apply_overrides(experiments.get("paper_1layer"), sets)


def variant_chunk(config, forward, n_steps: int):
    """(jitted chunk, args): n_steps Adam steps of one seed, the library's sampler and optimiser."""
    task, cfg, layers, shared = config.task, config.train, config.model.n_layers, config.model.shared
    optimizer = train.build_optimizer(config.optim, cfg.steps)

    def loss(p, batch):
        return 0.5 * jnp.mean((forward(p, batch, layers, shared) - batch.y_query) ** 2)

    def chunk(p, s, key, start):
        def body(carry, t):
            p, s = carry
            value, grads = jax.value_and_grad(loss)(p, task.sample(jax.random.fold_in(key, t), cfg.batch_size))
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        return jax.lax.scan(body, (p, s), start + jnp.arange(n_steps))

    model = train.init_params(config, 0)["layers"]
    p = {n: jnp.stack([model[i][n] for i in sorted(model)]) for n in ("query", "key", "value", "out")}
    p = dict(zip("qkvo", p.values(), strict=True))  # [S, H, D, k]
    return jax.jit(chunk), (p, optimizer.init(p), train.data_keys(config)[0], jnp.int32(0))


def model_chunk(config, n_steps: int):
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    fn = jax.jit(trainer._train_chunk, static_argnums=3)
    return (lambda *a: fn(a[0], a[1], a[2], n_steps, a[3])), (params, opt_state, trainer.keys(), jnp.int32(0))


def minimal_chunk(config, n_steps: int):
    fn, args = bench_train.minimal_chunk(config, n_steps)
    return fn, args


SPECIAL = {"model": model_chunk, "minimal": minimal_chunk}


def interleaved(fns: dict, n_steps: int, rounds: int) -> dict:
    """Median rates of each (fn, args), timed round-robin after one compile call each.

    Reports wall-clock steps/s and the process's CPU time per step (all threads): on a shared
    machine the CPU time is the steadier measure of the work a variant needs, the wall clock
    what a user waits. Ratios are medians of the per-round ratios to the first variant.
    """
    for fn, args in fns.values():
        jax.block_until_ready(fn(*args))
    wall, cpu = ({name: [] for name in fns} for _ in range(2))
    for _ in range(rounds):
        for name, (fn, args) in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[name].append(n_steps / (time.perf_counter() - t0))
            cpu[name].append(1e3 * (time.process_time() - c0) / n_steps)
    first = next(iter(wall))
    ratio = lambda r, base: round(statistics.median([x / y for x, y in zip(r, base, strict=True)]), 3)
    return {
        name: {"steps_per_s": round(statistics.median(wall[name]), 1), "wall_ratio": ratio(wall[name], wall[first]),
               "cpu_ms_per_step": round(statistics.median(cpu[name]), 2), "cpu_speedup": ratio(cpu[first], cpu[name])}
        for name in fns
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--shared", choices=["both", "separate", "shared"], default="both")
    parser.add_argument("--variants", nargs="+", default=["lib_maps", "lib_tokens", "model", "minimal"], choices=[*FORWARDS, *SPECIAL])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--n-ctx", type=int, nargs="+", default=[10], help="context lengths N (the path rule's crossover)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("depth_paths.json"))
    args = parser.parse_args()
    if args.quick:
        args.layers, args.batch, args.steps, args.rounds = [1, 2], 128, 5, 3
        if args.out == Path(__file__).with_name("depth_paths.json"):
            args.out = Path(__file__).with_name("depth_paths_quick.json")
    rows = []
    for n_ctx in args.n_ctx:
        for layers in args.layers:
            for shared in {"both": (False, True), "separate": (False,), "shared": (True,)}[args.shared]:
                if shared and layers == 1:
                    continue
                config = configure(layers, shared, args.batch, n_ctx)
                fns = {v: SPECIAL[v](config, args.steps) if v in SPECIAL else variant_chunk(config, FORWARDS[v], args.steps)
                       for v in args.variants}
                row = {"n_ctx": n_ctx, "layers": layers, "shared": shared, "batch": args.batch,
                       "auto_method": gram.choose_method(n_ctx, config.task.n_query, config.task.d + 1, layers),
                       **interleaved(fns, args.steps, args.rounds)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/bench_depth_paths.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
        if k not in ("out", "quick")),
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
