"""Claim 18: the reduced linear-attention model of Lu, Letey, Zavatone-Veth, Maiti & Pehlevan (PNAS
2025, "Asymptotic theory of in-context learning by linear attention"), trained in closed form at
finite d: double descent in the number of pretraining sequences, and memorisation -> in-context
learning with task diversity.

**Data** (general input scale s: the paper's tokens have s = 1/d, the codebase's `linear_pool` s = 1).
x ~ N(0, s I_d), y = w . x + eps, eps ~ N(0, rho); fresh tasks w ~ N(0, I_d); a pool of k tasks
w_1..w_k ~ N(0, I_d) drawn once, each pretraining sequence picking one uniformly. A sequence has
l context points and one query (x_q, y_q). Scaling of the paper: l = alpha d, k = kappa d,
n = tau d^2 pretraining sequences.

**Model.** With the context statistic g = (1 / (s l)) sum_i y_i x_i (E[g | w] = w; the paper's
(d / l) sum_i y_i x_i at s = 1/d), the prediction is bilinear,
    y_hat = x_q^T Gamma g = <Gamma, h>_F,      h = x_q g^T  (vec: h[a d + b] = x_q[a] g[b]),
linear in the d^2 entries of Gamma, so training is a linear regression on the features h
(`features`). We use the d x d form (the part of a one-layer LSA's output linear in the labels,
`icl.weights.preconditioner`: Gamma = N Gamma_repo); the paper's H_Z may carry more columns.

**Training** (`fit_gamma`): ridge on n sequences,
    Gamma_hat = argmin (1/n) sum_mu (y_q^mu - <Gamma, h^mu>)^2 + s lam ||Gamma||_F^2
              = (H^T H + n s lam I)^-1 H^T y      (H [n, d^2]; lam = 0: the minimum-norm interpolant),
i.e. a penalty (n / d) lam ||Gamma||_F^2 on the summed loss at s = 1/d. Gradient flow from 0 on
the squared loss converges to the same (lam = 0: minimum-norm) solution. H^T H has rank
min(n, d^2): at lam -> 0 the interpolation threshold is n = d^2 (tau = 1).

**Exact test error of any Gamma** (`error_given_task`, no sampling). With u_i = x_i / sqrt(s),
g = S w + (1 / (sqrt(s) l)) sum_i u_i eps_i, S = (1/l) sum_i u_i u_i^T, and the Wishart moment
E[S w w^T S] = (1 + 1/l) w w^T + (|w|^2 / l) I:
    E[g g^T | w] = (1 + 1/l) w w^T + ((|w|^2 + rho / s) / l) I,
    e(Gamma; w) = E (y_q - y_hat)^2 = rho + s [ |w|^2 - 2 w^T Gamma w + (1 + 1/l) |Gamma w|^2
                                               + ((|w|^2 + rho / s) / l) ||Gamma||_F^2 ].
Fresh tasks (`fresh_error`, E over w ~ N(0, I)):
    e_fresh(Gamma) = rho + s [ d - 2 tr Gamma + C ||Gamma||_F^2 ],   C = 1 + (1 + d + rho / s) / l,
minimised by Gamma = I / C (`best_fresh`): e* = rho + s d (1 - 1/C) (the paper's scale s = 1/d:
e* = rho + 1 - 1/C, C -> 1 + (1 + rho) / alpha). Pool tasks (`pool_error`): the mean of e(Gamma; w_j)
over the pool. The zero predictor: rho + s d (rho + 1 at s = 1/d).

**Infinitely many sequences** (`gamma_infinite`, tau -> infinity at finite d): the population
objective E_pool e(Gamma; w) + s lam ||Gamma||_F^2 is minimised by
    Gamma_inf = W2 [ (1 + 1/l) W2 + ((m + rho / s) / l + lam) I ]^-1,   W2 = (1/k) sum_j w_j w_j^T, m = tr W2.
For k < d, W2 has rank k: Gamma_inf acts only on the pool's span, and a fresh task's component
outside it (a share 1 - k/d of |w|^2) is not predicted at all (memorisation: the pool error stays
low, the fresh error high). For k >> d, W2 -> I and Gamma_inf -> the best fresh Gamma (in-context
learning of any task). A one-layer LSA trained online (fresh sequences every step, no weight
decay) on a pool is this tau = infinity, lam = 0 learner, plus terms outside the reduced model
(`icl.weights.preconditioner`: x_q^T A_xx X^T X b_x, a fixed linear function of x_q that can fit the
pool's mean, and (x_q . a_xy) y^T y b_y).

**Measurements.** `peak`: the location and height of the maximum of a curve over a log-spaced grid
(a parabola in log tau through the top three points). `memorisation_gap`: (e_fresh - e_pool) /
e_fresh.

The paper's asymptotic formulas (deterministic e^ICL(tau, alpha, kappa, rho, lam) through
self-consistent resolvent equations) are not implemented here: see paper_figures/README.md, claim 18.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

PAPER_SCALE = "paper"  # s = 1/d


def scale(d: int, s: float | str = PAPER_SCALE) -> float:
    """The input variance s (x ~ N(0, s I)): "paper" -> 1/d, or a number."""
    return 1.0 / d if s == PAPER_SCALE else float(s)


def sample_pool(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """k tasks w_j ~ N(0, I_d): [k, d]."""
    return rng.standard_normal((k, d))


def sample_sequences(rng: np.random.Generator, n: int, d: int, n_ctx: int, rho: float, s: float,
                     pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n sequences (pool None: a fresh w ~ N(0, I) for each; else one pool row each, uniformly):
    (x_ctx [n, l, d], y_ctx [n, l], x_q [n, d], y_q [n])."""
    w = rng.standard_normal((n, d)) if pool is None else pool[rng.integers(0, pool.shape[0], n)]
    x = np.sqrt(s) * rng.standard_normal((n, n_ctx + 1, d))
    y = np.einsum("nld,nd->nl", x, w) + np.sqrt(rho) * rng.standard_normal((n, n_ctx + 1))
    return x[:, :n_ctx], y[:, :n_ctx], x[:, n_ctx], y[:, n_ctx]


