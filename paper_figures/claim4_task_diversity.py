"""Claim 4: task diversity (Raventós et al. 2023, "Pretraining task diversity and the emergence of
non-Bayesian in-context learning for regression"). Trained on a finite pool of K tasks, a
transformer behaves like the Bayes-optimal estimator for that pool (dMMSE) when K is small, and like
ridge regression (Bayes-optimal for w ~ N(0, I)) once K passes a threshold K*; it then solves tasks
from outside the pool.

Setup (the paper's): d = 8, N = 16 context examples, x ~ N(0, I_d), y = w . x + eps with
eps ~ N(0, sigma^2), sigma^2 = 0.25. Pretraining prior for pool size K: w_1..w_K ~ N(0, I_d) drawn
once (`linear_pool`, pool_seed 0; pools are nested, the first K rows of one stream, and every seed
of a K shares its pool), each task picks one uniformly. K = "inf" is the plain Gaussian family
(`linear`, w ~ N(0, I_d) fresh for every task).

The two Bayes-optimal estimators (posterior means, both given the true sigma):
  dMMSE(K)   y_hat = sum_k p_k w_k . x_q,  p_k = softmax_k(-||y - X w_k||^2 / (2 sigma^2))
             (`solvers.baselines.dmmse`; optimal on pool tasks, MSE -> sigma^2 = 0.25 here);
  ridge      y_hat = x_q . (X^T X + lam I)^{-1} X^T y with lam = sigma^2 / tau^2 = 0.25
             (optimal for w ~ N(0, I): MSE 0.50 here, on pool and fresh tasks alike).
and a third reference, the best predictor *linear in the labels y* for the pool:
  LMMSE(K)   y_hat = x_q . Sigma_K X^T (X Sigma_K X^T + sigma^2 I)^{-1} y, Sigma_K = (1/K) sum w_k w_k^T
             (`lmmse`). A linear learner can exploit the pool's span and covariance (K < d: w lies
             in a K-dim subspace) but nothing else; a model beating LMMSE(K) on pool tasks uses
             the pool non-linearly, i.e. memorises tasks as dMMSE does.

For each K a model is trained on its pool (5 seeds in one vmapped program) and evaluated on
  (a) pool tasks (the training distribution) and (b) fresh tasks w ~ N(0, I_d):
  MSE(f)          = mean over tasks and queries of (f(x_q) - y_q)^2   (label noise included);
  dPM(f, g)       = mean of (f(x_q) - g(x_q))^2, Raventós's "Delta PM", the mean squared
                    difference of two predictors on the same contexts and queries.
Threshold: on fresh tasks, score(K) = ln dPM(model, dMMSE(K)) - ln dPM(model, ridge): > 0 when the
model is closer to ridge. Per seed, K* is the first K of the grid where the score turns positive,
log2 K* interpolated linearly between that K and the previous one (`crossover`); "below the grid"
if it is positive at the smallest K, "above the grid" if never.

Model (main): softmax attention, 2 layers, 4 heads of size 8, pre-LayerNorm, GELU MLP (width 4x),
x embedded by a 2-layer MLP into 31 features, so tokens [f(x_i), y_i] of width 32. It can
represent a dMMSE-like map (attention pools context statistics, the MLPs can store pool vectors);
the 1-layer linear LSA control cannot (its prediction is x_q^T Gamma X^T y, linear in the labels),
although it can still learn the pool's span. Both train on 8 queries per task (queries never see
each other, so this is 8 independent predictions per context), AdamW 3e-3 (LSA: Adam 1e-3), 10%
linear warm-up then cosine decay. Run directories are named by K, steps and batch, because the
cosine schedule depends on the step count (a longer run is a new run, not an extension).

Our models and training are far smaller than Raventós's (8-layer GPT-2, d_model 256, ~500k steps
of batch 1024, loss on every prefix): the threshold we find need not be theirs (they report
K* ~ 2^13-2^14 for d = 8); a model that is trained less or stores less memorises fewer tasks.

    python paper_figures/claim4_task_diversity.py          # full: K = 2, 8, 32, ..., 2048, inf;
        # 1,500 steps of batch 128, 5 seeds; measured: trained in 21 min as two parallel processes
        # on the shared 2-core CPU (load 7-9), evaluation 30 s; ~25 min estimated idle, one process
    python paper_figures/claim4_task_diversity.py --quick  # K = 2^2, 2^6, inf; 300 steps of
        # batch 64, 2 seeds (smoke test, ~2 min idle)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

import common
from icl import plots, solvers, tasks, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig

NAME = "claim4_task_diversity"
D, N_CTX, NOISE_STD, WEIGHT_STD = 8, 16, 0.5, 1.0
LAM = NOISE_STD**2 / WEIGHT_STD**2  # ridge's Bayes-optimal lam for w ~ N(0, I)
POOL_SEED = 0
TRAIN_QUERIES, EVAL_QUERIES = 8, 4
LOG2_K_FULL = (1, 3, 5, 7, 9, 11)  # K = 2, 8, 32, 128, 512, 2048 (and inf)
LOG2_K_QUICK = (2, 6)
FULL_STEPS, FULL_BATCH, FULL_SEEDS, FULL_EVAL_TASKS = 1500, 128, 5, 4000

MODELS = {
    "softmax": (
        ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, n_heads=4, key_size=8,
                    embed_dim=31, embed_hidden=64, init_scale=1.0),
        OptimConfig(name="adamw", lr=3e-3, grad_clip=1.0, schedule="cosine"),
    ),
    "lsa1": (  # the control: one linear self-attention layer (one preconditioned GD step)
        ModelConfig(n_layers=1, attention="linear", init_scale=0.02),
        OptimConfig(name="adam", lr=1e-3, grad_clip=1.0, schedule="cosine"),
    ),
}
PUBLISHED = {
    "source": "Raventós, Paul, Chen, Ganguli 2023 (NeurIPS), arXiv 2306.15063, Figs. 1-3",
    "setup": "d = 8, N = 16, sigma^2 = 0.25, GPT-2 (8 layers, d_model 256, 2 heads), ~500k steps, "
    "batch 1024 (as we read the paper; their loss averages every prefix length)",
    "claim_tested": "below a task-diversity threshold the trained model follows dMMSE of the "
    "pretraining pool; above it, ridge (the Gaussian-prior posterior mean), also on fresh tasks",
    "threshold": "K* ~ 2^13 - 2^14 for d = 8 (grows with d; in their runs roughly independent of "
    "model size above a minimum)",
}


# -- configs ------------------------------------------------------------------------------------
def task_for(log2_k: int | None, n_query: int = TRAIN_QUERIES):
    """The pretraining family for K = 2^log2_k tasks, or the Gaussian family for None (K = inf)."""
    if log2_k is None:
        return tasks.get("linear", d=D, n_ctx=N_CTX, n_query=n_query, input_dist="gaussian",
                         noise_std=NOISE_STD, weight_std=WEIGHT_STD)
    if not isinstance(log2_k, int) or log2_k < 0:
        raise ValueError(f"claim4: log2_k must be an integer >= 0 or None (K = inf), got {log2_k!r}")
    return tasks.get("linear_pool", d=D, n_ctx=N_CTX, n_query=n_query, pool_size=2**log2_k,
                     pool_seed=POOL_SEED, noise_std=NOISE_STD, weight_std=WEIGHT_STD)


def k_label(log2_k: int | None) -> str:
    return "inf" if log2_k is None else str(2**log2_k)


def make_config(model: str, log2_k: int | None, quick: bool, steps: int | None = None,
                batch_size: int | None = None) -> ExperimentConfig:
    if model not in MODELS:
        raise ValueError(f"claim4: model must be one of {', '.join(MODELS)}, got {model!r}")
    model_cfg, optim = MODELS[model]
    if quick:
        steps, batch, seeds, every = 300, 64, 2, 100
    else:
        steps, batch, seeds = steps or FULL_STEPS, batch_size or FULL_BATCH, FULL_SEEDS
        every = max(steps // 10, 1)
    train_cfg = TrainConfig(steps=steps, batch_size=batch, n_seeds=seeds, eval_every=every, ckpt_every=steps,
                            eval_tasks=256, final_eval_tasks=512)
    optim = dataclasses.replace(optim, warmup_steps=steps // 10)
    return ExperimentConfig(
        name=f"{NAME}_{model}_k{k_label(log2_k)}_s{steps}_b{batch}", task=task_for(log2_k), model=model_cfg,
        optim=optim, train=train_cfg, compare_against=(f"ridge(lam={LAM})",),
    )


# -- the estimators and the metrics -------------------------------------------------------------
def dmmse_chunked(x_ctx, y_ctx, x_query, pool, noise_std: float, max_elements: int = 2**23) -> jax.Array:
    """`solvers.baselines.dmmse` over task chunks, so the [B, K, N] residuals stay below
    `max_elements` numbers (K = 4096 on 4,000 tasks would otherwise need 1 GB): [B, M]."""
    b, n = y_ctx.shape
    k = np.asarray(pool).shape[0]
    chunk = max(1, max_elements // (k * n))
    parts = [solvers.baselines.dmmse(x_ctx[i:i + chunk], y_ctx[i:i + chunk], x_query[i:i + chunk], pool, noise_std)
             for i in range(0, b, chunk)]
    return jnp.concatenate(parts, axis=0)


def pool_second_moment(pool) -> np.ndarray:
    """Sigma_K = (1/K) sum_k w_k w_k^T of a pool [K, d]: [d, d] (rank min(K, d))."""
    pool = np.asarray(pool, float)
    return pool.T @ pool / pool.shape[0]


def lmmse(x_ctx, y_ctx, x_query, cov, noise_std: float) -> jax.Array:
    """The linear MMSE predictor for a prior with second moment E[w w^T] = cov (any mean-zero
    prior; the posterior mean when w ~ N(0, cov)):
        w_hat = cov X^T (X cov X^T + sigma^2 I_N)^{-1} y,   y_hat = w_hat . x_q      [B, M].
    Among predictors linear in the context labels y it has the least expected error; with
    cov = tau^2 I it is ridge with lam = sigma^2 / tau^2. The N x N form needs no inverse of cov,
    so a pool of K < d tasks (singular cov) is fine. With cov = Sigma_K it is the best a learner
    linear in y (e.g. the 1-layer LSA) can do on the pool; dMMSE beats it only by being non-linear.
    """
    cov = jnp.asarray(cov, x_ctx.dtype)
    xs = jnp.einsum("bnd,de->bne", x_ctx, cov)  # [B, N, d]: X cov
    n = x_ctx.shape[1]
    gram = jnp.einsum("bne,bme->bnm", xs, x_ctx) + noise_std**2 * jnp.eye(n, dtype=x_ctx.dtype)[None]  # [B, N, N]
    alpha = jnp.linalg.solve(gram, y_ctx[:, :, None])[:, :, 0]  # [B, N]
    w = jnp.einsum("bne,bn->be", xs, alpha)  # [B, d]
    return jnp.einsum("bmd,bd->bm", x_query, w)


def mse(y_hat: jax.Array, y: jax.Array) -> np.ndarray:
    """Mean squared error over tasks and queries (the last two axes): [...] (e.g. [S] seeds)."""
    return np.asarray(jnp.mean((y_hat - y) ** 2, axis=(-2, -1)))


def delta_pm(y_a: jax.Array, y_b: jax.Array) -> np.ndarray:
    """Raventós's Delta PM: mean over tasks and queries of (y_a - y_b)^2, over the last two axes."""
    return np.asarray(jnp.mean((y_a - y_b) ** 2, axis=(-2, -1)))


