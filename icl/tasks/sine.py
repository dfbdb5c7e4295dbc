"""Sine-wave regression in context, the non-linear task of von Oswald et al. (2023), Sec. 4.

A task is `y = A sin(x + phi)` with A ~ U(amplitude_range), phi ~ U(phase_range) and
x ~ U(-input_range, input_range) (the MAML ranges by default). A and phi come from
**independent** keys: the official code draws both from one key, which makes them perfectly
correlated (every task with a large amplitude has a large phase); we do not reproduce that.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("sine")
@dataclasses.dataclass(frozen=True)
class SineRegression:
    """1-d sine regression tasks; see the module docstring."""

    # Garg et al.'s averaging estimator, mean(y_i x_i) x_q, is linear in x and far worse than
    # predicting 0 here (loss ~18 vs ~2.2), so the mean label stands in for averaging.
    baselines: ClassVar[tuple[str, ...]] = ("kernel_ridge", "knn", "mean_label")

    n_ctx: int = 10
    n_query: int = 1
    amplitude_range: tuple[float, float] = (0.1, 5.0)
    phase_range: tuple[float, float] = (0.0, math.pi)
    input_range: float = 5.0
    noise_std: float = 0.0
    d: int = 1

    def __post_init__(self):
        name = "sine task"
        check_positive_int(name, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative(name, noise_std=self.noise_std)
        if self.d != 1:
            raise ValueError(f"{name}: inputs are scalars, d must be 1, got {self.d!r}")
        for field_name in ("amplitude_range", "phase_range"):
            low, high = getattr(self, field_name)
            if not low <= high:
                raise ValueError(f"{name}: {field_name} must be (low, high) with low <= high")
            object.__setattr__(self, field_name, (float(low), float(high)))
        if not self.input_range > 0:
            raise ValueError(f"{name}: input_range must be > 0")

    def solver_hparams(self, name: str) -> dict:
        """Kernel ridge with bandwidth 1 (a quarter period of the sine) and a small ridge; 3-NN."""
        if name == "kernel_ridge":
            return {"bandwidth": 1.0, "lam": max(self.noise_std**2, 1e-3)}
        if name == "knn":
            return {"k": 3}
        return {}

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_x, key_amp, key_phase, key_noise = jax.random.split(key, 4)
        n_points = self.n_ctx + self.n_query
        r = self.input_range
        x = jax.random.uniform(key_x, (batch_size * n_points,), minval=-r, maxval=r)
        x = x.reshape(batch_size, n_points, 1)  # [B, N+M, 1]
        amplitude = jax.random.uniform(key_amp, (batch_size, 1), x.dtype, *self.amplitude_range)
        phase = jax.random.uniform(key_phase, (batch_size, 1), x.dtype, *self.phase_range)
        y = amplitude * jnp.sin(x[..., 0] + phase)  # [B, N+M]
        if self.noise_std > 0:
            y = y + self.noise_std * jax.random.normal(key_noise, y.shape, y.dtype)
        n = self.n_ctx
        return Batch.split(x, y, n)
