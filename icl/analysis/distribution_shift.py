"""A one-layer LSA trained on x ~ N(0, Lambda), tested on shifted prompts (Zhang, Frei & Bartlett 2024, Sec. 4).

The trained layer (claim 1) predicts y_hat = x_q^T Gamma X^T y with Gamma ~ Gamma*(Lambda, N). With
S = X^T X, u = X^T eps, the error of any such predictor on a task w is
    y_hat - y_q = x_q^T (Gamma S - I) w + x_q^T Gamma u - eps_q,
so for test inputs x ~ N(0, Lambda'), any w independent of x with second moment M = E[w w^T]
(a mean mu and covariance C give M = mu mu^T + C) and label noise sigma (`shifted_loss`):
    2 L(Gamma) = tr(M E[(S Gamma^T - I) Lambda' (Gamma S - I)]) + sigma^2 (N tr(Gamma Lambda' Gamma^T Lambda') + 1),
    E[(S Gamma^T - I) Lambda' (Gamma S - I)] = N(N+1) Lambda' B Lambda' + N tr(B Lambda') Lambda'
                                               - N Lambda' Gamma^T Lambda' - N Lambda' Gamma Lambda' + Lambda',
with B = Gamma^T Lambda' Gamma and the Wishart moment E[S B S] = N(N+1) Lambda' B Lambda' + N tr(B Lambda') Lambda'
(`solvers.preconditioned_loss` is the case M = tau^2 I, Lambda' = Lambda). The loss sees the task
distribution only through M.

*Task shift* (Lambda' = Lambda, M != tau^2 I): Gamma S -> I as N grows whatever w is, and the best
Gamma for the shifted distribution (`best_gamma`, setting the gradient of L to zero)
    Gamma_M = M ((N + 1) Lambda' M + (tr(M Lambda') + sigma^2) I)^-1
is Gamma* itself for M = s^2 I and sigma = 0 (Gamma_M = Gamma* at M = tau^2 I with noise): the
trained layer stays the best one-layer LSA for the new tasks, or close to it.
*Covariate shift* (Lambda' != Lambda): Gamma* S' -> Lambda^-1 Lambda' != I, an error that does not
shrink with N; Gamma_M = Gamma*(Lambda') is far from the trained Gamma.
Least squares is blind to both: for N > d + 1 its loss is (`least_squares_loss`)
    0.5 sigma^2 (1 + E[x_q^T S^-1 x_q]) = 0.5 sigma^2 (1 + d / (N - d - 1))     (inverse Wishart mean)
for every Lambda' and every w. The Bayes-optimal learner for w ~ N(mu, s^2 I) is the posterior mean
(`posterior_mean`) mu + ridge(X, y - X mu, lam = sigma^2 / s^2).

*Context-length shift*: the layer has no 1/N in its attention, so trained at N it applies
Gamma*(N) at N' (claim 1: not length-robust). Zhang et al.'s layer divides by the prompt length;
for a one-layer LSA, whose query read-out is a sum over the context, that is exactly the trained
prediction times N / N' (`normalised`), i.e. preconditioned GD with Gamma* N / N'.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, runs, solvers
from icl.compare import Predictor
from icl.tasks.base import Batch
from icl.tasks.linear import LinearRegression

TRACK = 0.05  # |model / Gamma*-GD - 1| under every shift: "tracks preconditioned GD"
TASK_ORACLE = 1.15  # model / best one-layer LSA for the shifted tasks: "robust" under task shift
COVARIATE_ORACLE = 1.5  # ... at least this under every covariate shift: "fails"
COVARIATE_VS_LS = 5.0  # (model / LS) under the worst covariate shift / (model / LS) unshifted: "degrades markedly"
LS_UNAFFECTED = 0.05  # least squares' loss moves by at most this fraction under any shift


def second_moment(d: int, w_mean=None, w_std: float = 1.0) -> np.ndarray:
    """M = E[w w^T] = mu mu^T + w_std^2 I for w ~ N(mu, w_std^2 I): [d, d] float64."""
    mu = np.zeros(d) if w_mean is None else np.asarray(w_mean, np.float64)
    if mu.shape != (d,):
        raise ValueError(f"second_moment: w_mean must have shape ({d},), got {mu.shape}")
    return np.outer(mu, mu) + w_std**2 * np.eye(d)


def shifted_loss(gamma, sigma, n_ctx: int, w_moment, noise_std: float = 0.0) -> float:
    """0.5 E[(x_q^T Gamma X^T y - y_q)^2] for x ~ N(0, sigma), E[w w^T] = w_moment, N = n_ctx (module docstring)."""
    gamma, lam, m = (np.asarray(a, np.float64) for a in (gamma, sigma, w_moment))
    if not gamma.shape == lam.shape == m.shape or gamma.ndim != 2 or gamma.shape[0] != gamma.shape[1]:
        raise ValueError(f"shifted_loss: gamma {gamma.shape}, sigma {lam.shape}, w_moment {m.shape} must be equal square matrices")
    n = n_ctx
    b = gamma.T @ lam @ gamma
    inner = (n * (n + 1) * lam @ b @ lam + n * np.trace(b @ lam) * lam
             - n * lam @ gamma.T @ lam - n * lam @ gamma @ lam + lam)
    noise = n * np.trace(gamma @ lam @ gamma.T @ lam) + 1
    return float(0.5 * (np.trace(m @ inner) + noise_std**2 * noise))


def best_gamma(sigma, n_ctx: int, w_moment, noise_std: float = 0.0) -> np.ndarray:
    """argmin_Gamma `shifted_loss` = M ((N + 1) Lambda' M + (tr(M Lambda') + sigma^2) I)^-1: the best
    one-layer LSA (preconditioned GD step) for that test distribution."""
    lam, m = np.asarray(sigma, np.float64), np.asarray(w_moment, np.float64)
    d = lam.shape[0]
    return m @ np.linalg.inv((n_ctx + 1) * lam @ m + (np.trace(m @ lam) + noise_std**2) * np.eye(d))


def least_squares_loss(d: int, n_ctx: int, noise_std: float) -> float:
    """0.5 sigma^2 (1 + d / (N - d - 1)): least squares' loss for Gaussian x of any covariance and any w (N > d + 1)."""
    if n_ctx <= d + 1:
        raise ValueError(f"least_squares_loss: needs N > d + 1 (finite inverse-Wishart mean), got N = {n_ctx}, d = {d}")
    return 0.5 * noise_std**2 * (1 + d / (n_ctx - d - 1))


