"""`icl aot`: compile an experiment for a hardware target without the hardware.

    icl aot [EXPERIMENT] --target tpu:v5e:2x2 [--set section.field=value ...] [--dtype float64]

JAX compiles for TPUs and GPUs that are not attached ("deviceless" / ahead-of-time compilation):
`jax.experimental.topologies.get_topology_desc` describes the target's devices, the experiment's
programs are lowered with abstract inputs (`jax.ShapeDtypeStruct`s carrying `NamedSharding`s on
the target's mesh, shapes from `jax.eval_shape`: nothing is allocated for the target) and XLA's
compiler for that target compiles them. Compiled, per device (every device of the mesh runs the
same SPMD program):

  train       the jitted train chunk `Trainer._chunk` (eval_every steps of sampling, forward,
              backward and the optimiser, vmapped over seeds, batch split over the `data` axis)
  eval        `Trainer._eval`, the evaluation during training (model vs one GD step)
  final:NAME  the final table's `compare.compare` of the model vs each solver of
              `compare_against`, on `final_eval_tasks` held-out tasks

and for each: XLA's memory (arguments, outputs, temporaries, generated code), its cost estimate
(flops, bytes accessed) and the collectives in the compiled HLO (static count of all-reduce,
all-gather, reduce-scatter, collective-permute, all-to-all instructions).

Targets (`TARGETS`; `parse_target` also reads any `tpu:<version>:<topology>` libtpu knows and
`gpu:h100:<n>`): TPU descriptions come from libtpu, GPU ones from the PJRT CUDA plugin with the
device description in `icl/aot_targets/` (H100 SXM5: `h100.txtpb`), its PTX assembled by the
`ptxas` of the `nvidia-cuda-nvcc-cu12` wheel. Both need the extra: `pip install -e '.[aot]'`.
`cpu` compiles for this machine's CPU devices (no extra needed).

Notes:
  * The data-parallel layout is the config's: `train.data_parallel=1` (the default) uses one
    device of the target; `--set train.data_parallel=0` splits the batch over all of them.
  * The XLA:GPU compile-only executable has no cost analysis; for GPU targets the cost is XLA's
    generic `HloCostAnalysis` of the optimised per-device GPU module (`cost_source` says which),
    which counts fused dots but not library calls (custom calls such as cuSOLVER's SVD; their
    count is reported).
  * XLA's cost analysis counts a loop body once: the train chunk's flops and bytes are those of
    about one step, not of its `eval_every` steps.
  * XLA:GPU reports no generated-code size (0); TPU and CPU do.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from icl.checks import first_line

EXTRA_HINT = "pip install -e '.[aot]'"
TARGET_DIR = Path(__file__).parent / "aot_targets"

# Named config variants (experiment, --set overrides) that `icl aot NAME` accepts besides the
# experiments: the model families the paper's figures train.
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Figure 2's deep linear stack: 5 layers, activations clipped at 10 (the official recipe).
    "deep_linear": ("paper_1layer", ("model.n_layers=5", "model.clip_activations=10")),
    # Softmax instead of linear attention (the token path, no fast Gram form).
    "softmax": ("paper_1layer", ("model.attention=softmax",)),
    # Figure 4 (paper_figures/fig4_sine.py): sine regression, 2-layer GELU MLP embedding
    # x -> 40 features (hidden 160), one linear attention layer, compared with kernel ridge and GD.
    "sine_mlp": ("paper_1layer", (
        "task=sine", "task.n_ctx=10", "task.amplitude_range=[0.1,0.5]", "task.phase_range=[0.0,3.141592653589793]",
        "task.input_range=5.0", "model.embed_dim=40", "model.embed_hidden=160", "model.init_scale=0.02",
        "compare_against=kernel_ridge,gd",
    )),
    # Figure 5 (paper_figures/fig5_classic_tokens.py): x_i and y_i in separate tokens, a softmax
    # first layer and a linear second layer.
    "classic_tokens": ("paper_1layer", (
        "model.n_layers=2", "model.first_layer_softmax=true", "model.token_layout=separate",
        "model.n_positions=10", "model.init_scale=0.2", "compare_against=gd,least_squares",
    )),
}

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")
# An HLO instruction's opcode follows its result shape and precedes "(": `%x = f32[4] all-reduce(%y)`.
# Async pairs are counted once, by their -start; ragged-all-to-all counts as all-to-all.
_COLLECTIVE_RE = re.compile(r"\s(ragged-)?(all-reduce|all-gather|reduce-scatter|collective-permute|all-to-all)(-start)?\(")
_CUSTOM_CALL_RE = re.compile(r'custom_call_target="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class Target:
    """A hardware target: `platform` "tpu", "cuda" or "cpu", the topology, extra arguments of
    `get_topology_desc` and (GPU) the device description file in icl/aot_targets/."""

    name: str
    platform: str
    topology: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    target_config: str = ""  # file name under icl/aot_targets/
    about: str = ""


TARGETS: dict[str, Target] = {
    "tpu:v5e:2x2": Target("tpu:v5e:2x2", "tpu", "v5e:2x2", about="TPU v5e (v5 lite), 4 chips, 1 core each"),
    "tpu:v4:2x2x1": Target("tpu:v4:2x2x1", "tpu", "v4:2x2x1", (("chip_config_name", "megacore"),),
                           about="TPU v4, 4 chips as 4 megacore devices (as JAX sees a v4-8)"),
    "gpu:h100:4": Target("gpu:h100:4", "cuda", "1x1x4", target_config="h100.txtpb", about="4 NVIDIA H100 SXM5 80 GB on one host"),
    "gpu:h100:1": Target("gpu:h100:1", "cuda", "1x1x1", target_config="h100.txtpb", about="1 NVIDIA H100 SXM5 80 GB"),
    "cpu": Target("cpu", "cpu", about="this machine's CPU devices (no extra needed)"),
}


def parse_target(name: str) -> Target:
    """A target by name: one of `TARGETS`, `tpu:<version>:<topology>` (e.g. tpu:v5e:4x4,
    tpu:v4:2x2x2, tpu:v5p:2x2x1) or `gpu:h100:<n>` (n GPUs on one host)."""
    if name in TARGETS:
        return TARGETS[name]
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "tpu" and re.fullmatch(r"v\w+", parts[1]) and re.fullmatch(r"\d+(x\d+)*", parts[2]):
        options = (("chip_config_name", "megacore"),) if parts[1] == "v4" else ()
        return Target(name, "tpu", f"{parts[1]}:{parts[2]}", options)
    if len(parts) == 3 and parts[:2] == ["gpu", "h100"] and parts[2].isdigit() and int(parts[2]) >= 1:
        return Target(name, "cuda", f"1x1x{int(parts[2])}", target_config="h100.txtpb")
    raise ValueError(
        f"aot: unknown target {name!r}; known: {', '.join(TARGETS)}, or tpu:<version>:<topology> "
        "(e.g. tpu:v5e:4x4), gpu:h100:<n>"
    )


# -- target devices -------------------------------------------------------------------------------
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def _missing(what: str) -> ValueError:
    return ValueError(f"aot: {what} is not installed; install the extra: {EXTRA_HINT}")


def _tpu_devices(target: Target) -> list:
    if not _installed("libtpu"):
        raise _missing("libtpu (TPU compiler)")
    from jax.experimental import topologies  # noqa: PLC0415

    try:
        return list(topologies.get_topology_desc(target.topology, "tpu", **dict(target.options)).devices)
    except Exception as error:  # noqa: BLE001  (libtpu's messages are JaxRuntimeError / RuntimeError)
        raise ValueError(f"aot: libtpu does not know the topology {target.topology!r}: {first_line(error)}") from error


def _ensure_cuda_plugin() -> None:
    """Register JAX's CUDA PJRT plugin for compiling, on a machine with no GPU or CUDA runtime.

    The plugin's `initialize()` refuses to register without a CUDA runtime (its version check)
    unless JAX_SKIP_CUDA_CONSTRAINTS_CHECK is set or JAX_PLATFORMS excludes cuda. If JAX already
    discovered its plugins (and the check dropped this one), initialise it again with the check
    skipped; compiling needs no runtime, only the compiler inside the plugin and ptxas."""
    from jax._src import xla_bridge as xb  # noqa: PLC0415

    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
    xb._discover_and_register_pjrt_plugins()  # noqa: SLF001  (no-op once done)
    if "cuda" in xb._topology_factories:  # noqa: SLF001
        return
    import jax_plugins.xla_cuda12 as plugin  # noqa: PLC0415

    os.environ["JAX_SKIP_CUDA_CONSTRAINTS_CHECK"] = "1"
    plugin.initialize()
    if "cuda" not in xb._topology_factories:  # noqa: SLF001
        raise ValueError("aot: the JAX CUDA plugin did not register its compiler; reinstall the extra: " + EXTRA_HINT)


def _gpu_devices(target: Target) -> list:
    for module, what in (("jax_plugins.xla_cuda12", "jax-cuda12-plugin (XLA:GPU compiler)"),
                         ("nvidia.cuda_nvcc", "nvidia-cuda-nvcc-cu12 (ptxas)")):
        if not _installed(module):
            raise _missing(what)
    _ensure_cuda_plugin()
    from jax.experimental import topologies  # noqa: PLC0415

    config_text = (TARGET_DIR / target.target_config).read_text()
    return list(topologies.get_topology_desc(target.name, "cuda", target_config=config_text, topology=target.topology).devices)


@functools.lru_cache(maxsize=None)
def target_devices(target: Target) -> tuple:
    """The (compile-only) devices of a target."""
    import jax  # noqa: PLC0415

    if target.platform == "tpu":
        return tuple(_tpu_devices(target))
    if target.platform == "cuda":
        return tuple(_gpu_devices(target))
    return tuple(jax.devices("cpu"))


# -- abstract inputs ------------------------------------------------------------------------------
def _abstract(tree, sharding):
    """ShapeDtypeStructs of `tree` (a tree of shapes from eval_shape) with `sharding`."""
    import jax  # noqa: PLC0415

    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding, weak_type=getattr(x, "weak_type", False)), tree)


def abstract_state(trainer):
    """(params, opt_state, keys) of a trainer as sharded ShapeDtypeStructs, nothing allocated."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from icl import train  # noqa: PLC0415

    config = trainer.config

    def init():
        params = jax.tree.map(lambda *xs: jnp.stack(xs), *[train.init_params(config, s) for s in train.seeds_of(config)])
        return params, jax.vmap(trainer.optimizer.init)(params), train.data_keys(config)

    params, opt_state, keys = jax.eval_shape(init)
    sharding = trainer.state_sharding
    return _abstract(params, sharding), _abstract(opt_state, sharding), _abstract(keys, sharding)


