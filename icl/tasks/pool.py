"""Linear regression with a finite pool of pretraining tasks (Raventos et al. 2023, "Pretraining
task diversity and the emergence of non-Bayesian in-context learning for regression").

Prior: a pool of M weight vectors w_1..w_M ~ N(0, tau^2 I_d) is drawn **once** from `pool_seed`
(the same pool for every batch and every run with that seed); each task picks one uniformly,
x ~ N(0, I_d), y = w . x + eps, eps ~ N(0, sigma^2). The paper's setting is d = 8, sigma^2 = 0.25,
N up to 16 (here the default N = 16).

Two Bayes-optimal learners bracket a trained model:
  dmmse   the posterior mean over the pool, optimal for this (pretraining) prior;
  ridge   lam = sigma^2 / tau^2, the posterior mean for the Gaussian prior w ~ N(0, tau^2 I),
          optimal on unseen tasks and the M -> infinity limit.
A transformer trained with few tasks behaves like dmmse; past a task-diversity threshold, like
ridge. To test a trained model on the Gaussian prior, train on this family and compare on
`linear` with input_dist="gaussian" and the same noise.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("linear_pool")
@dataclasses.dataclass(frozen=True)
class LinearPoolRegression:
    """Linear regression on a finite pool of `pool_size` tasks; see the module docstring."""

    baselines: ClassVar[tuple[str, ...]] = ("dmmse", "ridge")

    d: int = 8
    n_ctx: int = 16
    n_query: int = 1
    pool_size: int = 16
    pool_seed: int = 0
    weight_std: float = 1.0
    noise_std: float = 0.5

    def __post_init__(self):
        name = "linear_pool task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query, pool_size=self.pool_size)
        check_non_negative(name, weight_std=self.weight_std, pool_seed=self.pool_seed)
        if not isinstance(self.pool_seed, int) or isinstance(self.pool_seed, bool):
            raise ValueError(f"{name}: pool_seed must be an integer, got {self.pool_seed!r}")
        if not self.noise_std > 0:
            raise ValueError(f"{name}: noise_std must be > 0 (the dMMSE posterior needs label noise), got {self.noise_std!r}")

    @functools.cached_property
    def pool(self) -> np.ndarray:
        """The M task weight vectors, [pool_size, d] float64, a pure function of pool_seed (NumPy,
        so it is a constant, never a traced value, inside jit)."""
        rng = np.random.default_rng(self.pool_seed)
        return self.weight_std * rng.standard_normal((self.pool_size, self.d))

    def solver_hparams(self, name: str) -> dict:
        if name == "dmmse":
            return {"pool": self.pool, "noise_std": self.noise_std}
        return {}

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_x, key_task, key_noise = jax.random.split(key, 3)
        n_points = self.n_ctx + self.n_query
        x = jax.random.normal(key_x, (batch_size * n_points * self.d,)).reshape(batch_size, n_points, self.d)
        index = jax.random.randint(key_task, (batch_size,), 0, self.pool_size)
        w = jnp.asarray(self.pool, x.dtype)[index]  # [B, d]
        y = jnp.einsum("bnd,bd->bn", x, w) + self.noise_std * jax.random.normal(key_noise, (batch_size, n_points), x.dtype)
        n = self.n_ctx
        return Batch.split(x, y, n, w)