def posterior_mean(x_ctx, y_ctx, x_query, w_mean, w_std: float, noise_std: float) -> jax.Array:
    """E[y_q | context] for w ~ N(w_mean, w_std^2 I), eps ~ N(0, noise_std^2): x_q . mu + ridge(X, y - X mu,
    lam = noise_std^2 / w_std^2) (least squares on y - X mu when noise_std = 0). x_query [B, M, d] -> [B, M]."""
    mu = jnp.asarray(w_mean, x_ctx.dtype)  # [d]
    resid = y_ctx - jnp.einsum("bnd,d->bn", x_ctx, mu)
    lam = (noise_std / w_std) ** 2
    return solvers.ridge(x_ctx, resid, x_query, lam) + jnp.einsum("bmd,d->bm", x_query, mu)


@dataclasses.dataclass(frozen=True)
class ShiftedLinear:
    """A test distribution: the inputs (covariance, input_scale, N, noise) of the linear task `base`,
    with task vectors w ~ N(w_mean, (w_scale tau)^2 I) (tau = base.weight_std) instead of N(0, tau^2 I).
    The same key gives the same inputs as `base.sample` and the same standard-normal draws of w, so
    every shift of one base sees the same prompts (common random numbers)."""

    base: LinearRegression
    w_mean: tuple | None = None
    w_scale: float = 1.0

    def __post_init__(self):
        if self.base.input_dist != "gaussian" or not self.base.weight_std > 0:
            raise ValueError("ShiftedLinear: needs Gaussian inputs (input_dist='gaussian', for the closed forms) and weight_std > 0")
        if self.w_mean is not None:
            object.__setattr__(self, "w_mean", tuple(float(v) for v in np.ravel(self.w_mean)))
            if len(self.w_mean) != self.base.d:
                raise ValueError(f"ShiftedLinear: w_mean needs {self.base.d} entries, got {len(self.w_mean)}")
        if not self.w_scale > 0:
            raise ValueError(f"ShiftedLinear: w_scale must be > 0, got {self.w_scale!r}")

    d = property(lambda self: self.base.d)
    n_ctx = property(lambda self: self.base.n_ctx)
    noise_std = property(lambda self: self.base.noise_std)
    input_covariance = property(lambda self: self.base.input_covariance)
    w_std = property(lambda self: self.w_scale * self.base.weight_std)

    @property
    def mean(self) -> np.ndarray:
        return np.zeros(self.d) if self.w_mean is None else np.asarray(self.w_mean)

    @property
    def w_moment(self) -> np.ndarray:
        """E[w w^T] [d, d]."""
        return second_moment(self.d, self.mean, self.w_std)

    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        base = self.base.sample(key, batch_size)  # the inputs and base's w (w = tau z)
        z = base.w / self.base.weight_std  # the same standard-normal draws
        w = jnp.asarray(self.mean, z.dtype)[None] + self.w_std * z  # [B, d]
        x = jnp.concatenate([base.x_ctx, base.x_query], axis=1)  # [B, N+M, d]
        clean = jnp.einsum("bnd,bd->bn", x, base.w)
        noise = jnp.concatenate([base.y_ctx, base.y_query], axis=1) - clean  # base's label noise, reused
        return Batch.split(x, jnp.einsum("bnd,bd->bn", x, w) + noise, self.n_ctx, w)


