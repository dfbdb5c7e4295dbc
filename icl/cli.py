"""The `icl` command: parse arguments, call one library function, print a one-screen summary.

    icl train [EXPERIMENT] [--quick] [--set section.field=value ...] [--out DIR]
    icl compare RUN_DIR [--against SPECS (default: the run's compare_against)] [--tasks N]
    icl plot RUN_DIR
    icl list
    icl verify
    icl aot [EXPERIMENT] --target tpu:v5e:2x2|tpu:v4:2x2x1|gpu:h100:4|cpu [--set ...] [--dtype ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np

from icl import devices
from icl.checks import first_line


def _experiment(name: str | None, assignments, quick: bool = False):
    from icl import experiments
    from icl.config import apply_overrides

    config = experiments.get(name or experiments.DEFAULT, mode="quick" if quick else "full")
    return apply_overrides(config, assignments)


def default_run_dir(config) -> Path:
    """runs/<experiment>-<hash of the config without the fields a finished run may change>
    (`rundir.naming_config`: no train.steps, compare_against and train.final_eval_tasks at their
    defaults): the same command resumes, also with more steps or another table."""
    from icl import rundir

    data = rundir.naming_config(config)
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / f"{config.name}-{digest}"


def _mean_spread(values) -> str:
    values = np.atleast_1d(np.asarray(values, dtype=float))
    return f"{values.mean():#.4g}" + (f" ± {values.std():.2g}" if len(values) > 1 else "")


def _sweep_groups(columns) -> list[tuple[str, list[int]]]:
    """A sweep's columns grouped by value: [(label "optim.lr=0.001", [column, ...]), ...]."""
    groups: dict[str, list[int]] = {}
    for c, info in enumerate(columns):
        groups.setdefault(", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in info.items() if k != "seed"), []).append(c)
    return list(groups.items())


def format_table(summary: dict, columns: list[dict] | None = None) -> str:
    """The comparison table of a summary (or of `icl compare`'s result). With a sweep's `columns`
    (`train.columns`), the model's numbers are given per value, over its seeds."""
    groups = _sweep_groups(columns) if columns else [("", list(range(len(summary["model"]["loss"]))))]
    pick = lambda values, cols: np.asarray(values, dtype=float)[cols]
    lines = [
        f"held-out tasks: {summary['n_tasks']}   zero predictor loss: {summary['zero_loss']:.4f}",
        f"{'learner':<22}{'loss':>18}{'preds_diff':>18}{'model_cos':>18}{'model_diff':>18}",
    ]
    for label, cols in groups:
        lines.append(f"{('trained model ' + label).strip():<22}{_mean_spread(pick(summary['model']['loss'], cols)):>18}")
    for name, row in summary["solvers"].items():
        label = name + (f" (lr={row['hparams']['lr']:.3f})" if "lr" in row["hparams"] else "")
        metrics = lambda cols, row=row: "".join(
            f"{_mean_spread(pick(row[k], cols)):>18}" for k in ("preds_diff", "model_cos", "model_diff"))
        if not columns:
            lines.append(f"{label:<22}{row['loss']:>#18.4g}" + metrics(groups[0][1]))
            continue
        lines.append(f"{label:<22}{row['loss']:>#18.4g}")
        lines.extend(f"{'  vs model ' + group:<22}{'':>18}" + metrics(cols) for group, cols in groups)
    lines.append("(preds_diff, model_cos, model_diff: trained model vs that learner)")
    return "\n".join(lines)


def cmd_train(args) -> int:
    from icl import distributed, plots, train

    if args.distributed or os.environ.get("ICL_DISTRIBUTED") == "1":
        distributed.initialize()  # JAX_COORDINATOR_ADDRESS / _NUM_PROCESSES / _PROCESS_ID, SLURM, TPU pod
    say = print if distributed.is_main() else (lambda *a, **k: None)  # one process prints
    config = _experiment(args.experiment, args.set, args.quick)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    say(f"experiment {config.name} -> {run_dir}")
    try:
        summary = train.train(config, run_dir, until_step=args.until_step, progress=not args.no_progress, echo=say)
    except train.TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    if "stopped_at" in summary:
        say(f"stopped at step {summary['stopped_at']}; run the same command again to resume")
        return 0
    if not distributed.is_main():
        return 0
    figure = plots.plot_run(run_dir)
    print(format_table(summary, summary.get("columns")))
    rate = summary["train_steps_per_s"]
    print(f"steps {summary['steps']}  wall {summary['wall_s']:.1f} s  ({rate} steps/s after compilation)")
    print(f"wrote {run_dir / 'summary.json'} and {figure}")
    return 0


def cmd_compare(args) -> int:
    from icl import precision, pretrained, solvers, train

    config, params, step = train.load_params(pretrained.resolve(args.run_dir))
    against = solvers.split_specs(args.against) if args.against else config.compare_against  # default: the run's own
    with precision.at_dtype(config.train.dtype):  # a float64 run is compared in float64
        train.check_solvers(config, against, field="--against")  # a bad spec: one line, as `icl train` says it
        table = train.final_table(config, params, against, args.tasks)
    table["step"] = step
    out_dir = pretrained.output_dir(args.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "compare.json"
    out.write_text(json.dumps(table, indent=2))
    print(f"{args.run_dir} at step {step}")
    print(format_table(table, train.columns(config) if config.train.sweep else None))
    print(f"wrote {out}")
    return 0


def cmd_plot(args) -> int:
    from icl import plots, pretrained

    out_dir = pretrained.output_dir(args.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"wrote {plots.plot_run(pretrained.resolve(args.run_dir), out_dir / 'figure.png')}")
    return 0


def cmd_list(_args) -> int:
    from icl import experiments, models, solvers, tasks
    from icl.tasks.base import default_baselines

    print("experiments (icl train NAME [--quick]), by study:")
    for study, names in experiments.studies().items():
        print(f"  {study}: " + ", ".join(f"{n}{' (default)' if n == experiments.DEFAULT else ''}" for n in names))
    print("task families (and the baselines that apply; * = compared by default with its default parameters):")
    for name in tasks.names():
        family = tasks.family(name)
        try:
            defaults = set(default_baselines(family()))
        except (TypeError, ValueError):  # a family without usable defaults: mark nothing
            defaults = set()
        marked = [b + ("*" if b in defaults else "") for b in getattr(family, "baselines", ())]
        print(f"  {name:<24}" + (", ".join(marked) or "(no baselines declared)"))
    print("model families (--set model=NAME; objectives):")
    for name in models.names():
        family = models.family(name)
        fields = ", ".join(f.name for f in dataclasses.fields(family))
        print(f"  {name:<24}objectives {'/'.join(family().objectives())}; model.<field>: {fields}")
    print("solvers:      " + ", ".join(solvers.names()))
    print("feature maps: " + ", ".join(solvers.features.names()) + "  (any solver on phi(x): 'least_squares(features=square)')")
    return 0


def cmd_verify(args) -> int:
    from icl.verify import construction_errors, family_construction_errors

    rows = construction_errors(max_layers=args.layers)
    print(f"LSA constructions vs explicit solvers, float64, 1,000 tasks (d=10, N=10, lr={rows[0]['lr']:.4f})")
    print(f"{'layers':>6}{'max|GD model - GD|':>22}{'max|GD++ model - GD++|':>26}")
    for row in rows:
        print(f"{row['layers']:>6}{row['gd_max_abs_err']:>22.2e}{row['gd_plus_plus_max_abs_err']:>26.2e}")
    print("causal (every prefix of [context, query], T = 11): 1 layer vs one GD step on each prefix, "
          f"max|causal model - GD| = {rows[0]['causal_gd_max_abs_err']:.2e}")
    print("causal, K layers vs causal_prefix_gd (icl.verify; not K GD steps per prefix for K > 1):  "
          + "  ".join(f"K={r['layers']} {r['causal_max_abs_err']:.2e}" for r in rows))
    families = family_construction_errors()
    print("recurrent families, float64, every prefix of [context, query] (T = 11), construction vs learner:")
    for name, err in families.items():
        print(f"  {name.removesuffix('_max_abs_err').replace('_', ' '):<48}{err:.2e}")
    worst = max(max(r["gd_max_abs_err"], r["gd_plus_plus_max_abs_err"], r["causal_max_abs_err"],
                    r.get("causal_gd_max_abs_err", 0.0)) for r in rows)
    worst = max([worst, *families.values()])
    print("OK: equal to float64 precision" if worst <= 1e-10 else "FAILED: constructions differ from the solvers")
    return 0 if worst <= 1e-10 else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="icl", description="Transformers learn in-context by gradient descent: train, compare, verify.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an experiment (default: paper_1layer) and compare it with GD")
    t.add_argument("experiment", nargs="?", help="experiment name (see `icl list`)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. model.n_layers=2, train.steps=1000, task=sine")
    t.add_argument("--quick", action="store_true", help="the experiment's quick profile (minutes on a 2-core CPU)")
    t.add_argument("--out", help="run directory (default runs/<experiment>-<config hash>)")
    t.add_argument("--until-step", type=_positive_int, help="stop at this step with a checkpoint (resume later)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() first (or set ICL_DISTRIBUTED=1)")
    t.set_defaults(func=cmd_train)
    c = sub.add_parser("compare", help="compare a trained run with solvers on held-out tasks")
    c.add_argument("run_dir")
    c.add_argument("--against", default=None, help="comma-separated solver specs (see `icl list`), e.g. "
                   "'gd,ridge(lam=0.1),least_squares(features=square)'; default: the run's compare_against "
                   "(its task family's baselines unless the run set others)")
    c.add_argument("--tasks", type=_positive_int, default=10000, help="number of held-out tasks")
    c.set_defaults(func=cmd_compare)
    pl = sub.add_parser("plot", help="redraw a run's figure from its log")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)
    sub.add_parser("list", help="experiments, task families and solvers").set_defaults(func=cmd_list)
    from icl import aot  # imports only the standard library at module level

    aot.add_parser(sub)
    v = sub.add_parser("verify", help="check the GD / GD++ constructions against the solvers in float64")
    v.add_argument("--layers", type=int, default=5)
    v.set_defaults(func=cmd_verify)
    return p


