"""Two-layer ReLU network targets in context (Garg et al. 2022, Sec. 5).

Prior: a task is f(x) = sum_{j=1}^{h} a_j relu(u_j . x) with u_j ~ N(0, I_d), a_j ~ N(0, 2 / h)
(so E f(x)^2 = |x|^2: the same scale as a linear task with w ~ N(0, I)), h = `hidden`;
x ~ N(0, I_d), y = f(x) + eps, eps ~ N(0, sigma^2). Garg et al. use d = 20, h = 100, N = 100;
the defaults here are smaller (d = 4, N = 32) so that a CPU run learns something in a minute.
Baselines: RBF kernel ridge, k-nearest neighbours, least squares and the averaging estimator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.curriculum import truncate_dims
from icl.tasks.base import Batch, check_non_negative, check_positive_int, register


@register("relu_net")
@dataclasses.dataclass(frozen=True)
class ReluNetRegression:
    """Random 2-layer ReLU network regression tasks; see the module docstring."""

    baselines: ClassVar[tuple[str, ...]] = ("kernel_ridge", "knn", "least_squares", "averaging")

    d: int = 4
    n_ctx: int = 32
    n_query: int = 1
    hidden: int = 100
    noise_std: float = 0.0

    def __post_init__(self):
        name = "relu_net task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query, hidden=self.hidden)
        check_non_negative(name, noise_std=self.noise_std)

    def solver_hparams(self, name: str) -> dict:
        """Kernel ridge with bandwidth sqrt(d) (|x - x'| ~ sqrt(2 d) for these inputs) and a small
        ridge; k = 3 neighbours as Garg et al."""
        if name == "kernel_ridge":
            return {"bandwidth": math.sqrt(self.d), "lam": max(self.noise_std**2, 1e-2)}
        if name == "knn":
            return {"k": 3}
        return {}

    def sample(self, key: jax.Array, batch_size: int, active_dims=None) -> Batch:
        """B tasks; with `active_dims` (a curriculum, `icl.curriculum`), inputs have coordinates
        >= active_dims set to 0 before labelling."""
        key_x, key_u, key_a, key_noise = jax.random.split(key, 4)
        n_points, h, d = self.n_ctx + self.n_query, self.hidden, self.d
        x = jax.random.normal(key_x, (batch_size * n_points * d,)).reshape(batch_size, n_points, d)
        if active_dims is not None:
            x = truncate_dims(x, active_dims)
        u = jax.random.normal(key_u, (batch_size * h * d,), x.dtype).reshape(batch_size, h, d)
        a = math.sqrt(2.0 / h) * jax.random.normal(key_a, (batch_size, h), x.dtype)
        y = jnp.einsum("bh,bnh->bn", a, jax.nn.relu(jnp.einsum("bnd,bhd->bnh", x, u)))  # [B, N+M]
        if self.noise_std > 0:
            y = y + self.noise_std * jax.random.normal(key_noise, y.shape, y.dtype)
        n = self.n_ctx
        return Batch.split(x, y, n)
