"""Linear regression whose label noise level varies from task to task (Vladymyrov, von Oswald,
Sandler & Ge 2024, "Linear Transformers are Versatile In-Context Learners", Sec. "noisy
regression"): `y = w . x + sigma_t eps`, with a noise std sigma_t of its own for every task, drawn
from a known distribution but never shown to the model.

Prior (per task t):
  x ~ N(0, I_d),  w ~ N(0, tau^2 I_d),  eps ~ N(0, 1)           (tau = weight_std)
  sigma_t ~ uniform over the set `noise_levels`                  (noise_dist="choice", the
                                                                  paper's categorical noise,
                                                                  e.g. sigma_t in {1, 3})
  sigma_t ~ U(lo, hi), (lo, hi) = `noise_levels`                 (noise_dist="uniform", the
                                                                  paper's sigma_t ~ U(0, sigma_max))
Context and query labels of a task carry the same sigma_t. Given sigma_t, the Bayes-optimal
prediction is ridge with lam_t = sigma_t^2 / tau^2 on the unnormalised X^T X (the per-task
"oracle" ridge); without it, any single lam is a compromise (`icl.analysis.mixed_noise`).

The sampled noise levels: `sample_with_noise(key, B) -> (batch, sigma [B])` draws exactly the batch
`sample(key, B)` draws, and the sigma it used (`Batch.w` keeps the weight vector; the analysis gets
sigma from here, not from the batch).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register

NOISE_DISTS = ("choice", "uniform")


@register("noise_mixture")
@dataclasses.dataclass(frozen=True)
class NoiseMixture:
    """Linear regression with a per-task noise level; see the module docstring for the prior."""

    baselines: ClassVar[tuple[str, ...]] = ("ridge", "least_squares", "gd", "gd_plus_plus")

    d: int = 5
    n_ctx: int = 20
    n_query: int = 1
    weight_std: float = 1.0
    noise_dist: str = "choice"
    noise_levels: tuple = (1.0, 3.0)

    def __post_init__(self):
        name = "noise_mixture task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative(name, weight_std=self.weight_std)
        if self.noise_dist not in NOISE_DISTS:
            raise ValueError(f"{name}: noise_dist must be one of {NOISE_DISTS}, got {self.noise_dist!r}")
        levels = self.noise_levels
        if not isinstance(levels, (tuple, list)) or not levels or any(
                isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in levels):
            raise ValueError(f"{name}: noise_levels must be a non-empty tuple of numbers, got {levels!r}")
        if any(v < 0 for v in levels):
            raise ValueError(f"{name}: noise_levels must be >= 0 (noise stds), got {tuple(levels)!r}")
        if self.noise_dist == "uniform" and (len(levels) != 2 or not levels[0] < levels[1]):
            raise ValueError(f"{name}: noise_dist='uniform' takes noise_levels=(lo, hi) with lo < hi, got {tuple(levels)!r}")
        object.__setattr__(self, "noise_levels", tuple(float(v) for v in levels))  # hashable, JSON-stable

    @property
    def noise_variance(self) -> float:
        """E[sigma_t^2] over the noise distribution."""
        lv = np.asarray(self.noise_levels)
        if self.noise_dist == "choice":
            return float(np.mean(lv**2))
        lo, hi = lv
        return float((hi**3 - lo**3) / (3 * (hi - lo)))

    def solver_hparams(self, name: str) -> dict:
        """Ridge's default lam: E[sigma^2] / tau^2, the one lam that matches the average noise
        (not the best single lam, which `icl.analysis.mixed_noise` tunes on validation tasks)."""
        if name == "ridge":
            return {"lam": self.noise_variance / self.weight_std**2}
        return {}

    def noise_stds(self, key: jax.Array, batch_size: int, dtype=None) -> jax.Array:
        """sigma_t for `batch_size` tasks from `key`: [B]."""
        dtype = dtype or jnp.result_type(float)
        levels = jnp.asarray(self.noise_levels, dtype)
        if self.noise_dist == "choice":
            return levels[jax.random.randint(key, (batch_size,), 0, len(self.noise_levels))]
        return jax.random.uniform(key, (batch_size,), dtype, minval=levels[0], maxval=levels[1])

    def sample_with_noise(self, key: jax.Array, batch_size: int) -> tuple[Batch, jax.Array]:
        """(the batch `sample(key, batch_size)` returns, the noise std of each of its tasks [B])."""
        key_x, key_w, key_sigma, key_noise = jax.random.split(key, 4)
        n_points = self.n_ctx + self.n_query
        x = jax.random.normal(key_x, (batch_size * n_points * self.d,)).reshape(batch_size, n_points, self.d)
        w = self.weight_std * jax.random.normal(key_w, (batch_size, self.d), x.dtype)  # [B, d]
        sigma = self.noise_stds(key_sigma, batch_size, x.dtype)  # [B]
        y = jnp.einsum("bnd,bd->bn", x, w) + sigma[:, None] * jax.random.normal(key_noise, (batch_size, n_points), x.dtype)
        return Batch.split(x, y, self.n_ctx, w), sigma

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        return self.sample_with_noise(key, batch_size)[0]