def abstract_batch(trainer, n_tasks: int, purpose: int):
    """A held-out batch of n_tasks tasks as ShapeDtypeStructs, replicated over the mesh (as the
    host arrays that train() passes)."""
    import jax  # noqa: PLC0415

    from icl import train  # noqa: PLC0415

    config = trainer.config
    shapes = jax.eval_shape(lambda: config.task.sample(train.heldout_key(config, purpose), n_tasks))
    return _abstract(shapes, trainer.replicated)


# -- compiling and reading the result -------------------------------------------------------------
@dataclasses.dataclass
class ProgramReport:
    """One compiled program, per device."""

    name: str
    compile_s: float
    memory: dict[str, int]  # argument, output, alias, temp, generated_code (bytes)
    cost: dict[str, float] | None  # flops, bytes_accessed, transcendentals
    cost_source: str  # "xla" (the target compiler's estimate) or "hlo" (HloCostAnalysis of the optimised module)
    collectives: dict[str, int]
    custom_calls: dict[str, int] = dataclasses.field(default_factory=dict)  # library calls (cuSOLVER ...): not in "hlo" flops
    error: str = ""  # the compiler's message when the program did not compile (keep_going)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class AotReport:
    experiment: str
    target: str
    device_kind: str
    n_devices: int  # devices of the target
    mesh: dict[str, int]
    dtype: str
    batch_size: int  # training tasks per step (all seeds' devices together)
    eval_tasks: int
    final_eval_tasks: int
    programs: list[ProgramReport]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def failed(self) -> list[ProgramReport]:
        return [p for p in self.programs if p.error]

    def program(self, name: str) -> ProgramReport:
        for program in self.programs:
            if program.name == name:
                return program
        raise KeyError(name)


