"""The transient ridge (Carroll, Hoogland, Farrugia-Roberts & Murfet 2025, "Dynamics of transient
structure in in-context linear regression transformers", arXiv 2501.17745): trained on a finite
pool of K tasks at intermediate task diversity, a transformer first behaves like ridge regression
(the Bayes predictor of the Gaussian prior, which solves new tasks) and later moves to dMMSE over
the pool (which memorises it). The predictors are claim 4's (`icl.analysis.task_pool`).

**What we measure.** `trajectory` trains a run with `icl.trainer.Trainer` exactly as
`icl.train.train` does (the same initialisation, keys and chunks of eval_every steps, hence the
same weights), and after every chunk evaluates every seed on two fixed held-out sets of the
run's evaluation seed: fresh tasks (w ~ N(0, tau^2 I), `HeldOut.FRESH`) and pool tasks (w drawn
from the pool, `HeldOut.POOL`). Per record and seed it keeps
  d_ridge = dPM(model, ridge)  and  d_dmmse = dPM(model, dMMSE(K)),
dPM(f, g) = mean over tasks and queries of (f(x_q) - g(x_q))^2 (Raventós's Delta PM, claim 4's
`delta_pm`), and the model's MSE, on both sets.

**The transient rule** (`transient`, per seed, on the fresh-task curves, which are the ones that
tell the two predictors apart: on pool tasks they differ by ~sigma^2 only). Both curves are
smoothed by a running median of SMOOTH records (in log), then with i* the record of the smallest
smoothed d_ridge:
  ridge-like  d_ridge(i*) < d_dmmse(i*) (nearer ridge than dMMSE) and
              d_ridge(i*) < NEAR x E[ridge^2] (the model carries most of ridge's prediction:
              rules out the near-zero predictor of early training, which may sit nearer ridge);
  rises       d_ridge(end) >= RISE x d_ridge(i*)  (and i* is not the last record);
  falls       d_dmmse(end) <= FALL x d_dmmse(i*);
  transient = ridge-like and rises and falls. Reported beside it: `crossed`, the run ends nearer
  dMMSE than ridge on fresh tasks (d_dmmse(end) < d_ridge(end)).

**Verdict** (`verdict`, written down before the full run; two probe runs of 2 seeds, cosine and
constant learning rate, came before it and chose the schedule and the pool sizes, not the
thresholds). Pool sizes come in three roles:
"small" (a control expected to go straight to dMMSE: never ridge-like or not transient),
"intermediate" (where the claim predicts the transient), "large" (a control expected to stay
ridge-like: no rise). A majority is more than half of the seeds.
  held          at some intermediate K a majority of seeds are transient, and neither control is
                transient in a majority of its seeds;
  held in part  some seed at an intermediate K is transient, but the "held" condition fails (no
                intermediate K with a majority, or a control is transient as well);
  did not hold  no seed at any intermediate K is transient.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from icl import solvers
from icl.analysis import along_training, task_pool
from icl.config import ExperimentConfig
from icl.trainer import HeldOut, Trainer, heldout_key

SMOOTH = 3  # running-median width (records)
NEAR = 0.25  # ridge-like: d_ridge < NEAR x E[ridge^2]
RISE = 2.0  # d_ridge(end) / its minimum
FALL = 0.8  # d_dmmse(end) / d_dmmse at the ridge minimum
ROLES = ("small", "intermediate", "large")
TRAJECTORY = "transient_trajectory.npz"
SETS = ("fresh", "pool")


# -- the references on the held-out sets ------------------------------------------------------
def heldout_sets(config: ExperimentConfig, fresh_task, n_tasks: int) -> dict:
    """{"fresh": batch, "pool": batch}: `n_tasks` held-out tasks of each kind (claim 4's keys)."""
    return {"fresh": fresh_task.sample(heldout_key(config, HeldOut.FRESH), n_tasks),
            "pool": config.task.sample(heldout_key(config, HeldOut.POOL), n_tasks)}


def references(batch, pool, lam: float, noise_std: float) -> dict:
    """Ridge (lam) and dMMSE (the pool, true noise) predictions on `batch`: {"ridge", "dmmse"} [B, M]."""
    return {"ridge": solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=lam),
            "dmmse": task_pool.dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, pool, noise_std)}