def covariate_shifts(task: LinearRegression, factors, rotation_seed: int = 1) -> dict[str, LinearRegression]:
    """{name: task} with Lambda' = c Lambda for each c of `factors` (`compare.input_scale_variants` at
    alpha = sqrt(c)), the same spectrum in other eigenvectors ("x_rotated", covariance_seed =
    rotation_seed) and Lambda' = tr(Lambda) / d I ("x_isotropic", the same trace)."""
    scaled = compare.input_scale_variants(task, [np.sqrt(c) for c in factors])
    out = {f"x_scale_{c:g}": t for c, t in zip(factors, scaled.values(), strict=True)}
    if task.covariance == "rotated" and task.covariance_seed == rotation_seed:
        raise ValueError(f"covariate_shifts: rotation_seed {rotation_seed} is the training task's own rotation")
    out["x_rotated"] = dataclasses.replace(task, covariance="rotated", covariance_seed=rotation_seed)
    iso = np.trace(task.input_covariance) / task.d * np.eye(task.d)
    out["x_isotropic"] = dataclasses.replace(task, covariance=tuple(map(tuple, iso)))
    return out


def make_shifts(task: LinearRegression, task_shifts: dict, factors) -> dict[str, tuple[str, ShiftedLinear]]:
    """{name: (kind, test distribution)}: "none" (the training distribution), the task shifts
    {name: (mean of w or None, scale of its std)} and `covariate_shifts(task, factors)`."""
    out = {"none": ("none", ShiftedLinear(task))}
    out |= {name: ("task", ShiftedLinear(task, w_mean=mean, w_scale=scale)) for name, (mean, scale) in task_shifts.items()}
    return out | {name: ("covariate", ShiftedLinear(t)) for name, t in covariate_shifts(task, factors).items()}


