"""Claim 4: task diversity (Raventós et al. 2023): trained on a pool of K tasks, a transformer follows
the pool's Bayes estimator (dMMSE) for small K and ridge (the Gaussian prior's) beyond a threshold K*.

The study (setup, models, commands, runtime) is `icl.experiments.claim4_task_diversity`; the
estimators (dMMSE, LMMSE of the pool, ridge), Delta PM and the crossover K* are
`icl.analysis.task_pool`.

    python paper_figures/claim4_task_diversity.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots
from icl.analysis import task_pool
from icl.experiments import claim4_task_diversity as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Raventós, Paul, Chen, Ganguli 2023 (NeurIPS), arXiv 2306.15063, Figs. 1-3",
    "setup": "d = 8, N = 16, sigma^2 = 0.25, GPT-2 (8 layers, d_model 256, 2 heads), ~500k steps, "
    "batch 1024 (as we read the paper; their loss averages every prefix length)",
    "claim_tested": "below a task-diversity threshold the trained model follows dMMSE of the "
    "pretraining pool; above it, ridge (the Gaussian-prior posterior mean), also on fresh tasks",
    "threshold": "K* ~ 2^13 - 2^14 for d = 8 (grows with d; in their runs roughly independent of "
    "model size above a minimum)",
}


def evaluate(config, params, log2_k: int | None, n_tasks: int) -> dict:
    """`task_pool.evaluate` on the study's fresh and pool tasks (EVAL_QUERIES queries each)."""
    pool_task = None if log2_k is None else study.task_for(log2_k, study.EVAL_QUERIES)
    rows = task_pool.evaluate(config, params, study.task_for(None, study.EVAL_QUERIES), pool_task, n_tasks,
                              study.LAM, study.NOISE_STD)
    return {"K": study.k_label(log2_k), "log2_K": log2_k, "n_tasks": n_tasks, "n_queries": study.EVAL_QUERIES, **rows}


def x_positions(results: list[dict]) -> tuple[np.ndarray, list[str]]:
    """log2 K for finite K; K = inf two units right of the largest K."""
    finite = [r["log2_K"] for r in results if r["log2_K"] is not None]
    inf_x = max(finite) + 2 if finite else 0
    xs = np.array([inf_x if r["log2_K"] is None else r["log2_K"] for r in results], float)
    labels = ["inf" if r["log2_K"] is None else f"$2^{{{r['log2_K']}}}$" for r in results]
    return xs, labels


def draw(path, by_model: dict, logs: dict, title: str, star: dict) -> None:
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
        ax.plot(xw, scalar(rows, where, "ridge_mse"), marker="^", color="C2", label=f"ridge (lam = {study.LAM:g})")
        ax.axhline(study.NOISE_STD**2, color="gray", lw=0.8, ls=":", label="noise floor sigma^2")
        ax.set(yscale="log", xlabel="number of pretraining tasks K", ylabel="MSE (label noise included)",
               title=f"MSE on {'fresh tasks w ~ N(0, I)' if where == 'fresh' else 'tasks from the training pool'}")
        ax.set_xticks(xw, [lab for lab, f in zip(labels, fin, strict=True) if where == "fresh" or f])
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
        ax.set_xticks(xs[fin], [lab for lab, f in zip(labels, fin, strict=True) if f])
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
    ax.set_xticks(xs[fin], [lab for lab, f in zip(labels, fin, strict=True) if f])
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    for i, (name, log) in enumerate(logs.items()):
        steps = np.array([r["step"] for r in log])
        common.band(ax, steps, 2 * np.array([r["loss"] for r in log]), f"K = {name}", color=plt.cm.viridis(i / max(len(logs) - 1, 1)))
    ax.axhline(study.NOISE_STD**2, color="gray", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="training step", ylabel="MSE on held-out tasks of the training prior",
           title="softmax transformer: training curves")
    ax.legend(fontsize=7, ncol=2)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    n_tasks = study.EVAL_TASKS[mode]
    configs = study.configs(mode, args.steps, args.batch_size)
    by_model, logs = {model: [] for model in study.MODELS}, {}
    for (model, log2_k), config in zip(study.points(mode), configs, strict=True):
        common.announce(config, args)
        summary, params = common.run(config, args)
        r = evaluate(config, params, log2_k, n_tasks)
        r["train_steps_per_s"], r["train_wall_s"] = summary["train_steps_per_s"], summary["wall_s"]
        by_model[model].append(r)
        if model == "softmax":
            logs[study.k_label(log2_k)] = plots.read_log(args.out / "runs" / config.name)
        f = r["fresh"]
        line = f"  fresh: model {f['model_mse']['mean']:.3f}  ridge {f['ridge_mse']:.3f}  dPM->ridge {f['dpm_ridge']['mean']:.3f}"
        if log2_k is not None:
            p = r["pool"]
            line += (f"  dMMSE {f['dmmse_mse']:.3f}  dPM->dMMSE {f['dpm_dmmse']['mean']:.3f} | pool: model "
                     f"{p['model_mse']['mean']:.3f} dMMSE {p['dmmse_mse']:.3f} ridge {p['ridge_mse']:.3f}")
        print(line, flush=True)
    star = {model: task_pool.thresholds(rows) for model, rows in by_model.items()}
    for model, s in star.items():
        where = [c["where"] if c["where"] != "between" else f"2^{c['log2_k']:.2f}" for c in s["per_seed"]]
        print(f"{model}: K* per seed {where}", flush=True)
    cfg = configs[0].train
    title = (f"Task diversity (Raventós et al. 2023): d = {study.D}, N = {study.N_CTX}, sigma^2 = {study.NOISE_STD**2:g}; "
             f"{common.mode(args)}: {cfg.n_seeds} seeds (mean, min-max band), {cfg.steps} steps of batch "
             f"{cfg.batch_size} x {study.TRAIN_QUERIES} queries")
    png, _ = common.figure_paths(args, NAME)
    draw(png, by_model, logs, title, star["softmax"])
    numbers = {"by_model": by_model, "thresholds": star, "eval": {"n_tasks": n_tasks, "n_queries": study.EVAL_QUERIES,
               "lam": study.LAM, "noise_std": study.NOISE_STD, "pool_seed": study.POOL_SEED}}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
