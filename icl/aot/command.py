"""`icl aot [EXPERIMENT] --target T`: the command (see `icl.aot`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from icl.aot.programs import AotReport, compile_experiment, resolve
from icl.aot.targets import TARGETS, parse_target


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def format_report(report: AotReport) -> str:
    """A short table of a report."""
    lines = [
        f"{report.experiment} on {report.target} ({report.n_devices} x {report.device_kind}), {report.dtype}, "
        f"mesh {dict(report.mesh)}; batch {report.batch_size}, eval {report.eval_tasks}, final {report.final_eval_tasks} tasks",
        "per device (flops and bytes: XLA's estimate; the train chunk's loop body, i.e. one step, is counted once):",
        f"{'program':<22}{'compile':>9}{'args':>11}{'output':>11}{'temp':>11}{'code':>11}{'flops':>10}{'bytes':>11}  collectives",
    ]
    for p in report.programs:
        if p.error:
            lines.append(f"{p.name:<22}{p.compile_s:>8.1f}s  FAILED: {p.error}")
            continue
        m = p.memory
        flops = _count(p.cost["flops"]) if p.cost else "n/a"
        traffic = _size(p.cost["bytes_accessed"]) if p.cost else "n/a"
        if p.cost_source == "hlo":
            flops += "*"
        collectives = ", ".join(f"{k} {v}" for k, v in p.collectives.items() if v) or "none"
        if p.cost_source == "hlo" and p.custom_calls:
            collectives += "; library calls (not in flops): " + ", ".join(f"{k} {v}" for k, v in p.custom_calls.items())
        lines.append(
            f"{p.name:<22}{p.compile_s:>8.1f}s{_size(m.get('argument', 0)):>11}{_size(m.get('output', 0)):>11}"
            f"{_size(m.get('temp', 0)):>11}{_size(m.get('generated_code', 0)):>11}{flops:>10}{traffic:>11}  {collectives}"
        )
    if any(p.cost_source == "hlo" for p in report.programs):
        lines.append("* XLA's generic HloCostAnalysis of the optimised module (the GPU compile-only executable has no cost model)")
    return "\n".join(lines)


def cmd_aot(args) -> int:
    import json

    # Host-side work (shapes, the optimal GD lr) runs on the CPU; the targets are compiled for
    # through their topologies. Set before JAX starts its backends; JAX_PLATFORMS=cpu also lets
    # the CUDA plugin register without a CUDA runtime.
    if "JAX_PLATFORMS" not in os.environ:
        import jax
        from jax._src import xla_bridge as xb

        if not xb.backends_are_initialized():
            jax.config.update("jax_platforms", "cpu")
    target = parse_target(args.target)
    config = resolve(args.experiment, args.set, args.dtype)
    programs = tuple(args.programs.split(",")) if args.programs else ("train", "eval", "final")
    unknown = set(programs) - {"train", "eval", "final"}
    if unknown:
        raise ValueError(f"aot: --programs takes train, eval, final; got {', '.join(sorted(unknown))}")
    report = compile_experiment(config, target, programs=programs, keep_going=True)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
        print(f"wrote {args.json}")
    if report.failed:
        print(f"error: {len(report.failed)} program(s) did not compile for {target.name}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `icl aot` on the `icl` command's subparsers."""
    a = subparsers.add_parser("aot", help="compile an experiment for a TPU/GPU target without the hardware (needs .[aot])")
    a.add_argument("experiment", nargs="?", help="experiment (see `icl list`; default paper_1layer), e.g. deep_linear, softmax, "
                   "sine_mlp, classic_tokens (the figures' model families)")
    a.add_argument("--target", required=True, help="; ".join(f"{name}: {t.about}" for name, t in TARGETS.items())
                   + "; also tpu:<version>:<topology> (e.g. tpu:v5e:4x4), gpu:h100:<n>")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. train.data_parallel=0 (split the batch over all the target's devices)")
    a.add_argument("--dtype", choices=("float32", "float64"), help="compile in this dtype (default: the config's train.dtype)")
    a.add_argument("--programs", help="comma-separated subset of train,eval,final (default: all)")
    a.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    a.set_defaults(func=cmd_aot)
    return a


def main(argv=None) -> int:
    """`python -m icl.aot ...` (icl/aot/__main__.py): the same as `icl aot ...`."""
    parser = argparse.ArgumentParser(prog="icl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["aot", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
