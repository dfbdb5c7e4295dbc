"""Autoregressive linear dynamics in context: predict the next value of a stable scalar AR(p)
process from its last p = d values.

A task is a process s_t = sum_{j=1}^{d} a_j s_{t-j} + sigma eps_t, eps_t ~ N(0, 1), whose
characteristic polynomial 1 - sum_j a_j z^j = prod_k (1 - r_k z) has real roots r_k ~ U(-rho, rho)
(|r_k| < 1: stable; the default rho = 0.7 keeps the series' tails light: with rho = 0.9 and
d = 3, transient growth gave |y| up to 37 in 20,000 series, which a one-layer LSA, cubic in the
data, turns into losses in the thousands); the first d values are N(0, 1). Example i is the window
x_i = (s_{i+d-1}, ..., s_i) (most recent first) with label y_i = s_{i+d}; the queries are the
windows that follow the context, so query inputs contain earlier values of the same series (never
their own label). Batch.w holds the coefficients a, so `y = w . x + sigma eps` exactly as in
`linear`, but the inputs are correlated and depend on w: least squares, ridge and GD apply.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("autoregressive")
@dataclasses.dataclass(frozen=True)
class AutoregressiveDynamics:
    """Scalar AR(d) forecasting tasks; see the module docstring."""

    baselines: ClassVar[tuple[str, ...]] = ("least_squares", "ridge", "gd")

    d: int = 3
    n_ctx: int = 20
    n_query: int = 1
    root_radius: float = 0.7
    noise_std: float = 0.2

    def __post_init__(self):
        name = "autoregressive task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative(name, noise_std=self.noise_std)
        if not 0 <= self.root_radius < 1:
            raise ValueError(f"{name}: root_radius must be in [0, 1) for a stable process, got {self.root_radius!r}")

    def solver_hparams(self, name: str) -> dict:
        """Ridge with lam = sigma^2 (the coefficients are O(1); a mild, prior-free choice)."""
        return {"lam": max(self.noise_std**2, 1e-6)} if name == "ridge" else {}

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_roots, key_init, key_noise = jax.random.split(key, 3)
        d, n_points = self.d, self.n_ctx + self.n_query
        roots = jax.random.uniform(key_roots, (batch_size, d), minval=-self.root_radius, maxval=self.root_radius)
        poly = jnp.zeros((batch_size, d + 1), roots.dtype).at[:, 0].set(1.0)  # prod_k (1 - r_k z)
        for k in range(d):  # over the order d (static), not the context length
            shifted = jnp.pad(poly[:, :-1], ((0, 0), (1, 0)))
            poly = poly - roots[:, k : k + 1] * shifted
        a = -poly[:, 1:]  # [B, d]: s_t = sum_j a_j s_{t-j} + noise
        init = jax.random.normal(key_init, (batch_size, d), roots.dtype)[:, ::-1]  # most recent first
        noise = self.noise_std * jax.random.normal(key_noise, (n_points, batch_size), roots.dtype)

        def step(window, eps):  # window [B, d], most recent first
            s_next = jnp.sum(a * window, axis=1) + eps  # [B]
            return jnp.concatenate([s_next[:, None], window[:, :-1]], axis=1), (window, s_next)

        _, (x, y) = jax.lax.scan(step, init, noise)  # x [T, B, d], y [T, B]
        x, y = jnp.swapaxes(x, 0, 1), jnp.swapaxes(y, 0, 1)  # [B, T, d], [B, T]
        n = self.n_ctx
        return Batch.split(x, y, n, a)