def context_statistic(x_ctx: np.ndarray, y_ctx: np.ndarray, s: float) -> np.ndarray:
    """g = (1 / (s l)) sum_i y_i x_i: [n, d]."""
    return np.einsum("nl,nld->nd", y_ctx, x_ctx) / (s * x_ctx.shape[1])


def features(x_ctx: np.ndarray, y_ctx: np.ndarray, x_q: np.ndarray, s: float) -> np.ndarray:
    """h = vec(x_q g^T) (row-major): [n, d^2]; <Gamma, h> = x_q^T Gamma g."""
    g = context_statistic(x_ctx, y_ctx, s)
    return np.einsum("na,nb->nab", x_q, g).reshape(len(x_q), -1)


def predict(gamma: np.ndarray, x_ctx: np.ndarray, y_ctx: np.ndarray, x_q: np.ndarray, s: float) -> np.ndarray:
    """x_q^T Gamma g: [n]."""
    return np.einsum("na,ab,nb->n", x_q, gamma, context_statistic(x_ctx, y_ctx, s))


def fit_gamma(h: np.ndarray, y: np.ndarray, lam: float, s: float) -> np.ndarray:
    """Ridge (1/n) |y - H vec Gamma|^2 + s lam |Gamma|_F^2 (lam = 0: minimum norm): Gamma [d, d]."""
    return solve_gram(h.T @ h, h.T @ y, len(y), [lam], s)[0]


def solve_gram(gram: np.ndarray, rhs: np.ndarray, n: int, lams, s: float) -> list[np.ndarray]:
    """Gamma for each lam from H^T H [p, p] and H^T y [p]: a Cholesky solve per lam > 0; lam = 0
    is the pseudo-inverse (one eigendecomposition, eigenvalues below 1e-10 x the largest dropped):
    [Gamma [d, d] per lam]."""
    d = int(round(np.sqrt(gram.shape[0])))
    out = []
    for lam in lams:
        if lam == 0:
            evals, evecs = np.linalg.eigh(gram)
            proj = evecs.T @ rhs
            keep = evals > 1e-10 * max(evals.max(), 1e-300)
            vec = evecs @ np.where(keep, proj / np.where(keep, evals, 1.0), 0.0)
        else:
            vec = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram + n * s * lam * np.eye(len(gram))), rhs)
        out.append(vec.reshape(d, d))
    return out


