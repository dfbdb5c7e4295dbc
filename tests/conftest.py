"""Test-wide JAX settings: float64 (exact-equality claims are checked in float64) and loud
broadcasting (implicit rank promotion raises).

The `icl train` processes that the fault, resume and multi-process tests start (dozens, mostly
the same tiny programs) share one persistent XLA compilation cache, in pytest's cache directory:
each program compiles once per machine instead of once per process (a tiny run's process: ~43 s
-> ~22 s on a loaded 2-core CPU). The in-process tests do not use it: they share few programs
(a cold cache left 216 of them at 666 s vs 665 s). A cached executable is the one the compiler
produced: a tiny run's parameters from a process that read the cache equal those of one that
compiled, to the bit. A variable set by the caller is left as it is."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_compilation_cache_dir", None)  # in-process: no persistent cache (xdist workers inherit the variable below)


def pytest_configure(config):
    if "JAX_COMPILATION_CACHE_DIR" in os.environ or getattr(config, "cache", None) is None:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(config.cache.mkdir("xla-compilation-cache"))
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the tiny programs too
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


@pytest.fixture
def key():
    return jax.random.key(0)
