"""A mixture of dense and sparse linear regression (Panwar, Ahuja & Goyal 2024, "In-context
learning through the Bayesian prism", Sec. 4): `y = w . x + eps`, w from one of two priors.

Prior: x ~ N(0, I_d); with probability p_dense, w ~ N(0, tau^2 I_d) (dense); else a support of k
of the d coordinates, uniform among the C(d, k) subsets, w ~ N(0, tau^2) there and 0 elsewhere
(k-sparse, as `sparse_linear`); eps ~ N(0, sigma^2) (tau = weight_std, sigma = noise_std). The
Bayes-optimal predictor weighs the two priors' posterior means by their marginal likelihoods given
the context (`icl.analysis.task_mixture`): ridge-like on contexts that look dense, sparse-Bayes
(Lasso-like) on contexts that look sparse. p_dense = 1 is the `linear` family's Gaussian prior,
p_dense = 0 the `sparse_linear` family's. Defaults: d = 5, k = 1, N = 5, p_dense = 0.5, sigma = 0.5.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("linear_mixture")
@dataclasses.dataclass(frozen=True)
class LinearMixture:
    """Dense-or-sparse linear regression tasks; see the module docstring for the prior."""

    baselines: ClassVar[tuple[str, ...]] = ("ridge", "lasso", "least_squares")

    d: int = 5
    n_ctx: int = 5
    n_query: int = 1
    k: int = 1
    p_dense: float = 0.5
    weight_std: float = 1.0
    noise_std: float = 0.5

    def __post_init__(self):
        name = "linear_mixture task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query, k=self.k)
        check_non_negative(name, weight_std=self.weight_std, noise_std=self.noise_std)
        if self.k > self.d:
            raise ValueError(f"{name}: k (non-zero weights) must be <= d = {self.d}, got {self.k}")
        if not 0.0 <= self.p_dense <= 1.0:
            raise ValueError(f"{name}: p_dense must lie in [0, 1], got {self.p_dense}")

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_x, key_w, key_support, key_kind, key_noise = jax.random.split(key, 5)
        n_points = self.n_ctx + self.n_query
        x = jax.random.normal(key_x, (batch_size * n_points * self.d,)).reshape(batch_size, n_points, self.d)
        # A uniform k-subset per task (ranks of d i.i.d. uniforms below k), all ones for dense tasks.
        u = jax.random.uniform(key_support, (batch_size, self.d))
        support = (jnp.argsort(jnp.argsort(u, axis=1), axis=1) < self.k).astype(x.dtype)  # [B, d]
        dense = jax.random.uniform(key_kind, (batch_size, 1)) < self.p_dense  # [B, 1]
        mask = jnp.where(dense, jnp.ones_like(support), support)  # [B, d]
        w = self.weight_std * jax.random.normal(key_w, (batch_size, self.d), x.dtype) * mask  # [B, d]
        y = jnp.einsum("bnd,bd->bn", x, w)  # [B, N+M]
        if self.noise_std > 0:
            y = y + self.noise_std * jax.random.normal(key_noise, y.shape, y.dtype)
        return Batch.split(x, y, self.n_ctx, w)
