"""Test-wide JAX settings: float64 (exact-equality claims are checked in float64) and loud
broadcasting (implicit rank promotion raises)."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