def measure(predictors: dict[str, Predictor], batch: Batch) -> dict[str, tuple[float, float]]:
    """{name: (mean, standard error)} of 0.5 (y_hat - y_q)^2 over the batch's queries (float64)."""
    out = {}
    for name, predict in predictors.items():
        sq = 0.5 * np.asarray(predict(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query, np.float64) ** 2
        out[name] = (float(sq.mean()), float(sq.std() / np.sqrt(sq.size)))
    return out


def _gd(gamma: np.ndarray) -> Predictor:
    return lambda xc, yc, xq: solvers.preconditioned_gd(xc, yc, xq, gamma_matrix=jnp.asarray(gamma, xc.dtype))


def evaluate(shift: ShiftedLinear, models: list, gammas: list[np.ndarray], gamma_train: np.ndarray, train_noise: float,
             train_w_std: float, key: jax.Array, n_tasks: int) -> dict:
    """Every learner on `n_tasks` tasks of `shift`: the trained models (one per seed), preconditioned
    GD with each seed's own Gamma, with the training Gamma* (`gamma_train`) and with the best Gamma
    for the shifted distribution (`best_gamma`), least squares, ridge at the training prior's
    lam = sigma^2 / tau^2 and the shifted prior's posterior mean; measured (mean, standard error)
    and, for the preconditioned and least-squares learners, in closed form; and the per-seed ratios
    model / learner on the same tasks."""
    lam, m, noise, n = shift.input_covariance, shift.w_moment, shift.noise_std, shift.n_ctx
    oracle = best_gamma(lam, n, m, noise)
    predictors = {f"model_{s}": model.predict for s, model in enumerate(models)}
    predictors |= {f"own_gamma_{s}": _gd(g) for s, g in enumerate(gammas)}
    predictors |= {
        "gamma_star_gd": _gd(gamma_train),
        "best_gamma_gd": _gd(oracle),
        "least_squares": solvers.least_squares,
        "ridge_train_prior": lambda xc, yc, xq: solvers.ridge(xc, yc, xq, (train_noise / train_w_std) ** 2),
        "bayes_shifted_prior": lambda xc, yc, xq: posterior_mean(xc, yc, xq, shift.mean, shift.w_std, noise),
    }
    got = measure(predictors, shift.sample(key, n_tasks))
    model = [got[f"model_{s}"][0] for s in range(len(models))]
    learners = ("gamma_star_gd", "best_gamma_gd", "least_squares", "ridge_train_prior", "bayes_shifted_prior")
    return {
        "w_mean_norm": float(np.linalg.norm(shift.mean)), "w_std": shift.w_std,
        "sigma_eigenvalues": np.linalg.eigvalsh(lam).tolist(),
        "model": runs.stats(model), "model_stderr": float(np.mean([got[f"model_{s}"][1] for s in range(len(models))])),
        "own_gamma_gd": [got[f"own_gamma_{s}"][0] for s in range(len(models))],
        "measured": {k: got[k][0] for k in learners}, "stderr": {k: got[k][1] for k in learners},
        "closed_form": {
            "gamma_star_gd": shifted_loss(gamma_train, lam, n, m, noise),
            "best_gamma_gd": shifted_loss(oracle, lam, n, m, noise),
            "trained_gammas": [shifted_loss(g, lam, n, m, noise) for g in gammas],
            "least_squares": least_squares_loss(shift.d, n, noise) if n > shift.d + 1 else None,
        },
        "model_over": {k: runs.stats([v / got[k][0] for v in model]) for k in learners},
    }


def length_rows(models: list, gamma_train: np.ndarray, task: LinearRegression, test_lengths, key: jax.Array, n_tasks: int) -> dict:
    """At each N' of `test_lengths` (`compare.context_length_variants`, `compare.sweep`, tasks from `key`):
    the trained models as they are and `normalised` (times N / N'), preconditioned GD with Gamma*(N),
    Gamma*(N) N / N' and Gamma*(N'), least squares; and the closed forms of the preconditioned ones."""
    n, lam, noise, tau = task.n_ctx, task.input_covariance, task.noise_std, task.weight_std
    predictors = {f"model_{s}": m.predict for s, m in enumerate(models)}
    predictors |= {f"normalised_{s}": normalised(m.predict, n) for s, m in enumerate(models)}
    predictors |= {"gamma_star_gd": _gd(gamma_train), "gamma_star_gd_normalised": normalised(_gd(gamma_train), n),
                   "least_squares": solvers.least_squares}
    variants = compare.context_length_variants(task, test_lengths)
    swept = compare.sweep(predictors, variants, key, n_tasks)
    m_iso = tau**2 * np.eye(task.d)
    rows = []
    for i, n_test in enumerate(variants):
        best = solvers.gamma_star(lam, n_test, noise, tau)
        rows.append({
            "n_test": n_test,
            "model": runs.stats([swept[f"model_{s}"][i] for s in range(len(models))]),
            "model_normalised": runs.stats([swept[f"normalised_{s}"][i] for s in range(len(models))]),
            "measured": {k: swept[k][i] for k in ("gamma_star_gd", "gamma_star_gd_normalised", "least_squares")},
            "closed_form": {
                "gamma_star_gd": shifted_loss(gamma_train, lam, n_test, m_iso, noise),
                "gamma_star_gd_normalised": shifted_loss(gamma_train * n / n_test, lam, n_test, m_iso, noise),
                "best_gamma_gd": shifted_loss(best, lam, n_test, m_iso, noise),
                "least_squares": least_squares_loss(task.d, n_test, noise) if n_test > task.d + 1 else None,
            },
        })
    return {"rows": rows}


def normalised(predict: Predictor, n_train: int) -> Predictor:
    """The prediction times N_train / N' (N' the context's length): a one-layer LSA with Zhang et al.'s 1/N in its attention."""
    return lambda xc, yc, xq: predict(xc, yc, xq) * (n_train / xc.shape[1])


def verdict(shifts: dict[str, dict], kinds: dict[str, str], lengths: dict | None = None) -> dict:
    """The claim's tests on `evaluate` results by shift name (`kinds`: "none", "task" or "covariate"),
    each seed's model against the learners on the same tasks:
      tracks        every shift: |model / Gamma*-GD - 1| <= TRACK (the prediction is preconditioned GD's);
      task_robust   task shifts: model / best one-layer LSA for the shift <= TASK_ORACLE;
      covariate_fails  covariate shifts: model / best one-layer LSA >= COVARIATE_ORACLE in each, and
                    (model / LS) under the worst one >= COVARIATE_VS_LS x unshifted, least squares
                    within LS_UNAFFECTED of its unshifted loss everywhere;
      length_robust (with `lengths`, `length_rows`) the normalised model's loss does not grow with N'
                    (and the raw model's does, past the training N: informational).
    "held": all; "did not hold": the tracking, or both robustness and failure; else "held in part"."""
    def worst(names, key, fn):
        return max(fn(v) for name in names for v in shifts[name]["model_over"][key]["values"])

    task = [k for k, v in kinds.items() if v == "task"]
    cov = [k for k, v in kinds.items() if v == "covariate"]
    base = next(k for k, v in kinds.items() if v == "none")
    tracking = worst(list(kinds), "gamma_star_gd", lambda r: abs(r - 1))
    task_ratio = worst(task, "best_gamma_gd", lambda r: r)
    cov_ratio = min(min(shifts[k]["model_over"]["best_gamma_gd"]["values"]) for k in cov)
    vs_ls = max(shifts[k]["model_over"]["least_squares"]["mean"] for k in cov) / shifts[base]["model_over"]["least_squares"]["mean"]
    ls0 = shifts[base]["measured"]["least_squares"]
    ls_move = max(abs(shifts[k]["measured"]["least_squares"] / ls0 - 1) for k in kinds)
    out = {
        "max_tracking_gap": tracking, "tracks": tracking <= TRACK,
        "max_task_over_best": task_ratio, "task_robust": task_ratio <= TASK_ORACLE,
        "min_covariate_over_best": cov_ratio, "covariate_vs_ls_degradation": vs_ls, "least_squares_max_move": ls_move,
        "covariate_fails": cov_ratio >= COVARIATE_ORACLE and vs_ls >= COVARIATE_VS_LS and ls_move <= LS_UNAFFECTED,
        "thresholds": {"track": TRACK, "task_oracle": TASK_ORACLE, "covariate_oracle": COVARIATE_ORACLE,
                       "covariate_vs_ls": COVARIATE_VS_LS, "ls_unaffected": LS_UNAFFECTED},
    }
    legs = [out["task_robust"], out["covariate_fails"]]
    if lengths is not None:
        norm = [r["model_normalised"]["mean"] for r in lengths["rows"]]
        out["length_robust"] = bool(all(b <= a * (1 + TRACK) for a, b in zip(norm, norm[1:], strict=False)))
        legs.append(out["length_robust"])
    out["verdict"] = ("did not hold" if not out["tracks"] or not (out["task_robust"] or out["covariate_fails"])
                      else "held" if all(legs) else "held in part")
    return out