def crossover(log2_k, score) -> dict:
    """Where `score` (over the increasing grid log2_k) first turns positive.

    Returns {"log2_k": x, "where": w}: w = "between" with x the zero of the straight line through
    the last non-positive point and the first positive one; w = "below_grid" (x = log2_k[0]: the
    score is already positive at the smallest K, so K* <= K_min); w = "above_grid" (x = None:
    never positive, K* > K_max). "monotone" says whether the score stays positive after.
    """
    log2_k, score = np.asarray(log2_k, float), np.asarray(score, float)
    if log2_k.ndim != 1 or log2_k.shape != score.shape or len(log2_k) == 0:
        raise ValueError(f"crossover: log2_k and score must be 1-d of equal length, got {log2_k.shape}, {score.shape}")
    if np.any(np.diff(log2_k) <= 0):
        raise ValueError("crossover: log2_k must be strictly increasing")
    if not np.all(np.isfinite(score)):
        raise ValueError("crossover: score must be finite")
    positive = score > 0
    if not positive.any():
        return {"log2_k": None, "where": "above_grid", "monotone": True}
    i = int(np.argmax(positive))
    monotone = bool(positive[i:].all())
    if i == 0:
        return {"log2_k": float(log2_k[0]), "where": "below_grid", "monotone": monotone}
    x0, x1, s0, s1 = log2_k[i - 1], log2_k[i], score[i - 1], score[i]
    return {"log2_k": float(x0 + (x1 - x0) * (0.0 - s0) / (s1 - s0)), "where": "between", "monotone": monotone}


