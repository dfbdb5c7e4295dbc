"""Linear regression with corrupted context labels ("distractors"), as the official code's
`size_distract` (von Oswald et al. 2023): in every task, `n_distract` context labels, chosen
uniformly without replacement, are replaced by pure noise `N(0, distractor_std^2)`, independent
of x. Queries are never corrupted. Everything else is the `linear` family's prior (uniform or
Gaussian inputs, w ~ N(0, weight_std^2 I), label noise noise_std).

`batch.w` is the clean task weight vector; a mask of the corrupted positions is not part of the
batch (a learner has to cope without it), but `corrupted(key, batch_size)` returns it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_non_negative, register
from icl.tasks.linear import LinearRegression


@register("linear_distractors")
@dataclasses.dataclass(frozen=True)
class LinearDistractors(LinearRegression):
    """`linear` tasks with n_distract of the n_ctx context labels replaced by N(0, distractor_std^2)."""

    n_distract: int = 2
    distractor_std: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        name = "linear_distractors task"
        if not isinstance(self.n_distract, int) or isinstance(self.n_distract, bool) or not 0 <= self.n_distract <= self.n_ctx:
            raise ValueError(f"{name}: n_distract must be an integer in [0, n_ctx={self.n_ctx}], got {self.n_distract!r}")
        check_non_negative(name, distractor_std=self.distractor_std)

    def corrupted(self, key: jax.Array, batch_size: int) -> jax.Array:
        """[B, N] bool: which context labels `sample(key, batch_size)` replaced."""
        _, key_choice, _ = jax.random.split(key, 3)
        # a uniformly random subset of size n_distract per task: the n_distract smallest of N uniforms
        ranks = jnp.argsort(jnp.argsort(jax.random.uniform(key_choice, (batch_size, self.n_ctx)), axis=1), axis=1)
        return ranks < self.n_distract

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_clean, _, key_noise = jax.random.split(key, 3)
        batch = super().sample(key_clean, batch_size)
        mask = self.corrupted(key, batch_size)  # [B, N]
        noise = self.distractor_std * jax.random.normal(key_noise, mask.shape, batch.y_ctx.dtype)
        return batch.replace(y_ctx=jnp.where(mask, noise, batch.y_ctx))
