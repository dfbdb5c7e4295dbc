"""Labels drawn from a Gaussian process with a dot-product kernel (Cheng, Chen & Sra, ICML 2024,
"Transformers Implement Functional Gradient Descent to Learn Non-Linear Functions In Context").

Prior (per task; the N context points and the M queries are drawn jointly):
  x_1, ..., x_{N+M} ~ uniform on the unit sphere S^{d-1}        (the paper's x = g / |g|, g ~ N(0, I))
  (f(x_1), ..., f(x_{N+M})) ~ N(0, K),  K_ij = k(x_i, x_j)        (an exact GP draw on those points)
  y_i = f(x_i) + noise_std eps_i,  eps_i ~ N(0, 1)

with the kernel (`kernel`, s = x . x', c = `kernel_scale`)
  "linear"  k = c s                 (the GP of f(x) = w . x, w ~ N(0, c I))
  "relu"    k = max(c s, 0)
  "exp"     k = exp(c s)            (the paper's exp(x . x' / (2 sigma^2)) at sigma = 1 is c = 1/2)

i.e. k(x, x') = h(c x . x') for the attention non-linearity h of the same name
(`icl.models.lsa.KERNEL_ATTENTIONS`, and h = identity for "linear").

**ReLU is not a positive semi-definite kernel.** relu(x . x') on the sphere has negative
Gegenbauer coefficients (|t| = P_0 / 2 + 5 P_2 / 8 - 3 P_4 / 16 + ... on S^2): at d = 5 the Gram
matrix of 21 random points always has eigenvalues near -0.25. No GP has it as covariance. Like the
paper's code (`generate_data_inplace`: eigh, then |eigenvalues|^(1/2)), the "relu" labels are drawn
with the covariance |K| = Q |Lambda| Q^T of the Gram matrix K = Q Lambda Q^T of the task's N + M
points (its matrix absolute value; K itself where K is PSD).
`label_covariance` is the covariance actually used, for every kernel.

The draw: f = L z (z ~ N(0, I) of its own key), L the Cholesky factor of K + jitter I for the PSD
kernels ("linear", "exp"), L = Q (|Lambda| + jitter)^(1/2) Q^T (the symmetric root) for "relu"; then the noise from a third
key. `jitter` (an absolute variance added to the diagonal) keeps the factorisation defined where K
is singular (the linear kernel has rank d < N + M); it is a negligible extra label noise of
variance `jitter`. The factorisation runs in the dtype of the batch (float32 in training, float64
under x64); tests/test_kernel_gp.py checks finiteness in float32 at the study's sizes.

The Bayes-optimal prediction of y_q (the Gaussian conditional mean under `label_covariance`; for the
PSD kernels kernel ridge with the true kernel and ridge noise_std^2 + jitter) is
`icl.analysis.kernel_attention.bayes_prediction`. Tasks have no
weight vector (`Batch.w` is None; the linear kernel is linear regression with w ~ N(0, c I) in law).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl.tasks.base import Batch, check_non_negative, check_positive_int, register

KERNELS = ("linear", "relu", "exp")


def dot_product_kernel(kind: str, x1: jax.Array, x2: jax.Array, scale: float = 1.0) -> jax.Array:
    """k(x, x') = h(scale * x . x') for `kind` in KERNELS: x1 [..., P, d], x2 [..., Q, d] -> [..., P, Q]."""
    s = scale * jnp.einsum("...pd,...qd->...pq", x1, x2)
    if kind == "linear":
        return s
    if kind == "relu":
        return jax.nn.relu(s)
    if kind == "exp":
        return jnp.exp(s)
    raise ValueError(f"dot_product_kernel: kind must be one of {KERNELS}, got {kind!r}")


@register("kernel_gp")
@dataclasses.dataclass(frozen=True)
class KernelGP:
    """Gaussian-process labels with a dot-product kernel on the sphere; see the module docstring."""

    baselines: ClassVar[tuple[str, ...]] = ("gd", "least_squares")

    d: int = 5
    n_ctx: int = 20
    n_query: int = 1
    kernel: str = "exp"
    kernel_scale: float = 1.0
    noise_std: float = 0.0
    jitter: float = 1e-6

    def __post_init__(self):
        name = "kernel_gp task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        if self.kernel not in KERNELS:
            raise ValueError(f"{name}: kernel must be one of {KERNELS}, got {self.kernel!r}")
        check_non_negative(name, noise_std=self.noise_std, jitter=self.jitter)
        if not isinstance(self.kernel_scale, (int, float)) or isinstance(self.kernel_scale, bool) or not self.kernel_scale > 0:
            raise ValueError(f"{name}: kernel_scale must be a number > 0, got {self.kernel_scale!r}")
        if self.noise_std == 0 and self.jitter == 0:
            raise ValueError(f"{name}: needs jitter > 0 or noise_std > 0 (the Gram matrix can be singular)")

    @property
    def diagonal(self) -> float:
        """The variance added to the Gram matrix's diagonal: noise_std^2 + jitter."""
        return self.noise_std**2 + self.jitter

    def gram(self, x: jax.Array) -> jax.Array:
        """The noiseless Gram matrix k(x_i, x_j) of points x [..., P, d]: [..., P, P]."""
        return dot_product_kernel(self.kernel, x, x, self.kernel_scale)

    def factor(self, x: jax.Array) -> jax.Array:
        """L with L L^T = `label_covariance(x)`: [..., P, P] (module docstring)."""
        k = self.gram(x)
        if self.kernel == "relu":
            evals, evecs = jnp.linalg.eigh(k)
            # the symmetric square root: unique, whatever basis eigh picks in a degenerate eigenspace
            return jnp.einsum("...pk,...k,...qk->...pq", evecs, jnp.sqrt(jnp.abs(evals) + self.jitter), evecs)
        return jnp.linalg.cholesky(k + self.jitter * jnp.broadcast_to(jnp.eye(k.shape[-1], dtype=k.dtype), k.shape))

    def label_covariance(self, x: jax.Array) -> jax.Array:
        """The covariance of the noiseless labels f at the points x [..., P, d]: K + jitter I for
        "linear" and "exp", |K| + jitter I (the matrix absolute value, the paper's) for "relu"."""
        k = self.gram(x)
        eye = jnp.broadcast_to(jnp.eye(k.shape[-1], dtype=k.dtype), k.shape)
        if self.kernel == "relu":
            evals, evecs = jnp.linalg.eigh(k)
            return jnp.einsum("...pk,...k,...qk->...pq", evecs, jnp.abs(evals), evecs) + self.jitter * eye
        return k + self.jitter * eye

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        key_x, key_f, key_noise = jax.random.split(key, 3)
        n_points = self.n_ctx + self.n_query
        g = jax.random.normal(key_x, (batch_size, n_points, self.d))
        x = g / jnp.linalg.norm(g, axis=-1, keepdims=True)  # uniform on the sphere
        f = jnp.einsum("bpq,bq->bp", self.factor(x), jax.random.normal(key_f, (batch_size, n_points), x.dtype))
        y = f + self.noise_std * jax.random.normal(key_noise, (batch_size, n_points), x.dtype)
        return Batch.split(x, y, self.n_ctx)