def model_predictions(config: ExperimentConfig, params, batch) -> jax.Array:
    """Every seed's predictions on `batch`: [S, B, M]."""
    spec = train.model_spec(config)
    predict = jax.jit(jax.vmap(lambda p, xc, yc, xq: spec.model(p).predict(xc, yc, xq), in_axes=(0, None, None, None)))
    return predict(params, batch.x_ctx, batch.y_ctx, batch.x_query)


def evaluate(config: ExperimentConfig, params, log2_k: int | None, n_tasks: int) -> dict:
    """MSE of the model (per seed), dMMSE and ridge, and dPM of the model to both, on pool tasks
    and on fresh tasks w ~ N(0, I). Held-out keys: fold_in(key(eval_seed), 7 / 8), paths that
    icl.train does not use."""
    root = jax.random.key(config.train.eval_seed)
    sets = {"fresh": task_for(None, EVAL_QUERIES).sample(jax.random.fold_in(root, 8), n_tasks)}
    if log2_k is not None:
        sets["pool"] = task_for(log2_k, EVAL_QUERIES).sample(jax.random.fold_in(root, 7), n_tasks)
    out = {"K": k_label(log2_k), "log2_K": log2_k, "n_tasks": n_tasks, "n_queries": EVAL_QUERIES}
    for name, batch in sets.items():
        y_model = model_predictions(config, params, batch)  # [S, B, M]
        y_ridge = solvers.ridge(batch.x_ctx, batch.y_ctx, batch.x_query, lam=LAM)  # [B, M]
        row = {
            "model_mse": common.stats(mse(y_model, batch.y_query[None])),
            "ridge_mse": float(mse(y_ridge, batch.y_query)),
            "dpm_ridge": common.stats(delta_pm(y_model, y_ridge[None])),
            "zero_mse": float(mse(jnp.zeros_like(batch.y_query), batch.y_query)),
        }
        if log2_k is not None:
            y_dmmse = dmmse_chunked(batch.x_ctx, batch.y_ctx, batch.x_query, config.task.pool, NOISE_STD)
            row["dmmse_mse"] = float(mse(y_dmmse, batch.y_query))
            row["dpm_dmmse"] = common.stats(delta_pm(y_model, y_dmmse[None]))
            row["dmmse_ridge_dpm"] = float(delta_pm(y_dmmse, y_ridge))
            y_lin = lmmse(batch.x_ctx, batch.y_ctx, batch.x_query, pool_second_moment(config.task.pool), NOISE_STD)
            row["lmmse_mse"] = float(mse(y_lin, batch.y_query))
            row["dpm_lmmse"] = common.stats(delta_pm(y_model, y_lin[None]))
            row["score"] = (np.log(row["dpm_dmmse"]["values"]) - np.log(row["dpm_ridge"]["values"])).tolist()
        out[name] = row
    return out


