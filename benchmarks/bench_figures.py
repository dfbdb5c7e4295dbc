"""Training speed of every figure's config, ours and (optionally) the official code's, side by side.

    python benchmarks/bench_figures.py                           # ours: a table + benchmarks/figures.json
    python benchmarks/bench_figures.py --configs softmax classic_tokens --repeats 7
    python benchmarks/bench_figures.py --vs-official DIR [--official-path SITE_PACKAGES]
    python benchmarks/bench_figures.py --experiments all           # every registered run, full mode
    python benchmarks/bench_figures.py --experiments fig2_depth fig2_L5_sep --chunk 10

`--experiments` (names, study names or "all"; writes benchmarks/experiments.json unless --out): each
registered experiment at its full-mode config (all its seeds, its batch, its dtype), steps/s of
the train chunk, and the training time its full mode projects to (steps / rate; evaluation,
checkpoints and the analysis after training come on top). Their sum is the training time of the
paper's full modes on this machine, each run once.

Ours: the real `Trainer.train_chunk` (sampling, forward, backward and Adam inside one jitted
`lax.scan`), one seed, batch 2048, at the layout a user gets by default (the CPU's cores as
devices, `train.data_parallel="auto"`, `icl.devices`; where that splits the batch, also on one
device), timed over `--chunk` steps after compilation; the rate is the
best of `--repeats` interleaved rounds (the CPU is shared: rows are timed A, B, C, A, B, C, ...).

`--vs-official DIR` also runs the official code (google-research/self-organising-systems, folder
transformers_learn_icl_by_gd; DIR is that folder, the one holding `src/`, or the repository root)
at the same configs in the same process, interleaved with ours, and prints the ratios. Its training
loop is the notebooks' (`constructed_token_setup.ipynb`, `non_linear_regression.ipynb`,
`normal_token_construct.ipynb`): per step, split the key, draw the batch with the vmapped data
creator, then the jitted `update`. Nothing of it is copied: it is imported from DIR, with one shim
for today's JAX (`jnp.DeviceArray`, used in its type annotations, is set to `jax.Array` before the
import). It needs dm-haiku, ml_collections and pytz, e.g. in a scratch environment:

    python3 -m venv --system-site-packages /work/official-venv
    /work/official-venv/bin/pip install dm-haiku ml_collections pytz
    python benchmarks/bench_figures.py --vs-official /tmp/official/transformers_learn_icl_by_gd \\
        --official-path /work/official-venv/lib/python3.11/site-packages

Each row's official settings are the notebook's for that figure (listed in `FIGURES`); where our
config differs (e.g. the classic layout's key size, ours k = D = 24, theirs 20), each side runs
its own figure's config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from icl import devices, experiments
from icl.aot import resolve
from icl.trainer import Trainer, make_mesh


@dataclasses.dataclass(frozen=True)
class Figure:
    """A training config of the paper: ours (an experiment or `icl.aot.VARIANTS` name plus --set
    overrides) and the official notebook's settings (fields of its `src.config.config`)."""

    about: str
    experiment: str
    overrides: tuple[str, ...]
    official: dict[str, Any]
    official_data: str = "create_reg_data"


_LINEAR = dict(  # constructed_token_setup.ipynb, one layer
    local_usage=True, deq=True, gd_deq=True, att_only_trans=True, use_bias=False, include_query=False,
    use_softmax=False, first_layer_sm=False, use_non_lin_mix=False, widening_factor=4, layer_norm=False,
    out_proj=False, in_proj=False, adam=True, dataset_size=10, input_size=10, key_size=11, num_layers=1,
    num_heads=1, grad_clip_value=0.001, lr=0.001, wd=0.0, init_scale=0.002, bs=2048, dampening=1.0, clip=0,
    dropout_rate=0.0, y_update=False, input_range=1, pos_enc=False, analyse=False, emb_size=11,
)