def count_collectives(hlo_text: str) -> dict[str, int]:
    """Static count of each collective's instructions in HLO text (async pairs once)."""
    counts = dict.fromkeys(COLLECTIVES, 0)
    for match in _COLLECTIVE_RE.finditer(hlo_text):
        counts[match.group(2)] += 1
    return counts


def _memory(compiled) -> dict[str, int]:
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    names = {"argument": "argument_size_in_bytes", "output": "output_size_in_bytes", "alias": "alias_size_in_bytes",
             "temp": "temp_size_in_bytes", "generated_code": "generated_code_size_in_bytes"}
    return {key: int(getattr(stats, attr, 0)) for key, attr in names.items()}


def _cost(compiled) -> tuple[dict[str, float] | None, str]:
    analysis = None
    try:
        analysis = compiled.cost_analysis()
    except NotImplementedError:
        pass
    source = "xla"
    if not analysis:  # XLA:GPU compile-only executables have none: analyse the optimised module
        from jax._src import xla_bridge as xb  # noqa: PLC0415
        from jax._src.lib import _jax  # noqa: PLC0415

        try:
            modules = compiled.runtime_executable().hlo_modules()
            analysis = _jax.hlo_module_cost_analysis(xb.get_backend("cpu"), modules[0])
            source = "hlo"
        except Exception:  # noqa: BLE001
            return None, "none"
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return {
        "flops": float(analysis.get("flops", 0.0)),
        "bytes_accessed": float(analysis.get("bytes accessed", 0.0)),
        "transcendentals": float(analysis.get("transcendentals", 0.0)),
    }, source