def thresholds(results: list[dict]) -> dict:
    """Per seed, the crossover of the fresh-task score over the finite K grid (see `crossover`)."""
    finite = [r for r in results if r["log2_K"] is not None]
    log2_k = [r["log2_K"] for r in finite]
    scores = np.array([r["fresh"]["score"] for r in finite])  # [K, S]
    per_seed = [crossover(log2_k, scores[:, s]) for s in range(scores.shape[1])]
    inside = [c["log2_k"] for c in per_seed if c["where"] == "between"]
    summary = {"per_seed": per_seed, "grid_log2_K": log2_k}
    if inside:
        summary["log2_K_star_between"] = common.stats(inside)
        summary["K_star_median"] = float(2 ** np.median(inside))
    summary["count"] = {w: sum(c["where"] == w for c in per_seed) for w in ("below_grid", "between", "above_grid")}
    return summary


# -- the figure ---------------------------------------------------------------------------------
def x_positions(results: list[dict]) -> tuple[np.ndarray, list[str]]:
    """log2 K for finite K; K = inf two units right of the largest K."""
    finite = [r["log2_K"] for r in results if r["log2_K"] is not None]
    inf_x = max(finite) + 2 if finite else 0
    xs = np.array([inf_x if r["log2_K"] is None else r["log2_K"] for r in results], float)
    labels = ["inf" if r["log2_K"] is None else f"$2^{{{r['log2_K']}}}$" for r in results]
    return xs, labels


