"""Matmul precision: reference numerics at full precision on every backend, training by config.

Policy
  * Reference numerics run every matrix product at "highest" precision, whatever the caller's
    `jax.default_matmul_precision` and also inside the caller's own `jax.jit` / `vmap` / `grad`:
    the explicit solvers (`icl.solvers`), the models the GD / GD++ constructions build
    (`icl.constructions`), the comparison metrics (`compare.compare`, `compare.sweep`), the
    probes (`probes.implicit_fit`) and `icl verify` (`icl.verify`).
  * Training runs at `TrainConfig.matmul_precision` (default "highest"); its evaluations and the
    final table run at "highest". `--set train.matmul_precision=default` trains in the backend's
    fast mode (bfloat16 passes on TPU, TF32 on Ampere and later GPUs); the accepted values are
    `PRECISIONS`, those of `jax.default_matmul_precision`.

Why
  float32 has a 24-bit significand (unit roundoff 2^-24 ~ 6e-8), bfloat16 8 bits and TF32 11.
  At the default precision a TPU rounds the inputs of a float32 dot to bfloat16 (one pass), a
  relative error of up to 2^-8 ~ 4e-3 per product, and Ampere+ GPUs round them to TF32, 2^-11 ~
  5e-4; float32 accumulation does not win it back. The constructions equal GD to ~1e-7 in float32
  (~1e-15 in float64) and the metrics compare predictors that agree to that level, so at default
  precision those checks would degrade to ~1e-3 without any error. CPUs compute float32 dots in
  float32 whatever the setting, so this changes nothing there.

How
  `highest(fn)` (and `traced_at(name, fn)`) runs fn's body under `jax.default_matmul_precision`.
  JAX reads that setting when it traces each dot and records it on the dot itself, so the lowered
  program carries `precision = [HIGHEST, HIGHEST]` on every dot_general the body emits, even when
  an outer `jax.jit` is traced under another setting (`tests/test_precision.py` checks the
  lowered StableHLO). The setting is part of the jit cache key, so one function traced under two
  settings compiles twice, never mixes them.

What it does not cover
  * It sets the precision of dots and convolutions (einsum, @, matmul, dot): no other op has one.
    `jnp.linalg` decompositions (svd, eigh, solve, cholesky) lower to custom calls / library
    kernels that compute in the input dtype; the dots inside JAX's own implementations of them
    already ask for HIGHEST.
  * Code outside the entry points above follows the caller's setting: a trained model called
    directly, `compare.sensitivities` called directly (it is covered inside `compare.compare`).
  * numpy code (`solvers.gamma_star`, `weights.preconditioner`, ...) runs in float64 on the host.

Floating-point width (`TrainConfig.dtype`)
  A run's dtype is JAX's x64 switch: "float32" computes with x64 off (float32 parameters and
  batches, 32-bit random draws, so the default sampler's paired 32-bit stream), "float64" with it
  on. `at_dtype(dtype)` is that switch for the current thread only (`jax.enable_x64` as a context
  manager), restored on exit: `icl.train.train` and `load_params` run inside it, so a float32 run
  started from a process with x64 on (the test suite, a float64 notebook) trains in float32 exactly
  as the `icl train` command does, and no library call leaves the process's setting changed.
  Arrays keep the dtype they were made with: a float64 run's parameters are float64 after the
  scope ends, but a computation on them outside an x64 scope runs in float32 (JAX rounds its inputs
  down), so compute with them inside `at_dtype(config.train.dtype)`.
"""

from __future__ import annotations

import functools

import jax

REFERENCE = "highest"
PRECISIONS = (
    "default", "high", "highest", "bfloat16", "tensorfloat32", "float32",
    *(name for name in jax.lax.DotAlgorithmPreset.__members__ if name != "DEFAULT"),
)


DTYPES = ("float32", "float64")


def at_dtype(dtype: str):
    """Context manager: JAX computes at `dtype` ("float32": x64 off, "float64": x64 on) in this
    thread until the block exits, then at the setting it had before (`jax.enable_x64`, scoped)."""
    if dtype not in DTYPES:
        raise ValueError(f"precision: dtype must be one of {DTYPES}, got {dtype!r}")
    return jax.enable_x64(dtype == "float64")


def traced_at(precision: str, fn):
    """fn with its body traced (and, called eagerly, run) under `jax.default_matmul_precision(precision)`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.default_matmul_precision(precision):
            return fn(*args, **kwargs)

    return wrapper


def highest(fn):
    """Decorator: fn's matrix products run at "highest" precision (the reference policy)."""
    return traced_at(REFERENCE, fn)
