"""Linear regression in context: `y = w . x + eps` (von Oswald et al. 2023; Garg et al. 2022).

Prior:
  x ~ U(-a, a)^d                          (input_dist="uniform", a = input_range; the official
                                           code's `input_range = 1` gives width 1, i.e. a = 0.5)
  x ~ N(0, Sigma)                          (input_dist="gaussian"; Sigma isotropic, diagonal with
                                           a condition number, randomly rotated, or given)
  w ~ N(0, tau^2 I),  eps ~ N(0, sigma^2)  (tau = weight_std, sigma = noise_std)
  w ~ N(m 1, tau^2 I)                      (m = weight_mean != 0: task vectors with a non-zero
                                           mean, |mu| = |m| sqrt(d); m = 0 draws the same w as before)
and every x is finally multiplied by `input_scale` (the out-of-distribution alpha).
Labels of context and query points carry the same noise.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from icl.curriculum import truncate_dims
from icl.tasks.base import Batch, check_non_negative, check_positive_int, register

_COVARIANCES = ("isotropic", "diagonal", "rotated")


def _spectrum(d: int, condition_number: float) -> np.ndarray:
    """Eigenvalues geometrically spaced from kappa to 1, rescaled to mean 1 (so tr Sigma = d)."""
    eig = np.geomspace(condition_number, 1.0, d) if d > 1 else np.ones(1)
    return eig * d / eig.sum()


@register("linear")
@dataclasses.dataclass(frozen=True)
class LinearRegression:
    """Noisy linear regression tasks; see the module docstring for the prior."""

    baselines: ClassVar[tuple[str, ...]] = (
        "gd", "least_squares", "ridge", "bayes_ridge", "preconditioned_gd", "newton"
    )

    d: int = 10
    n_ctx: int = 10
    n_query: int = 1
    input_dist: str = "uniform"
    input_range: float = 0.5
    covariance: str | tuple = "isotropic"
    condition_number: float = 1.0
    covariance_seed: int = 0
    input_scale: float = 1.0
    weight_std: float = 1.0
    noise_std: float = 0.0
    weight_mean: float = 0.0

    def __post_init__(self):
        name = "linear task"
        check_positive_int(name, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative(name, weight_std=self.weight_std, noise_std=self.noise_std)
        if self.input_dist not in ("uniform", "gaussian"):
            raise ValueError(f"{name}: input_dist must be 'uniform' or 'gaussian', got {self.input_dist!r}")
        if not self.input_range > 0 or not self.input_scale > 0:
            raise ValueError(f"{name}: input_range and input_scale must be > 0")
        if not self.condition_number >= 1:
            raise ValueError(f"{name}: condition_number must be >= 1, got {self.condition_number!r}")
        if isinstance(self.covariance, str):
            if self.covariance not in _COVARIANCES:
                raise ValueError(
                    f"{name}: covariance must be one of {_COVARIANCES} or a d x d matrix, "
                    f"got {self.covariance!r}"
                )
        else:
            matrix = np.asarray(self.covariance, dtype=np.float64)
            if matrix.shape != (self.d, self.d):
                raise ValueError(f"{name}: covariance matrix must be {self.d} x {self.d}, got {matrix.shape}")
            if not np.allclose(matrix, matrix.T) or np.linalg.eigvalsh(matrix).min() <= 0:
                raise ValueError(f"{name}: covariance matrix must be symmetric positive definite")
            object.__setattr__(self, "covariance", tuple(map(tuple, matrix.tolist())))
        if self.input_dist == "uniform" and (self.covariance != "isotropic" or self.condition_number != 1):
            raise ValueError(f"{name}: a covariance or condition_number needs input_dist='gaussian'")

    def default_baselines(self) -> tuple[str, ...]:
        """GD (optimal lr) and least squares always; with label noise also ridge at a tenth and ten
        times the Bayes-optimal lam = sigma^2 / tau^2 and at it (bayes_ridge); with a non-isotropic
        input covariance also preconditioned GD (Gamma*) and Newton–Schulz."""
        out = ["gd", "least_squares"]
        if self.noise_std > 0:
            lam = (self.noise_std / self.weight_std) ** 2
            out += [f"ridge(lam={lam / 10:.6g})", f"ridge(lam={lam * 10:.6g})", "bayes_ridge"]
        if self.input_dist == "gaussian" and self.covariance != "isotropic":
            out += ["preconditioned_gd", "newton"]
        return tuple(out)

    @functools.cached_property
    def input_covariance(self) -> np.ndarray:
        """Sigma = Cov(x) as a [d, d] float64 array, including `input_scale`^2."""
        d = self.d
        if self.input_dist == "uniform":
            return np.eye(d) * self.input_range**2 / 3 * self.input_scale**2
        if isinstance(self.covariance, tuple):
            sigma = np.asarray(self.covariance)
        elif self.covariance == "isotropic":
            sigma = np.eye(d)
        else:
            eig = _spectrum(d, self.condition_number)
            sigma = np.diag(eig)
            if self.covariance == "rotated":
                rng = np.random.default_rng(self.covariance_seed)
                q, r = np.linalg.qr(rng.standard_normal((d, d)))
                q = q * np.sign(np.diag(r))  # Haar-distributed rotation
                sigma = q @ sigma @ q.T
        return sigma * self.input_scale**2

    def _inputs(self, key: jax.Array, batch_size: int) -> jax.Array:
        n_points = self.n_ctx + self.n_query
        shape = (batch_size, n_points, self.d)
        size = batch_size * n_points * self.d  # drawn flat: measurably faster than an nd draw
        if self.input_dist == "uniform":
            a = self.input_range
            x = jax.random.uniform(key, (size,), minval=-a, maxval=a).reshape(shape)
        else:
            x = jax.random.normal(key, (size,)).reshape(shape)
            if self.covariance != "isotropic":
                chol = jnp.asarray(np.linalg.cholesky(self.input_covariance / self.input_scale**2), x.dtype)
                x = x @ chol.T
        return x * self.input_scale  # [B, N+M, d]

    def sample(self, key: jax.Array, batch_size: int, active_dims=None) -> Batch:
        """B tasks; with `active_dims` (a curriculum, `icl.curriculum`), inputs have coordinates
        >= active_dims set to 0 before labelling (w is drawn as without it)."""
        key_x, key_w, key_noise = jax.random.split(key, 3)
        x = self._inputs(key_x, batch_size)  # [B, N+M, d]
        if active_dims is not None:
            x = truncate_dims(x, active_dims)
        w = self.weight_std * jax.random.normal(key_w, (batch_size, self.d), x.dtype)  # [B, d]
        if self.weight_mean != 0:
            w = w + self.weight_mean
        y = jnp.einsum("bnd,bd->bn", x, w)  # [B, N+M]
        if self.noise_std > 0:
            y = y + self.noise_std * jax.random.normal(key_noise, y.shape, y.dtype)
        n = self.n_ctx
        return Batch.split(x, y, n, w)