FIGURES: dict[str, Figure] = {
    "paper_1layer": Figure("1 LSA layer (fig. 1)", "paper_1layer", (), _LINEAR),
    "shared2": Figure("2 shared layers (fig. 2)", "paper_1layer", ("model.n_layers=2", "model.shared=true"),
                      {**_LINEAR, "num_layers": 2, "init_scale": 0.002 / 2}),
    "deep_linear": Figure("5 separate layers, clip 10 (fig. 2)", "deep_linear", (),
                          {**_LINEAR, "num_layers": 5, "deq": False, "gd_deq": False, "clip": 10, "lr": 0.0005,
                           "grad_clip_value": 10, "init_scale": 0.002 / 5}),
    "softmax": Figure("1 softmax layer", "softmax", (), {**_LINEAR, "use_softmax": True}),
    "sine_mlp": Figure("sine, MLP embedding (fig. 4)", "sine_mlp", (), {  # non_linear_regression.ipynb
        **_LINEAR, "non_linear_reg_task": True, "size_distract": 0, "input_size": 39, "key_size": 40,
        "grad_clip_value": 100, "input_range": 10, "input_mlp": True, "input_mlp_out_dim": 40, "in_proj": True,
        "emb_size": 40, "sum_norm": False}, "create_reg_data_sin"),
    "classic_tokens": Figure("classic tokens, softmax first layer (fig. 5)", "classic_tokens", (), {  # normal_token_construct.ipynb
        **_LINEAR, "classic_token_const": True, "first_layer_sm": True, "deq": False, "num_layers": 2,
        "grad_clip_value": 10, "init_scale": 0.02 / 2, "gd_deq": True, "pos_enc": True, "pos_enc_size": 10,
        "concat_pos_enc": True, "key_size": 20, "ana_copy": True}, "create_reg_data_classic_token"),
}


def our_config(name: str, batch: int, data_parallel: int | str = "auto"):
    """Our ExperimentConfig of a figure: one seed at the given batch size, laid out as
    `train.data_parallel` says (the default "auto": what a user gets, `icl.devices`)."""
    fig = FIGURES[name]
    return resolve(fig.experiment, [*fig.overrides, "train.n_seeds=1", f"train.batch_size={batch}", f"train.data_parallel={data_parallel}"])


def chunk_runner(config, chunk: int) -> Callable[[], Any]:
    """One call = `chunk` training steps of our Trainer on `config`, blocking."""
    trainer = Trainer(config)
    params, opt_state = trainer.init()
    keys = trainer.keys()
    return lambda: jax.block_until_ready(trainer.train_chunk(params, opt_state, keys, 0, chunk))


def ours(name: str, batch: int, chunk: int, data_parallel: int | str = "auto") -> Callable[[], Any]:
    """`chunk_runner` of a figure's config at one seed and the given batch."""
    return chunk_runner(our_config(name, batch, data_parallel), chunk)


# -- the official code ----------------------------------------------------------------------------
class Official:
    """The official code imported from `src_dir` (the folder holding its `src/` package)."""

    def __init__(self, src_dir: Path, extra_paths=()):
        for path in [*extra_paths, str(src_dir)]:
            if path not in sys.path:
                sys.path.insert(0, path)
        if not hasattr(jnp, "DeviceArray"):
            jnp.DeviceArray = jax.Array  # the one-line fix for today's JAX (its annotations use it)
        try:
            import haiku  # noqa: F401  the official code's dependency: fail here, with the hint
            from src import data, train
            from src.config import config
        except ImportError as error:
            raise SystemExit(f"bench_figures: cannot import the official code from {src_dir}: {error}. It needs "
                             "dm-haiku, ml_collections and pytz (see this file's docstring; --official-path adds "
                             "a site-packages folder to the path).") from error
        self.data, self.train, self.config = data, train, config
        self.defaults = config.to_dict()

    def loop(self, fig: Figure, batch: int, chunk: int) -> Callable[[], Any]:
        """One call = `chunk` steps of the notebooks' training loop at the figure's settings."""
        cfg, train = self.config, self.train
        cfg.update(self.defaults)
        cfg.update({**fig.official, "bs": batch})
        creator = jax.vmap(getattr(self.data, fig.official_data), in_axes=(0, None, None, None, None, None), out_axes=0)
        args = (cfg.input_size, cfg.dataset_size, cfg.size_distract, cfg.input_range, cfg.weight_scale)
        train.data_creator = creator  # what the notebooks' `change_dataloader()` does; `init` draws with it
        optimiser, state, _, rng = train.init()
        rng, data_rng = jax.random.split(rng, 2)
        box = {"state": state, "data_rng": data_rng}

        def run(steps=chunk):
            state, data_rng = box["state"], box["data_rng"]
            for _ in range(steps):
                rng, data_rng = jax.random.split(data_rng, 2)
                batch_data = creator(jax.random.split(rng, num=cfg.bs), *args)
                state, _ = train.update(state, batch_data, optimiser)
            jax.block_until_ready(state.params)
            box["state"], box["data_rng"] = state, data_rng

        # `update` reads the global config when it is traced: compile it now, under these settings
        # (later calls hit the compiled program: the optimiser, a static argument, is this run's own)
        run(2)
        return run


