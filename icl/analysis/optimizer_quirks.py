"""Optimiser quirks of a shallow linear transformer (Ahn, Cheng, Song, Yun, Jadbabaie & Sra, ICLR 2024,
"Linear attention is (maybe) all you need (to understand transformer optimization)"): does a few-layer
linear LSA trained on in-context linear regression train much faster with Adam than with tuned SGD,
and is its stochastic gradient noise heavy-tailed?

Training (`train_runs`). R runs, one per (lr, seed) pair, in one vmapped program. The run of seed s
starts from `trainer.init_params(config, s)` and at step t trains on
`config.task.sample(fold_in(k_s, t), B)`, k_s the data key of seed s (`trainer.data_keys`): the
initial weights, task stream and loss (`trainer.objective_loss`) of `icl.train` for that seed, so
every optimiser sees the same tasks in the same order. The update is theta <- theta - lr * u_t with
the direction u_t of
    adam      m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
              u = m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
              (optax.scale_by_adam; b1 0.9, b2 0.999, eps 1e-8: optax.adam's defaults)
    sgd       u = g
    momentum  m <- g + mu m,  u = m   (heavy ball in optax.sgd's form, mu = 0.9)
No gradient clipping, a constant lr. Because lr only multiplies the direction, one compiled step
serves every lr of a grid. The held-out loss (`compare.loss`, half the mean squared error) is
evaluated every `eval_every` steps on one fixed set of held-out tasks.

Steps to a target (`steps_to_target`): the first evaluation step whose held-out loss is <= target;
its resolution is `eval_every`, and a run that never gets there has none (None).

Gradient noise (`gradient_noise`) at parameters theta: n minibatches of B fresh tasks, g_b the
gradient of minibatch b's loss, g_bar = (1/n) sum_b g_b (the full-batch gradient of all n B tasks),
noise xi_b = g_b - g_bar, and its norms r_b = ||xi_b||_2. Statistics of a sample r_1..r_n:
    kurtosis    K = mean (r - r_bar)^4 / (mean (r - r_bar)^2)^2   (Pearson, not excess: 3 for a
                Gaussian, 1.8 uniform, 6 Laplace, 9 exponential);
    Hill index  alpha_k = k / sum_{i=1..k} ln(r_(i) / r_(k+1)),  r_(1) >= r_(2) >= ... the order
                statistics, k the largest `tail_fraction` of the sample. For a Pareto tail
                P(R > r) = (r / r_m)^-alpha, the k log-spacings ln(r_(i) / r_(k+1)) are i.i.d.
                Exp(alpha) given r_(k+1), so 1 / alpha_k has mean 1 / alpha and standard deviation
                1 / (alpha sqrt(k)) (it is the maximum-likelihood estimate). A light tail has no
                finite index: alpha_k grows as the threshold moves out (for |N(0, 1)| and the top
                5 % it is ~6 at any n; the norm of a Gaussian vector concentrates and gives more,
                unless its covariance is ~rank one). alpha < ~3 (no third moment) is the heavy tail
                of the claim.
The Gaussian reference (`gaussian_reference`) draws n vectors
    z_b ~ N(0, C),  C = (n - 1)^-1 sum_j (xi_j - xi_bar)(xi_j - xi_bar)^T,
Gaussian with exactly the empirical covariance of the noise, and takes the same statistics of their
norms: what the noise would look like were it Gaussian with its own covariance. A second reference
is a model linear in its parameters on the same tasks (`linear_control_gradient`: y_hat = theta . x_q,
the "CNN-like" control of a well-conditioned landscape), whose per-task gradient
-(y_q - theta . x_q) x_q is a product of Gaussians (all moments finite).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from icl import compare, trainer
from icl.config import ExperimentConfig
from icl.precision import highest

DIRECTIONS = ("adam", "sgd", "momentum")
MOMENTUM = 0.9  # heavy-ball coefficient of "momentum"
TAIL_FRACTION = 0.05  # the Hill estimator uses the largest 5 % of the norms


def direction(name: str, momentum: float = MOMENTUM, clip: float = 0.0) -> optax.GradientTransformation:
    """The update direction u of optimiser `name` (module docstring), before the step -lr u; with
    clip > 0 the gradient is first clipped to global norm <= clip (optax.clip_by_global_norm)."""
    if name == "adam":
        opt = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8)
    elif name == "sgd":
        opt = optax.identity()
    elif name == "momentum":
        opt = optax.trace(decay=momentum, nesterov=False)
    else:
        raise ValueError(f"direction: name must be one of {', '.join(DIRECTIONS)}, got {name!r}")
    return optax.chain(optax.clip_by_global_norm(clip), opt) if clip else opt


def seed_config(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config with one seed, `seed` (its data key and initial weights are that seed's)."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed, n_seeds=1, seed_parallel=1))


def loss_fn(config: ExperimentConfig):
    """(params, batch) -> the training loss of `icl.train` (`trainer.objective_loss`)."""
    spec = trainer.model_spec(config)
    return lambda params, batch: trainer.objective_loss(config.train.objective, spec.model(params), batch)


def train_runs(config: ExperimentConfig, name: str, lrs, seeds, steps: int, eval_every: int, keep=(),
               eval_tasks: int = 2048, momentum: float = MOMENTUM, clip: float = 0.0) -> dict:
    """Train one run per (lr, seed) in `lrs` x `seeds` (lr-major) with direction `name`, batch
    `config.train.batch_size`, for `steps` steps (a multiple of `eval_every`).

    Returns {"lr": [R], "seed": [R], "steps": [E] (0, eval_every, ..., steps), "loss": [R, E] held-out
    loss (nan once a run has diverged), "train_loss": [R, steps / eval_every] mean training loss of
    each chunk, "params": {step: params [R, ...] for step in keep}, "wall_s"}.
    """
    if steps % eval_every:
        raise ValueError(f"train_runs: steps ({steps}) must be a multiple of eval_every ({eval_every})")
    grid = [(float(lr), int(s)) for lr in lrs for s in seeds]
    params = trainer.stack_seeds([trainer.init_params(config, s) for _, s in grid])
    keys = jnp.stack([trainer.data_keys(seed_config(config, s))[0] for _, s in grid])
    lr = jnp.asarray([g[0] for g in grid], jnp.result_type(float))
    opt = direction(name, momentum, clip)
    loss = loss_fn(config)
    batch_size = config.train.batch_size

    def one(p, state, key, rate, t):
        value, grads = jax.value_and_grad(loss)(p, config.task.sample(jax.random.fold_in(key, t), batch_size))
        updates, state = opt.update(grads, state, p)
        return jax.tree.map(lambda a, u: a - rate.astype(a.dtype) * u, p, updates), state, value

    step_all = jax.vmap(one, in_axes=(0, 0, 0, 0, None))

    @jax.jit
    def chunk(p, state, start):
        def body(carry, t):
            p, state = carry
            p, state, value = step_all(p, state, keys, lr, t)
            return (p, state), value

        (p, state), values = jax.lax.scan(body, (p, state), start + jnp.arange(eval_every))
        return p, state, jnp.mean(values, axis=0)

    eval_batch = config.task.sample(trainer.heldout_key(config, trainer.HeldOut.EVAL), eval_tasks)
    evaluate = jax.jit(highest(jax.vmap(loss, in_axes=(0, None))))
    state = jax.vmap(opt.init)(params)
    keep = set(keep)
    out = {"lr": [g[0] for g in grid], "seed": [g[1] for g in grid], "steps": [], "loss": [], "train_loss": [], "params": {}}
    started = time.perf_counter()
    for start in range(0, steps + 1, eval_every):
        out["steps"].append(start)
        out["loss"].append(np.asarray(evaluate(params, eval_batch), float))
        if start in keep:
            out["params"][start] = jax.tree.map(np.asarray, params)
        if start < steps:
            params, state, chunk_loss = chunk(params, state, jnp.asarray(start, jnp.int32))
            out["train_loss"].append(np.asarray(chunk_loss, float))
    out["loss"] = np.where(np.isfinite(out["loss"]), out["loss"], np.nan).T  # [R, E]
    out["train_loss"] = np.asarray(out["train_loss"]).T
    out["wall_s"] = time.perf_counter() - started
    return out


def pick_lr(lrs, final_loss) -> dict:
    """The grid's best lr by final held-out loss (mean over seeds of `final_loss` [n_lr, S]; a
    diverged (non-finite) run counts as +inf): {"best_lr", "best_index", "score" [n_lr], "at_edge"}."""
    final = np.asarray(final_loss, float)
    score = np.where(np.isfinite(final), final, np.inf).mean(axis=1)
    best = int(np.argmin(score))
    if not np.isfinite(score[best]):
        raise ValueError("pick_lr: every lr of the grid diverged")
    return {"best_lr": float(lrs[best]), "best_index": best, "score": score.tolist(), "at_edge": best in (0, len(score) - 1)}


def steps_to_target(steps, curve, target: float) -> int | None:
    """The first step of `steps` whose held-out loss `curve` is <= target; None if none (nan never is)."""
    hit = np.flatnonzero(np.asarray(curve, float) <= target)
    return int(np.asarray(steps)[hit[0]]) if hit.size else None


def speedup(steps_fast, steps_slow, horizon: int) -> dict:
    """Ratio of steps to a target, slow / fast, per seed pair (None: not reached). A slow run that
    never reaches it gives the lower bound horizon / fast (pass the first evaluation after the run),
    flagged `censored`; a fast one that never does gives None; a fast one there at step 0 counts 1."""
    ratio, censored = [], []
    for fast, slow in zip(steps_fast, steps_slow, strict=True):
        if fast is None:
            ratio.append(None), censored.append(False)
            continue
        fast = max(fast, 1)
        censored.append(slow is None)
        ratio.append((horizon if slow is None else slow) / fast)
    return {"ratio": ratio, "censored": censored}


# -- gradient noise ----------------------------------------------------------------------------------


def kurtosis(x, axis: int = 0) -> np.ndarray:
    """Pearson kurtosis mean (x - mean)^4 / var^2 along `axis` (3 for a Gaussian)."""
    x = np.asarray(x, float)
    centred = x - x.mean(axis=axis, keepdims=True)
    return np.mean(centred**4, axis=axis) / np.mean(centred**2, axis=axis) ** 2


def hill_index(r, tail_fraction: float = TAIL_FRACTION) -> float:
    """The Hill tail index of positive values r from their k = max(2, round(tail_fraction n)) largest
    (module docstring): k / sum_{i<=k} ln(r_(i) / r_(k+1))."""
    r = np.sort(np.asarray(r, float))[::-1]
    if r.ndim != 1 or r.size < 3 or np.any(r <= 0):
        raise ValueError("hill_index: needs at least 3 positive values")
    k = min(max(2, int(round(tail_fraction * r.size))), r.size - 1)
    return float(k / np.sum(np.log(r[:k] / r[k])))


def norm_statistics(noise, tail_fraction: float = TAIL_FRACTION) -> dict:
    """Statistics of noise vectors [n, P]: of their norms r (kurtosis, Hill index, mean, the 99th
    percentile and the maximum over the median) and the median over the coordinates that vary of
    the coordinate-wise kurtosis."""
    noise = np.asarray(noise, float)
    r = np.linalg.norm(noise, axis=1)
    varies = noise.std(axis=0) > 0  # parameters with no gradient (unused blocks) have no noise and no kurtosis
    median = float(np.median(r))
    return {
        "kurtosis": float(kurtosis(r)), "hill_index": hill_index(r, tail_fraction), "mean_norm": float(r.mean()),
        "p99_over_median": float(np.percentile(r, 99) / median), "max_over_median": float(r.max() / median),
        "coordinate_kurtosis_median": float(np.median(kurtosis(noise[:, varies], axis=0))) if varies.any() else float("nan"),
    }


def gaussian_reference(noise, key: jax.Array, n: int | None = None) -> np.ndarray:
    """n (default len(noise)) Gaussian vectors with exactly the empirical covariance C of `noise`
    [n_noise, P]: z = e diag(sqrt(lambda)) V^T with C = V diag(lambda) V^T and e [n, P] i.i.d. N(0, 1)."""
    noise = np.asarray(noise, float)
    centred = noise - noise.mean(axis=0, keepdims=True)
    lam, vecs = np.linalg.eigh(centred.T @ centred / (len(noise) - 1))
    e = np.asarray(jax.random.normal(key, (n or len(noise), noise.shape[1])), float)
    return (e * np.sqrt(np.maximum(lam, 0.0))[None]) @ vecs.T


def gradient_sampler(gradient, sample, n_batches: int, batch_size: int, map_batch: int = 1):
    """A jitted (params, key) -> [n_batches, P]: the flattened gradients `gradient(params, batch)` of
    n minibatches, batch b drawn by `sample(fold_in(key, b), batch_size)` (`map_batch` of them at a
    time: worth raising for tiny batches)."""

    def run(params, key):
        def one(b):
            return ravel_pytree(gradient(params, sample(jax.random.fold_in(key, b), batch_size)))[0]

        return jax.lax.map(one, jnp.arange(n_batches), batch_size=map_batch)

    return jax.jit(run)


def noise_of(gradients) -> tuple[np.ndarray, np.ndarray]:
    """(xi [n, P], g_bar [P]): minibatch gradients minus their mean (the full-batch gradient)."""
    g = np.asarray(gradients, float)
    g_bar = g.mean(axis=0)
    return g - g_bar[None], g_bar


def gradient_noise(gradients, key: jax.Array, tail_fraction: float = TAIL_FRACTION) -> dict:
    """Statistics of the noise of minibatch `gradients` [n, P] and of its Gaussian reference:
    {"noise": norm_statistics, "gaussian": norm_statistics of `gaussian_reference`, "full_grad_norm",
    "noise_norms": the sorted norms (for the figure)}."""
    xi, g_bar = noise_of(gradients)
    return {
        "noise": norm_statistics(xi, tail_fraction),
        "gaussian": norm_statistics(gaussian_reference(xi, key), tail_fraction),
        "full_grad_norm": float(np.linalg.norm(g_bar)),
        "noise_norms": np.sort(np.linalg.norm(xi, axis=1)),
    }


def model_gradient(config: ExperimentConfig):
    """(params, batch) -> gradient of the model's training loss."""
    return jax.grad(loss_fn(config))


def linear_control_gradient():
    """(theta [d], batch) -> gradient of 0.5 mean_(task, query) (theta . x_q - y_q)^2: the control
    model, linear in its parameters (its optimum on tasks with E[w] = 0 is theta = 0)."""

    def loss(theta, batch):
        return compare.loss(jnp.einsum("bmd,d->bm", batch.x_query, theta), batch.y_query)

    return jax.grad(loss)