def error_given_task(gamma: np.ndarray, w: np.ndarray, n_ctx: int, rho: float, s: float) -> np.ndarray:
    """Exact e(Gamma; w) = E (y_q - x_q^T Gamma g)^2 over contexts, query and noise, per task: w [..., d] -> [...]."""
    w2 = np.sum(w**2, -1)
    gw = w @ gamma.T  # Gamma w
    quad = np.einsum("...a,...a->...", w, gw)
    fro = np.sum(gamma**2)
    return rho + s * (w2 - 2 * quad + (1 + 1 / n_ctx) * np.sum(gw**2, -1) + (w2 + rho / s) / n_ctx * fro)


def fresh_error(gamma: np.ndarray, n_ctx: int, rho: float, s: float) -> float:
    """Exact error on fresh tasks w ~ N(0, I): rho + s [d - 2 tr Gamma + C |Gamma|_F^2]."""
    d = gamma.shape[0]
    c = 1 + (1 + d + rho / s) / n_ctx
    return float(rho + s * (d - 2 * np.trace(gamma) + c * np.sum(gamma**2)))


def pool_error(gamma: np.ndarray, pool: np.ndarray, n_ctx: int, rho: float, s: float) -> float:
    """Exact error averaged over the pool's tasks."""
    return float(np.mean(error_given_task(gamma, pool, n_ctx, rho, s)))


def best_fresh(d: int, n_ctx: int, rho: float, s: float) -> dict:
    """The best Gamma for fresh tasks, I / C, and its error (the reduced model's ICL optimum)."""
    c = 1 + (1 + d + rho / s) / n_ctx
    return {"gamma_scale": 1 / c, "error": float(rho + s * d * (1 - 1 / c)), "zero": float(rho + s * d)}


def gamma_infinite(pool: np.ndarray, n_ctx: int, rho: float, s: float, lam: float = 0.0) -> np.ndarray:
    """The n -> infinity ridge solution on the pool (see the module docstring): [d, d]."""
    d = pool.shape[1]
    w2 = pool.T @ pool / pool.shape[0]
    m = np.trace(w2)
    return np.linalg.solve(((1 + 1 / n_ctx) * w2 + ((m + rho / s) / n_ctx + lam) * np.eye(d)).T, w2.T).T


def gamma_infinite_fresh(d: int, n_ctx: int, rho: float, s: float, lam: float = 0.0) -> np.ndarray:
    """kappa = infinity (W2 = I): (I / (1 + (1 + d + rho / s) / l + lam))."""
    return np.eye(d) / (1 + (1 + d + rho / s) / n_ctx + lam)