def official_dir(path: Path) -> Path:
    for candidate in (path, path / "transformers_learn_icl_by_gd"):
        if (candidate / "src" / "train.py").exists():
            return candidate
    raise SystemExit(f"bench_figures: no transformers_learn_icl_by_gd/src/train.py under {path}")


# -- timing ---------------------------------------------------------------------------------------
def measure(runs: dict[str, Callable[[], Any]], chunk: int, repeats: int) -> dict[str, dict]:
    """Compile (first call) every run, then time them interleaved: best and median steps/s."""
    out = {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        run()
        run()  # a second warm-up call: anything traced on the first call's outputs
        out[name] = {"compile_s": round(time.perf_counter() - t0, 2), "rates": []}
        print(f"  compiled {name} ({out[name]['compile_s']} s)", flush=True)
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            out[name]["rates"].append(chunk / (time.perf_counter() - t0))
    for entry in out.values():
        rates = sorted(entry.pop("rates"))
        entry["steps_per_s"] = round(rates[-1], 2)
        entry["median_steps_per_s"] = round(rates[len(rates) // 2], 2)
    return out


def experiment_rates(names: list[str], chunk: int, repeats: int) -> list[dict]:
    """Steps/s of each experiment's full-mode train chunk and its projected training minutes."""
    rows = []
    for name in names:
        config = experiments.get(name)
        with jax.enable_x64(config.train.dtype == "float64"):
            timing = measure({name: chunk_runner(config, chunk)}, chunk, repeats)[name]
        rate, compile_s = timing["steps_per_s"], timing["compile_s"]
        cfg = config.train
        rows.append({"experiment": name, "study": experiments.entry(name).study, "steps": cfg.steps, "n_seeds": cfg.n_seeds,
                     "devices": dict(make_mesh(config).shape)["data"],
                     "batch": cfg.batch_size, "dtype": cfg.dtype, "compile_s": round(compile_s, 2),
                     "steps_per_s": round(rate, 2), "train_minutes": round(cfg.steps / rate / 60, 2)})
        print(f"{name:48s} {cfg.n_seeds:2d} x {cfg.batch_size:5d} {rate:8.1f} steps/s  {rows[-1]['train_minutes']:7.2f} min", flush=True)
    return rows


def select_experiments(selection: list[str]) -> list[str]:
    """Experiment names from names, study names or "all"."""
    studies = experiments.studies()
    names: list[str] = []
    for item in selection:
        found = experiments.names() if item == "all" else studies.get(item, [item])
        names += [n for n in found if n not in names]
    for name in names:
        experiments.entry(name)  # a clear error for an unknown name
    return names


def main_experiments(args) -> int:
    names = select_experiments(args.experiments)
    load_before = os.getloadavg()
    rows = experiment_rates(names, args.chunk, args.repeats)
    by_study: dict[str, float] = {}
    for row in rows:
        by_study[row["study"]] = by_study.get(row["study"], 0.0) + row["train_minutes"]
    total = sum(by_study.values())
    print("projected full-mode training minutes by study: " + ", ".join(f"{k} {v:.1f}" for k, v in by_study.items()))
    print(f"total: {total:.1f} min ({len(rows)} experiments; train chunk only, best of {args.repeats} x {args.chunk} steps)")
    out = args.out or Path(__file__).with_name("experiments.json")
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "python": platform.python_version(),
        "jax": jax.__version__, "cpu_count": os.cpu_count(), "load_average": {"before": load_before, "after": os.getloadavg()},
        "chunk": args.chunk, "repeats": args.repeats, "total_train_minutes": round(total, 1),
        "minutes_by_study": {k: round(v, 2) for k, v in by_study.items()}, "rows": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(FIGURES), choices=list(FIGURES))
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vs-official", type=Path, default=None, metavar="DIR")
    parser.add_argument("--official-path", action="append", default=[], metavar="PATH",
                        help="a folder to put on sys.path for the official code's dependencies (repeatable)")
    parser.add_argument("--experiments", nargs="+", metavar="NAME", help="registered experiments, studies or 'all' (see above)")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/figures.json (experiments.json with --experiments)")
    args = parser.parse_args(argv)
    devices.use_cpu_cores()  # as `icl` and the figure scripts do: the defaults a user gets
    if args.experiments:
        return main_experiments(args)
    args.out = args.out or Path(__file__).with_name("figures.json")

    official = Official(official_dir(args.vs_official), args.official_path) if args.vs_official else None
    runs, layout = {}, {}
    for name in args.configs:
        config = our_config(name, args.batch)
        runs[f"ours:{name}"] = chunk_runner(config, args.chunk)
        layout[name] = dict(make_mesh(config).shape)["data"]
        if layout[name] > 1:  # the default splits the batch: time it on one device too
            runs[f"ours_1:{name}"] = ours(name, args.batch, args.chunk, 1)
        if official is not None:
            runs[f"official:{name}"] = official.loop(FIGURES[name], args.batch, args.chunk)
    load_before = os.getloadavg()
    results = measure(runs, args.chunk, args.repeats)
    load_after = os.getloadavg()

    rows = []
    header = f"{'config':16s} {'what':46s} {'dev':>3s} {'ours':>9s}" + (f" {'official':>9s} {'ratio':>7s}" if official else "")
    print(header + "\n" + "-" * len(header))
    for name in args.configs:
        row = {"config": name, "about": FIGURES[name].about, "devices": layout[name], "ours": results[f"ours:{name}"]}
        line = f"{name:16s} {FIGURES[name].about:46s} {layout[name]:3d} {row['ours']['steps_per_s']:9.1f}"
        if layout[name] > 1:
            row["ours_one_device"] = one = results[f"ours_1:{name}"]
            line += f" (1 device: {one['steps_per_s']:.1f})"
            if official is not None:
                row["one_device_ratio"] = round(one["steps_per_s"] / results[f"official:{name}"]["steps_per_s"], 2)
        if official is not None:
            row["official"] = results[f"official:{name}"]
            row["ratio"] = round(row["ours"]["steps_per_s"] / row["official"]["steps_per_s"], 2)
            row["median_ratio"] = round(row["ours"]["median_steps_per_s"] / row["official"]["median_steps_per_s"], 2)
            line += f" {row['official']['steps_per_s']:9.1f} {row['ratio']:6.2f}x"
        rows.append(row)
        print(line)
    print(f"(steps/s: best of {args.repeats} interleaved rounds of {args.chunk} steps, batch {args.batch}, one seed, "
          "ours at its default layout over `dev` CPU devices (train.data_parallel=auto); "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)")
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "python": platform.python_version(), "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(), "load_average": {"before": load_before, "after": load_after},
        "batch": args.batch, "chunk": args.chunk, "repeats": args.repeats, "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