def _closed_loop(value) -> bool:
    return isinstance(value, RuntimeError) and "Event loop is closed" in str(value)


def _quiet_closed_loop_traces() -> None:
    """Drop RuntimeError("Event loop is closed") from every hook that reports stray errors, and
    pass on the rest. After a failed checkpoint save (a full disk) tensorstore's writer threads can
    hit asyncio's closed loop while the main thread is still unwinding the failure it then reports
    in one line; callbacks from C report through `sys.unraisablehook` or, via PyErr_Print,
    `sys.excepthook`, Python threads through `threading.excepthook`. Closing the checkpoint manager
    after the failed save makes these traces rare, not impossible, so they are filtered here."""
    unraisable, uncaught, thread = sys.unraisablehook, sys.excepthook, threading.excepthook
    sys.unraisablehook = lambda args: None if _closed_loop(args.exc_value) else unraisable(args)
    sys.excepthook = lambda kind, value, tb: None if _closed_loop(value) else uncaught(kind, value, tb)
    threading.excepthook = lambda args: None if _closed_loop(args.exc_value) else thread(args)


def main(argv=None) -> int:
    """Exit codes: 0 done (or stopped with a checkpoint at --until-step), 2 bad input or a file
    system / memory error (one line on stderr), 3 training diverged, 130 interrupted (Ctrl-C, after
    checkpointing), 143 SIGTERM (after checkpointing)."""
    args = parser().parse_args(argv)
    for name in ("absl", "asyncio"):  # orbax's background threads log tracebacks there; we say it in one line
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _quiet_closed_loop_traces()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # full disk, read-only file system, permissions
        threading.excepthook = lambda _args: None  # orbax's threads of the failed save: already said here
        sys.unraisablehook = lambda _args: None
        print(f"error: {first_line(error)} (the run directory keeps its last complete checkpoint)", file=sys.stderr)
        sys.stderr.flush()
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  the line above is the last word: threads still unwinding stay quiet
        return 2
    except MemoryError:
        print("error: out of host memory; lower train.batch_size, train.eval_tasks or train.n_seeds", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # XLA's out-of-memory is a RuntimeError subclass
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        print(f"error: out of device memory ({first_line(error)[:200]}); lower train.batch_size, train.eval_tasks "
              "or train.n_seeds, or add devices (train.data_parallel)", file=sys.stderr)
        return 2


def entry() -> int:
    """The `icl` command (and `python -m icl`): `main` in a process of its own, which first makes
    each CPU core a JAX device (`icl.devices.use_cpu_cores`, for `train.data_parallel="auto"`).
    `main` itself, called from Python, leaves the caller's devices as they are."""
    devices.use_cpu_cores()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