def distance(y_model, y_ref) -> np.ndarray:
    """dPM over the last two axes (tasks, queries): y_model [..., B, M] against y_ref [B, M]."""
    y_model, y_ref = jnp.asarray(y_model), jnp.asarray(y_ref)
    return task_pool.delta_pm(y_model, jnp.broadcast_to(y_ref, y_model.shape))


# -- training with the distances along the way --------------------------------------------------
def trajectory(config: ExperimentConfig, fresh_task, n_tasks: int, lam: float, noise_std: float,
               run_dir: str | Path | None = None) -> dict:
    """Train `config` (a `linear_pool` task) as `icl.train.train` does and after every chunk of
    eval_every steps record, per seed, the model's dPM to ridge and to dMMSE and its MSE on
    `n_tasks` fresh and pool tasks (`heldout_sets`). Returns {"steps" [R] (0 first),
    "<set>_d_ridge", "<set>_d_dmmse", "<set>_mse" [R, S], "<set>_ridge_mse", "<set>_dmmse_mse",
    "<set>_ridge_sq" (E[ridge^2]), "<set>_ridge_dmmse" (dPM between the two) scalars, "wall_s"};
    cached as <run_dir>/transient_trajectory.npz (config beside it) and reused while the config and
    these arguments are the same (`along_training.cached`)."""
    path = Path(run_dir) / TRAJECTORY if run_dir is not None else None
    fresh = {"family": fresh_task.family, **dataclasses.asdict(fresh_task)}

    def compute() -> dict:
        scalars: dict = {}
        out = along_training.record(config, lambda trainer: _distances(trainer, fresh_task, n_tasks, lam, noise_std, scalars))
        return {**scalars, **out}

    return along_training.cached(path, config, compute, fresh_task=fresh, n_tasks=n_tasks, lam=lam, noise_std=noise_std)


def _distances(trainer: Trainer, fresh_task, n_tasks: int, lam: float, noise_std: float, scalars: dict):
    """The measurement after every chunk (dPM to ridge and to dMMSE, MSE, per held-out set and
    seed); the references' own numbers go into `scalars` once."""
    config = trainer.config
    sets = heldout_sets(config, fresh_task, n_tasks)
    refs = {name: references(b, config.task.pool, lam, noise_std) for name, b in sets.items()}
    for name, b in sets.items():
        scalars[f"{name}_ridge_mse"] = float(task_pool.mse(refs[name]["ridge"], b.y_query))
        scalars[f"{name}_dmmse_mse"] = float(task_pool.mse(refs[name]["dmmse"], b.y_query))
        scalars[f"{name}_ridge_sq"] = float(jnp.mean(refs[name]["ridge"] ** 2))
        scalars[f"{name}_ridge_dmmse"] = float(distance(refs[name]["ridge"], refs[name]["dmmse"]))

    @jax.jit
    def measure(p):
        row = {}
        for name, b in sets.items():
            y = jax.vmap(lambda q, b=b: trainer.spec.model(q).predict(b.x_ctx, b.y_ctx, b.x_query))(p)  # [S, B, M]
            row[f"{name}_d_ridge"] = jnp.mean((y - refs[name]["ridge"][None]) ** 2, axis=(-2, -1))
            row[f"{name}_d_dmmse"] = jnp.mean((y - refs[name]["dmmse"][None]) ** 2, axis=(-2, -1))
            row[f"{name}_mse"] = jnp.mean((y - b.y_query[None]) ** 2, axis=(-2, -1))
        return row

    return lambda p, _train_losses: measure(p)


# -- the transient rule ------------------------------------------------------------------------
def smooth(y, width: int = SMOOTH) -> np.ndarray:
    """Running median (edges padded) of log y, exponentiated: [R]."""
    y = np.log(np.asarray(y, np.float64))
    half = width // 2
    pad = np.pad(y, half, mode="edge")
    return np.exp(np.array([np.median(pad[i:i + width]) for i in range(len(y))]))