def draw(path, by_model: dict, logs: dict, configs: list[ExperimentConfig], title: str, star: dict):
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
    main, control = by_model["softmax"], by_model.get("lsa1")
    xs, labels = x_positions(main)
    fin = np.array([r["log2_K"] is not None for r in main])

    def values(rows, where, key):
        return np.array([r[where][key]["values"] for r in rows])  # [K, S]

    def scalar(rows, where, key):
        return np.array([r[where][key] for r in rows])

    for col, where in ((0, "fresh"), (1, "pool")):
        ax = axes[col, 0]
        rows = main if where == "fresh" else [r for r in main if r["log2_K"] is not None]
        xw = xs if where == "fresh" else xs[fin]
        common.band(ax, xw, values(rows, where, "model_mse"), "softmax transformer", marker="o", color="C0")
        if control:
            crow = control if where == "fresh" else [r for r in control if r["log2_K"] is not None]
            common.band(ax, xw, values(crow, where, "model_mse"), "1-layer LSA (control)", marker=".", color="C7", ls="--")
        dm = [r for r in rows if r["log2_K"] is not None]
        ax.plot(xs[fin], [r[where]["dmmse_mse"] for r in dm], marker="s", color="C3", label="dMMSE (pool posterior mean)")
        ax.plot(xs[fin], [r[where]["lmmse_mse"] for r in dm], marker="v", color="C1", label="LMMSE(pool covariance), linear in y")
        ax.plot(xw, scalar(rows, where, "ridge_mse"), marker="^", color="C2", label=f"ridge (lam = {LAM:g})")
        ax.axhline(NOISE_STD**2, color="gray", lw=0.8, ls=":", label="noise floor sigma^2")
        ax.set(yscale="log", xlabel="number of pretraining tasks K", ylabel="MSE (label noise included)",
               title=f"MSE on {'fresh tasks w ~ N(0, I)' if where == 'fresh' else 'tasks from the training pool'}")
        ax.set_xticks(xw, [lab for lab, f in zip(labels, fin) if where == "fresh" or f])
        ax.legend(fontsize=7)

        ax = axes[col, 1]
        drows = [r for r in main if r["log2_K"] is not None]
        common.band(ax, xs[fin], values(drows, where, "dpm_dmmse"), "transformer vs dMMSE", marker="s", color="C3")
        common.band(ax, xs[fin], values(drows, where, "dpm_ridge"), "transformer vs ridge", marker="^", color="C2")
        common.band(ax, xs[fin], values(drows, where, "dpm_lmmse"), "transformer vs LMMSE(pool)", marker="v", color="C1")
        if control:
            crows = [r for r in control if r["log2_K"] is not None]
            common.band(ax, xs[fin], values(crows, where, "dpm_dmmse"), "LSA vs dMMSE", color="C3", ls="--", lw=0.8)
            common.band(ax, xs[fin], values(crows, where, "dpm_ridge"), "LSA vs ridge", color="C2", ls="--", lw=0.8)
        ax.plot(xs[fin], [r[where]["dmmse_ridge_dpm"] for r in drows], color="k", lw=0.8, ls=":", label="dMMSE vs ridge")
        if where == "fresh" and "log2_K_star_between" in star:
            ks = star["log2_K_star_between"]
            ax.axvspan(ks["min"], ks["max"], color="C0", alpha=0.15)
            ax.axvline(np.median(ks["values"]), color="C0", lw=1, label="K* (median, seeds' range shaded)")
        ax.set(yscale="log", xlabel="number of pretraining tasks K", ylabel="Delta PM = mean (f - g)^2",
               title=f"prediction difference on {where} tasks")
        ax.set_xticks(xs[fin], [lab for lab, f in zip(labels, fin) if f])
        ax.legend(fontsize=7)

    ax = axes[0, 2]
    scores = np.array([r["fresh"]["score"] for r in main if r["log2_K"] is not None])  # [K, S]
    for s in range(scores.shape[1]):
        ax.plot(xs[fin], scores[:, s], marker="o", lw=0.8, label=f"seed {s}")
    if control:
        cs = np.array([r["fresh"]["score"] for r in control if r["log2_K"] is not None])
        common.band(ax, xs[fin], cs, "1-layer LSA (control), mean", color="C7", ls="--")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="number of pretraining tasks K", ylabel="ln dPM(model, dMMSE) - ln dPM(model, ridge)",
           title="fresh tasks: > 0 means closer to ridge")
    ax.set_xticks(xs[fin], [lab for lab, f in zip(labels, fin) if f])
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    for i, (name, log) in enumerate(logs.items()):
        steps = np.array([r["step"] for r in log])
        common.band(ax, steps, 2 * np.array([r["loss"] for r in log]), f"K = {name}", color=plt.cm.viridis(i / max(len(logs) - 1, 1)))
    ax.axhline(NOISE_STD**2, color="gray", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="training step", ylabel="MSE on held-out tasks of the training prior",
           title="softmax transformer: training curves")
    ax.legend(fontsize=7, ncol=2)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    grid = list(LOG2_K_QUICK if args.quick else LOG2_K_FULL) + [None]
    n_tasks = 1000 if args.quick else FULL_EVAL_TASKS
    by_model, logs, configs = {}, {}, []
    for model in MODELS:
        by_model[model] = []
        for log2_k in grid:
            config = make_config(model, log2_k, args.quick, args.steps, args.batch_size)
            configs.append(config)
            print(f"{config.name}: {common.mode(args)}, {config.train.n_seeds} seeds", flush=True)
            summary, params = common.run(config, args)
            r = evaluate(config, params, log2_k, n_tasks)
            r["train_steps_per_s"], r["train_wall_s"] = summary["train_steps_per_s"], summary["wall_s"]
            by_model[model].append(r)
            if model == "softmax":
                logs[k_label(log2_k)] = plots.read_log(args.out / "runs" / config.name)
            f = r["fresh"]
            line = f"  fresh: model {f['model_mse']['mean']:.3f}  ridge {f['ridge_mse']:.3f}  dPM->ridge {f['dpm_ridge']['mean']:.3f}"
            if log2_k is not None:
                p = r["pool"]
                line += (f"  dMMSE {f['dmmse_mse']:.3f}  dPM->dMMSE {f['dpm_dmmse']['mean']:.3f} | pool: model "
                         f"{p['model_mse']['mean']:.3f} dMMSE {p['dmmse_mse']:.3f} ridge {p['ridge_mse']:.3f}")
            print(line, flush=True)
    star = {model: thresholds(rows) for model, rows in by_model.items()}
    for model, s in star.items():
        where = [c["where"] if c["where"] != "between" else f"2^{c['log2_k']:.2f}" for c in s["per_seed"]]
        print(f"{model}: K* per seed {where}", flush=True)
    cfg = configs[0].train
    title = (f"Task diversity (Raventós et al. 2023): d = {D}, N = {N_CTX}, sigma^2 = {NOISE_STD**2:g}; "
             f"{common.mode(args)}: {cfg.n_seeds} seeds (mean, min-max band), {cfg.steps} steps of batch "
             f"{cfg.batch_size} x {TRAIN_QUERIES} queries")
    png, _ = common.figure_paths(args, NAME)
    draw(png, by_model, logs, configs, title, star["softmax"])
    numbers = {"by_model": by_model, "thresholds": star, "eval": {"n_tasks": n_tasks, "n_queries": EVAL_QUERIES,
               "lam": LAM, "noise_std": NOISE_STD, "pool_seed": POOL_SEED}}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
