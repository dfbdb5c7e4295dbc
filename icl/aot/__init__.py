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
  eval        `Trainer.evaluator`, the evaluation during training (model vs `train.reference`)
  final:NAME  the final table's `compare.compare` of the model vs each solver of
              `compare_against`, on `final_eval_tasks` held-out tasks

and for each: XLA's memory (arguments, outputs, temporaries, generated code), its cost estimate
(flops, bytes accessed) and the collectives in the compiled HLO (static count of all-reduce,
all-gather, reduce-scatter, collective-permute, all-to-all instructions).

Targets (`TARGETS`; `parse_target` also reads any `tpu:<version>:<topology>` libtpu knows and
`gpu:h100:<n>`): TPU descriptions come from libtpu, GPU ones from the PJRT CUDA plugin with the
device description in `icl/aot/` (H100 SXM5: `h100.txtpb`), its PTX assembled by the
`ptxas` of the `nvidia-cuda-nvcc-cu12` wheel. Both need the extra: `pip install -e '.[aot]'`.
`cpu` compiles for this machine's CPU devices (no extra needed).

Notes:
  * The data-parallel layout is the config's: the default `train.data_parallel="auto"` uses
    one device of an accelerator target (`icl.devices`; for `--target cpu`, `icl aot` makes the
    cores devices and "auto" may split, `python -m icl.aot` does not); `--set train.data_parallel=0` splits the batch over all of them.
  * The XLA:GPU compile-only executable has no cost analysis; for GPU targets the cost is XLA's
    generic `HloCostAnalysis` of the optimised per-device GPU module (`cost_source` says which),
    which counts fused dots but not library calls (custom calls such as cuSOLVER's SVD; their
    count is reported).
  * XLA's cost analysis counts a loop body once: the train chunk's flops and bytes are those of
    about one step, not of its `eval_every` steps.
  * XLA:GPU reports no generated-code size (0); TPU and CPU do.

Modules: `targets` (the hardware targets and their compile-only devices), `programs` (lowering
with abstract inputs, compiling, reading memory / cost / collectives), `command` (`icl aot`).
At module level this package imports only the standard library (the `icl` command registers
`icl aot` without starting JAX).
"""

from icl.aot.command import add_parser, cmd_aot, format_report, main
from icl.aot.programs import (
    AotCompileError,
    AotReport,
    ProgramReport,
    abstract_batch,
    abstract_state,
    compile_experiment,
    compile_program,
    count_collectives,
    lower_programs,
    resolve,
)
from icl.aot.targets import EXTRA_HINT, TARGETS, Target, parse_target, target_devices

__all__ = [
    "EXTRA_HINT", "TARGETS", "AotCompileError", "AotReport", "ProgramReport", "Target", "abstract_batch", "abstract_state",
    "add_parser", "cmd_aot", "compile_experiment", "compile_program", "count_collectives", "format_report",
    "lower_programs", "main", "parse_target", "resolve", "target_devices",
]
