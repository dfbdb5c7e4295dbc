"""Sparse linear regression in context (Garg et al. 2022, Sec. 4): `y = w . x + eps`, w k-sparse.

Prior: x ~ N(0, I_d); a support of k of the d coordinates, uniform among the C(d, k) subsets, with
w ~ N(0, tau^2) there and 0 elsewhere; eps ~ N(0, sigma^2) (tau = weight_std, sigma = noise_std).
The sparse prior rewards learners that exploit it: with N < d examples least squares cannot
identify w, while the Lasso (l1-regularised least squares) can recover a k-sparse w from
N ~ 2 k log(d / k) examples. Defaults: d = 10, k = 3, N = 8 < d.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.curriculum import truncate_dims
from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("sparse_linear")
@dataclasses.dataclass(frozen=True)
class SparseLinearRegression:
    """k-sparse linear regression tasks; see the module docstring for the prior."""

    baselines: ClassVar[tuple[str, ...]] = ("lasso", "least_squares", "gd")

    d: int = 10
    n_ctx: int = 8
    n_query: int = 1
    k: int = 3
    weight_std: float = 1.0
    noise_std: float = 0.0

    def __post_init__(self):
        name = "sparse_linear task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query, k=self.k)
        check_non_negative(name, weight_std=self.weight_std, noise_std=self.noise_std)
        if self.k > self.d:
            raise ValueError(f"{name}: k (non-zero weights) must be <= d = {self.d}, got {self.k}")

    def solver_hparams(self, name: str) -> dict:
        """Lasso's alpha: sigma^2 / tau (the MAP alpha for a Laplace prior of the same scale),
        floored at 0.01 so noiseless tasks get near basis pursuit (min ||w||_1 s.t. X w = y) and
        FISTA converges within its default budget (d = 10, N = 8, k = 3: loss 0.04 vs 0.30 for
        least squares on 10,000 tasks)."""
        if name == "lasso":
            return {"alpha": max(self.noise_std**2 / max(self.weight_std, 1e-12), 0.01)}
        return {}

    def sample(self, key: jax.Array, batch_size: int, active_dims=None) -> Batch:
        """B tasks; with `active_dims` (a curriculum, `icl.curriculum`), inputs have coordinates
        >= active_dims set to 0 and the support is a uniform k-subset of the active coordinates
        (Garg et al.'s `valid_coords`; all of them when active_dims < k)."""
        key_x, key_w, key_support, key_noise = jax.random.split(key, 4)
        n_points = self.n_ctx + self.n_query
        x = jax.random.normal(key_x, (batch_size * n_points * self.d,)).reshape(batch_size, n_points, self.d)
        # A uniform k-subset per task: the ranks of d i.i.d. uniforms below k mark the support
        # (ranks, not a threshold, so a tie cannot give k + 1 non-zeros).
        u = jax.random.uniform(key_support, (batch_size, self.d))
        if active_dims is not None:
            x = truncate_dims(x, active_dims)
            u = jnp.where(jnp.arange(self.d) < active_dims, u, 2.0)  # inactive coordinates rank last
        support = (jnp.argsort(jnp.argsort(u, axis=1), axis=1) < self.k).astype(x.dtype)  # [B, d], k ones
        w = self.weight_std * jax.random.normal(key_w, (batch_size, self.d), x.dtype) * support  # [B, d]
        y = jnp.einsum("bnd,bd->bn", x, w)  # [B, N+M]
        if self.noise_std > 0:
            y = y + self.noise_std * jax.random.normal(key_noise, y.shape, y.dtype)
        n = self.n_ctx
        return Batch.split(x, y, n, w)