def transient(steps, d_ridge, d_dmmse, ridge_sq: float, near: float = NEAR, rise: float = RISE,
              fall: float = FALL, width: int = SMOOTH) -> dict:
    """The module docstring's rule on one seed's curves (steps [R], d_ridge [R], d_dmmse [R])."""
    steps = np.asarray(steps)
    d_ridge, d_dmmse = np.asarray(d_ridge, np.float64), np.asarray(d_dmmse, np.float64)
    if not (steps.shape == d_ridge.shape == d_dmmse.shape) or steps.ndim != 1 or len(steps) < 2:
        raise ValueError(f"transient: steps, d_ridge, d_dmmse must be 1-d of equal length >= 2, "
                         f"got {steps.shape}, {d_ridge.shape}, {d_dmmse.shape}")
    if np.any(d_ridge <= 0) or np.any(d_dmmse <= 0) or not (np.all(np.isfinite(d_ridge)) and np.all(np.isfinite(d_dmmse))):
        raise ValueError("transient: distances must be finite and positive")
    s, u = smooth(d_ridge, width), smooth(d_dmmse, width)
    i = int(np.argmin(s))
    ridge_like = bool(s[i] < u[i] and s[i] < near * ridge_sq)
    rises = bool(i < len(s) - 1 and s[-1] >= rise * s[i])
    falls = bool(u[-1] <= fall * u[i])
    return {
        "min_step": int(steps[i]), "d_ridge_min": float(s[i]), "d_dmmse_at_min": float(u[i]),
        "d_ridge_end": float(s[-1]), "d_dmmse_end": float(u[-1]),
        "rise": float(s[-1] / s[i]), "fall": float(u[-1] / u[i]),
        "ridge_like": ridge_like, "rises": rises, "falls": falls,
        "transient": ridge_like and rises and falls, "crossed": bool(u[-1] < s[-1]),
    }


def summarise(traj: dict) -> dict:
    """Per seed, `transient` on the fresh-task curves (and the same rule on pool tasks, reported
    only); the references' scalars; the curves as lists."""
    steps = np.asarray(traj["steps"])
    n_seeds = np.asarray(traj["fresh_d_ridge"]).shape[1]
    out = {k: float(traj[k]) for k in traj if k.endswith(("_ridge_mse", "_dmmse_mse", "_ridge_sq", "_ridge_dmmse"))}
    out["seeds"] = [transient(steps, traj["fresh_d_ridge"][:, s], traj["fresh_d_dmmse"][:, s], out["fresh_ridge_sq"])
                    for s in range(n_seeds)]
    out["pool_seeds"] = [transient(steps, traj["pool_d_ridge"][:, s], traj["pool_d_dmmse"][:, s], out["pool_ridge_sq"])
                         for s in range(n_seeds)]
    fresh_mse = np.asarray(traj["fresh_mse"])
    out["fresh_mse_min"] = fresh_mse.min(axis=0).tolist()
    out["fresh_mse_min_step"] = [int(steps[i]) for i in fresh_mse.argmin(axis=0)]
    out["fresh_mse_end"] = fresh_mse[-1].tolist()
    out["n_transient"] = sum(s["transient"] for s in out["seeds"])
    out["n_seeds"] = n_seeds
    out["curves"] = {"steps": steps.tolist(), **{f"{n}_{q}": np.asarray(traj[f"{n}_{q}"]).T.tolist()
                                                for n in SETS for q in ("d_ridge", "d_dmmse", "mse")}}
    out["wall_s"] = float(traj["wall_s"])
    return out


def majority(n: int, total: int) -> bool:
    return n > total / 2


def verdict(by_role: dict[str, list[tuple[int, int]]]) -> str:
    """The module docstring's rule. by_role: {"small" / "intermediate" / "large": [(transient seeds,
    seeds) per K]} (a role may be empty)."""
    unknown = set(by_role) - set(ROLES)
    if unknown:
        raise ValueError(f"verdict: roles must be among {ROLES}, got {sorted(unknown)}")
    mid = by_role.get("intermediate", [])
    if not any(n > 0 for n, _ in mid):
        return "did not hold"
    controls_quiet = not any(majority(n, t) for role in ("small", "large") for n, t in by_role.get(role, []))
    return "held" if any(majority(n, t) for n, t in mid) and controls_quiet else "held in part"