def gamma_infinite_with_mean(pool: np.ndarray, n_ctx: int, rho: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """The n -> infinity (lam = 0) solution of the reduced model plus a constant linear term,
    y_hat = x_q^T Gamma g + a . x_q (the route by which a full LSA layer can fit the pool's mean
    wbar = (1/k) sum_j w_j: its term x_q^T A_xx X^T X b_x ~ N s x_q^T A_xx b_x). The population loss
    E_pool e(Gamma; w) + s |a|^2 - 2 s a . (I - Gamma) wbar is quadratic in (vec Gamma, a); its
    normal equations (divided by 2 s) are
        [(1 + 1/l) I (x) W2 + ((m + rho / s) / l) I] vec Gamma + (a (x) wbar) = vec W2,
        (I (x) wbar^T) vec Gamma + a = wbar.
    Returns (Gamma [d, d], a [d]) (`error_with_mean` gives its errors)."""
    d = pool.shape[1]
    w2 = pool.T @ pool / pool.shape[0]
    wbar = pool.mean(0)
    m = np.trace(w2)
    q = (1 + 1 / n_ctx) * np.kron(np.eye(d), w2) + ((m + rho / s) / n_ctx) * np.eye(d * d)
    c = np.kron(np.eye(d), wbar[None, :])  # [d, d^2]: (a^T C vec Gamma) = a^T Gamma wbar
    system = np.block([[q, c.T], [c, np.eye(d)]])
    sol = np.linalg.solve(system, np.concatenate([w2.ravel(), wbar]))
    return sol[:d * d].reshape(d, d), sol[d * d:]


def error_with_mean(gamma: np.ndarray, a: np.ndarray, tasks: np.ndarray | None, n_ctx: int, rho: float, s: float) -> float:
    """Exact error of y_hat = x_q^T Gamma g + a . x_q, averaged over `tasks` [k, d] (None: fresh tasks)."""
    if tasks is None:
        return fresh_error(gamma, n_ctx, rho, s) + s * float(a @ a)
    cross = np.mean(tasks @ (np.eye(len(a)) - gamma).T @ a)  # mean_j a . (I - Gamma) w_j
    return pool_error(gamma, tasks, n_ctx, rho, s) + s * float(a @ a) - 2 * s * float(cross)


def learning_curve(rng: np.random.Generator, d: int, n_ctx: int, rho: float, ns, lams, s: float,
                   pool: np.ndarray | None = None, chunk: int = 2048) -> dict:
    """Errors of the ridge Gamma along nested training sets (the first n of one stream of
    max(ns) sequences), for each lam: {"fresh": [len(lams), len(ns)], "pool": same or None}."""
    ns = sorted(int(n) for n in ns)
    p = d * d
    gram, rhs = np.zeros((p, p)), np.zeros(p)
    fresh = np.zeros((len(lams), len(ns)))
    pooled = np.zeros((len(lams), len(ns))) if pool is not None else None
    done = 0
    for j, n in enumerate(ns):
        while done < n:
            m = min(chunk, n - done)
            xc, yc, xq, yq = sample_sequences(rng, m, d, n_ctx, rho, s, pool)
            h = features(xc, yc, xq, s)
            gram += h.T @ h
            rhs += h.T @ yq
            done += m
        for i, gamma in enumerate(solve_gram(gram, rhs, n, lams, s)):
            fresh[i, j] = fresh_error(gamma, n_ctx, rho, s)
            if pool is not None:
                pooled[i, j] = pool_error(gamma, pool, n_ctx, rho, s)
    return {"n": ns, "fresh": fresh, "pool": pooled}


def peak(x, y) -> dict:
    """Maximum of y over a log-spaced x grid: {"x", "height", "index", "interior"}; x refined by
    a parabola in log x through the top point and its neighbours when it is interior."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i = int(np.argmax(y))
    out = {"x": float(x[i]), "height": float(y[i]), "index": i, "interior": 0 < i < len(x) - 1}
    if out["interior"]:
        lx = np.log(x[i - 1:i + 2])
        a, b, c = np.polyfit(lx, y[i - 1:i + 2], 2)
        if a < 0:
            out["x"] = float(np.exp(np.clip(-b / (2 * a), lx[0], lx[-1])))
    return out


def memorisation_gap(fresh, pool) -> np.ndarray:
    """(e_fresh - e_pool) / e_fresh."""
    fresh, pool = np.asarray(fresh, float), np.asarray(pool, float)
    return (fresh - pool) / fresh


def kappa_crossing(kappa, gap, level: float) -> float | None:
    """The first kappa (log-linear interpolation) where `gap` falls below `level` (None: never)."""
    kappa, gap = np.asarray(kappa, float), np.asarray(gap, float)
    below = gap < level
    if not below.any():
        return None
    i = int(np.argmax(below))
    if i == 0:
        return float(kappa[0])
    lk = np.log(kappa[i - 1:i + 1])
    t = (gap[i - 1] - level) / (gap[i - 1] - gap[i])
    return float(np.exp(lk[0] + t * (lk[1] - lk[0])))
