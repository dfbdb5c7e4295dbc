"""Linear classification in context: sign labels `y = sign(w . x)` in {-1, +1}.

Prior: x ~ N(0, I_d), w ~ N(0, I_d), y = sign(w . x), and each label is flipped independently
with probability `flip_prob` (label noise). Models are trained with the squared loss on the
+-1 labels, so the comparison predicts the expected label E[y | x_q] (logistic regression's
2 sigmoid(w . x_q) - 1); least squares on the +-1 labels is the linear-regression baseline
(Garg et al. 2022 and Akyurek et al. 2023 study sign-label variants of the linear family).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_positive_int, register


@register("linear_classification")
@dataclasses.dataclass(frozen=True)
class LinearClassification:
    """Sign-label linear classification tasks; see the module docstring."""

    baselines: ClassVar[tuple[str, ...]] = ("logistic_regression", "least_squares", "knn")

    d: int = 10
    n_ctx: int = 20
    n_query: int = 1
    flip_prob: float = 0.0

    def __post_init__(self):
        check_positive_int("linear_classification task", d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        if not isinstance(self.flip_prob, (int, float)) or not 0 <= self.flip_prob < 0.5:
            raise ValueError(f"linear_classification task: flip_prob must be in [0, 0.5), got {self.flip_prob!r}")

    def solver_hparams(self, name: str) -> dict:
        """Logistic regression with lam = 1, the MAP fit under the family's prior w ~ N(0, I)."""
        return {"lam": 1.0, "steps": 25} if name == "logistic_regression" else {}

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_x, key_w, key_flip = jax.random.split(key, 3)
        n_points = self.n_ctx + self.n_query
        x = jax.random.normal(key_x, (batch_size * n_points * self.d,)).reshape(batch_size, n_points, self.d)
        w = jax.random.normal(key_w, (batch_size, self.d), x.dtype)  # [B, d]
        y = jnp.where(jnp.einsum("bnd,bd->bn", x, w) >= 0, 1.0, -1.0).astype(x.dtype)  # [B, N+M]
        if self.flip_prob > 0:
            flip = jax.random.bernoulli(key_flip, self.flip_prob, y.shape)
            y = jnp.where(flip, -y, y)
        n = self.n_ctx
        return Batch.split(x, y, n, w)