class AotCompileError(RuntimeError):
    """XLA failed to compile one of the programs for the target (`program` names it)."""

    def __init__(self, program: str, error: BaseException):
        super().__init__(f"program {program!r}: {first_line(error)}")
        self.program = program


def compile_program(name: str, lowered, keep_going: bool = False) -> ProgramReport:
    """Compile a lowered program and read memory, cost and collectives off the result. A compiler
    failure raises `AotCompileError`, or with `keep_going` is returned as a report with `error`."""
    start = time.perf_counter()
    try:
        compiled = lowered.compile()
    except Exception as error:  # noqa: BLE001  (XLA raises JaxRuntimeError)
        failure = AotCompileError(name, error)
        if not keep_going:
            raise failure from error
        return ProgramReport(name, round(time.perf_counter() - start, 3), {}, None, "none", {}, error=first_line(error))
    seconds = time.perf_counter() - start
    text = compiled.as_text() or ""
    cost, source = _cost(compiled)
    calls: dict[str, int] = {}
    for call in _CUSTOM_CALL_RE.findall(text):
        calls[call] = calls.get(call, 0) + 1
    return ProgramReport(name, round(seconds, 3), _memory(compiled), cost, source, count_collectives(text), calls)


def lower_programs(trainer, programs=("train", "eval", "final"), solvers=None) -> dict[str, Any]:
    """{name: jax Lowered} of the experiment's train chunk, evaluation and final-table comparisons,
    lowered for the trainer's mesh with abstract inputs."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from icl import compare, train  # noqa: PLC0415

    config = trainer.config
    cfg = config.train
    out = {}
    params, opt_state, keys = abstract_state(trainer)
    if "train" in programs:
        start = jax.ShapeDtypeStruct((), jnp.int32, sharding=trainer.replicated)
        out["train"] = trainer._chunk.lower(params, opt_state, keys, cfg.eval_every, start)  # noqa: SLF001
    if "eval" in programs:
        lr = jax.ShapeDtypeStruct((), jax.dtypes.canonicalize_dtype(float), sharding=trainer.replicated, weak_type=True)  # a float
        out["eval"] = trainer._eval.lower(params, abstract_batch(trainer, cfg.eval_tasks, 0), lr)  # noqa: SLF001
    if "final" in programs:
        batch = abstract_batch(trainer, cfg.final_eval_tasks, 1)
        spec = trainer.spec
        for name in config.compare_against if solvers is None else solvers:
            # train.final_table's program for this solver; the solver's hyper-parameters are
            # constants in it (the optimal GD lr is computed on the host CPU, as train() does).
            predict, _ = compare.solver_predictor(name, config.task, train.heldout_key(config, train.HeldOut.GD_LR))
            metrics = jax.jit(jax.vmap(lambda p, b, predict=predict: compare.compare(spec.predictor(p), predict, b), in_axes=(0, None)),
                              out_shardings=trainer.replicated)
            out[f"final:{name}"] = metrics.lower(params, batch)
    return out


def resolve(experiment: str | None, assignments=(), dtype: str | None = None):
    """The ExperimentConfig for an experiment or a `VARIANTS` name, with --set overrides and dtype."""
    from icl import experiments  # noqa: PLC0415

    from icl.config import apply_overrides  # noqa: PLC0415

    name = experiment or experiments.DEFAULT
    if name in VARIANTS:
        base, overrides = VARIANTS[name]
        config = apply_overrides(experiments.get(base), [*overrides, f"name={name}"])
    elif name in experiments.names():
        config = experiments.get(name)
    else:
        raise ValueError(f"aot: unknown experiment {name!r}; experiments: {', '.join(experiments.names())}; "
                         f"variants: {', '.join(VARIANTS)}")
    assignments = list(assignments or ())
    if dtype is not None:
        assignments.append(f"train.dtype={dtype}")
    return apply_overrides(config, assignments)


def compile_experiment(config, target: str | Target, *, programs=("train", "eval", "final"), solvers=None,
                       keep_going: bool = False) -> AotReport:
    """Compile an experiment's programs for `target` (a name, see `parse_target`) in the
    config's dtype (`train.dtype`; float64 enables x64 for the tracing only) and report memory,
    cost and collectives per device. `programs`: a subset of train, eval, final; `solvers`: the
    final table's solvers (default the config's compare_against). A program that does not
    compile raises `AotCompileError`, or with `keep_going` is reported with its `error`."""
    import jax  # noqa: PLC0415

    from icl import train  # noqa: PLC0415

    target = parse_target(target) if isinstance(target, str) else target
    devices = target_devices(target)
    with jax.enable_x64(config.train.dtype == "float64"):
        trainer = train.Trainer(config, devices=devices)
        lowered = lower_programs(trainer, programs, solvers)
        reports = [compile_program(name, low, keep_going) for name, low in lowered.items()]
    return AotReport(
        experiment=config.name, target=target.name, device_kind=devices[0].device_kind, n_devices=len(devices),
        mesh=dict(trainer.mesh.shape), dtype=config.train.dtype, batch_size=config.train.batch_size,
        eval_tasks=config.train.eval_tasks, final_eval_tasks=config.train.final_eval_tasks, programs=reports,
    )


# -- the command ----------------------------------------------------------------------------------
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
    import json  # noqa: PLC0415

    # Host-side work (shapes, the optimal GD lr) runs on the CPU; the targets are compiled for
    # through their topologies. Set before JAX starts its backends; JAX_PLATFORMS=cpu also lets
    # the CUDA plugin register without a CUDA runtime.
    if "JAX_PLATFORMS" not in os.environ:
        import jax  # noqa: PLC0415
        from jax._src import xla_bridge as xb  # noqa: PLC0415

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
    a.add_argument("experiment", nargs="?", help=f"experiment (see `icl list`) or variant: {', '.join(VARIANTS)}")
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
    """`python -m icl.aot ...`: the same as `icl aot ...`."""
    parser = argparse.ArgumentParser(prog="icl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["aot", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
