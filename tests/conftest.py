"""Test-wide JAX settings: float64 (exact-equality claims are checked in float64) and loud
broadcasting (implicit rank promotion raises).

x64 on is the setting of the test code, not of the runs it trains: `icl.train.train` (and
`load_params`) compute at the config's `train.dtype` in a scope of their own
(`icl.precision.at_dtype`), so a float32 config trained in a test trains in float32, on the
default sampler's 32-bit stream, exactly as the `icl train` command does (tests/test_float32.py
checks it to the bit); float64 tests ask for `train.dtype=float64`. Code called outside
`train.train` (`Trainer`, `init_params`, the solvers) follows this float64 setting.

The test processes (the xdist workers) and the `icl train` processes that the fault, resume and
multi-process tests start (dozens, mostly the same tiny programs) share one persistent XLA
compilation cache, in pytest's cache directory: each program compiles once per machine instead
of once per process, or once per `train.train` call (each call builds its own jitted programs).
Measured from a cold cache on a loaded 2-core CPU: a tiny run's process ~43 s -> ~22 s;
tests/test_train.py 225 s -> 142 s; test_fast_paths.py + test_families.py 289 s -> 254 s. A
cached executable is the one the compiler produced: a tiny run's parameters from a process that
read the cache equal those of one that compiled, to the bit. A variable set by the caller is
left as it is."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ and getattr(config, "cache", None) is not None:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(config.cache.mkdir("xla-compilation-cache"))
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the tiny programs too
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:  # this process (and each xdist worker) too
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key():
    return jax.random.key(0)
