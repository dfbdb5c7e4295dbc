"""Lower an experiment's programs with abstract inputs for a target's mesh, compile them, and read
XLA's memory, cost and collectives off the result (see `icl.aot`)."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from icl.aot.targets import Target, parse_target, target_devices
from icl.checks import first_line

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")
# An HLO instruction's opcode follows its result shape and precedes "(": `%x = f32[4] all-reduce(%y)`.
# Async pairs are counted once, by their -start; ragged-all-to-all counts as all-to-all.
_COLLECTIVE_RE = re.compile(r"\s(ragged-)?(all-reduce|all-gather|reduce-scatter|collective-permute|all-to-all)(-start)?\(")
_CUSTOM_CALL_RE = re.compile(r'custom_call_target="([^"]+)"')


# -- abstract inputs ------------------------------------------------------------------------------
def _abstract(tree, sharding):
    """ShapeDtypeStructs of `tree` (a tree of shapes from eval_shape) with `sharding`."""
    import jax

    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding, weak_type=getattr(x, "weak_type", False)), tree)


def abstract_state(trainer):
    """(params, opt_state, keys) of a trainer as sharded ShapeDtypeStructs, nothing allocated."""
    import jax
    import jax.numpy as jnp

    from icl import train

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
    import jax

    from icl import train

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
        from jax._src import xla_bridge as xb
        from jax._src.lib import _jax

        try:
            modules = compiled.runtime_executable().hlo_modules()
            analysis = _jax.hlo_module_cost_analysis(xb.get_backend("cpu"), modules[0])
            source = "hlo"
        except Exception:  # noqa: BLE001  the cost analysis is optional: none rather than a failed compile
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
        message = first_line(error)
        hint = next((h for known, h in KNOWN_FAILURES.items() if known in message), "")
        super().__init__(f"program {program!r}: {message}{hint}")
        self.program = program


# compiler failures with a known way around them: (text in XLA's message) -> what to add
KNOWN_FAILURES = {
    # XLA:GPU's Triton GEMM finds no tiling for a dot whose contraction is tiny (the GPT-2
    # family's read-in, d + 1 < 16) at "highest" precision (jax 0.10.2); cuBLAS compiles it
    "Couldn't find output tile sizes": " [known XLA:GPU Triton GEMM failure: run with "
                                       "XLA_FLAGS=--xla_gpu_enable_triton_gemm=false, which compiles it]",
}


def compile_program(name: str, lowered, keep_going: bool = False) -> ProgramReport:
    """Compile a lowered program and read memory, cost and collectives off the result. A compiler
    failure raises `AotCompileError`, or with `keep_going` is returned as a report with `error`."""
    start = time.perf_counter()
    try:
        compiled = lowered.compile()
    except Exception as error:  # XLA raises JaxRuntimeError
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
    import jax
    import jax.numpy as jnp

    from icl import compare, train

    config = trainer.config
    cfg = config.train
    out = {}
    params, opt_state, keys = abstract_state(trainer)
    if "train" in programs:
        start = jax.ShapeDtypeStruct((), jnp.int32, sharding=trainer.replicated)
        # the program the loop runs: eval_every steps, of which a traced count run (Trainer.train_chunk)
        out["train"] = trainer._chunk.lower(params, opt_state, keys, cfg.eval_every, start, start)
    if "eval" in programs:
        reference, _ = train.reference_solver(config)  # its hyper-parameters are constants in the program, as in train()
        out["eval"] = trainer.evaluator(reference).lower(params, abstract_batch(trainer, cfg.eval_tasks, 0))
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
    """The ExperimentConfig of a registered experiment (`icl list`; the model families of the
    figures are the "variants" study), with --set overrides and dtype."""
    from icl import experiments
    from icl.config import apply_overrides

    config = experiments.get(experiment or experiments.DEFAULT)
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
    import jax

    from icl import train

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
