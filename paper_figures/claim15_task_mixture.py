"""Claim 15: trained on a mixture of dense and sparse linear regression, a transformer follows the
mixture's Bayes-optimal predictor (Panwar, Ahuja & Goyal 2024), not either single prior's.

The study (setup, model, commands, runtime) is `icl.experiments.claim15_task_mixture`; the Bayes
predictors (mixture, ridge = dense prior's, sparse prior's by summing over supports) and the
evaluation are `icl.analysis.task_mixture`.

    python paper_figures/claim15_task_mixture.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import numpy as np

import common
from icl import plots
from icl.analysis import task_mixture
from icl.experiments import claim15_task_mixture as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Panwar, Ahuja, Goyal 2024 (ICLR), 'In-context learning through the Bayesian prism', "
    "arXiv 2306.04891, Sec. 4 (task mixtures), dense + sparse regression mixture",
    "setup": "d = 20, GPT-2 (12 layers, 8 heads, d_model 256), curriculum, ~500k steps (as we read the paper)",
    "claim_tested": "the model trained on the mixture tracks the mixture's Bayes-optimal predictor (priors "
    "weighted by marginal likelihood): ridge-like on dense tasks, sparse-Bayes-like on sparse tasks",
}
KINDS = ("dense", "sparse", "mixture")
PREDICTORS = (("mixture", "mixture Bayes (optimal)", "C3"), ("ridge", "ridge (dense prior's)", "C2"),
              ("sparse", "sparse-Bayes (sparse prior's)", "C1"))


def draw(path, rows: dict, log, title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    xs = np.arange(len(KINDS))
    ax = axes[0]
    model = np.array([rows[k]["model_mse"]["values"] for k in KINDS])  # [3, S]
    ax.bar(xs - 0.3, model.mean(1), 0.2, color="C0", label="transformer (seeds' mean, dots: seeds)")
    ax.plot(np.repeat(xs - 0.3, model.shape[1]), model.ravel(), "k.", ms=4)
    for j, (key, label, color) in enumerate(PREDICTORS):
        ax.bar(xs - 0.1 + 0.2 * j, [rows[k][f"{key}_mse"] for k in KINDS], 0.2, color=color, label=label)
    ax.axhline(study.NOISE_STD**2, color="gray", lw=0.8, ls=":", label="noise floor sigma^2")
    ax.set_xticks(xs, [f"{k} tasks" for k in KINDS])
    ax.set(ylabel="MSE (label noise included)", title="MSE on held-out tasks")
    ax.legend(fontsize=7)
    ax = axes[1]
    for j, (key, label, color) in enumerate(PREDICTORS):
        v = np.array([rows[k][f"dpm_{key}"]["values"] for k in KINDS])
        ax.bar(xs - 0.2 + 0.2 * j, v.mean(1), 0.2, color=color, label=f"transformer vs {label}")
        ax.plot(np.repeat(xs - 0.2 + 0.2 * j, v.shape[1]), v.ravel(), "k.", ms=4)
    ax.plot(xs - 0.2, [rows[k]["dpm_mixture_ridge"] for k in KINDS], "x", color="C2", label="mixture Bayes vs ridge")
    ax.plot(xs - 0.2, [rows[k]["dpm_mixture_sparse"] for k in KINDS], "+", color="C1", ms=9, label="mixture Bayes vs sparse-Bayes")
    ax.set_xticks(xs, [f"{k} tasks" for k in KINDS])
    ax.set(yscale="log", ylabel="dPM = mean (f - g)^2", title="prediction difference (lowest bar: the model's nearest predictor)")
    ax.legend(fontsize=7)
    ax = axes[2]
    steps = np.array([r["step"] for r in log])
    common.band(ax, steps, 2 * np.array([r["loss"] for r in log]), "transformer, mixture tasks", color="C0")
    ax.axhline(0.5 * (rows["dense"]["mixture_mse"] + rows["sparse"]["mixture_mse"]), color="C3", lw=0.8, ls="--",
               label="mixture Bayes (mean of dense and sparse)")
    ax.axhline(study.NOISE_STD**2, color="gray", lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="training step", ylabel="MSE on held-out tasks of the training prior", title="training curve")
    ax.legend(fontsize=7)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    n_tasks = study.EVAL_TASKS[mode]
    configs = study.configs(mode, args.steps, args.batch_size)
    config = configs[0]
    common.announce(config, args)
    summary, params = common.run(config, args)
    sets = task_mixture.test_sets(config, study.task_for(n_query=study.EVAL_QUERIES), n_tasks)
    rows = task_mixture.evaluate(config, params, sets, study.P_DENSE, study.K, study.WEIGHT_STD, study.NOISE_STD)
    for kind, r in rows.items():
        print(f"  {kind}: model {r['model_mse']['mean']:.3f}  mixture {r['mixture_mse']:.3f}  ridge {r['ridge_mse']:.3f}  "
              f"sparse {r['sparse_mse']:.3f} | dPM to mixture {r['dpm_mixture']['mean']:.4f}  ridge {r['dpm_ridge']['mean']:.4f}  "
              f"sparse {r['dpm_sparse']['mean']:.4f}  margin {r['margin']['mean']:.2f} (min {r['margin']['min']:.2f})", flush=True)
    held = {k: rows[k]["margin"]["mean"] > 0 for k in ("dense", "sparse")}
    per_seed = {k: bool(np.all(np.array(rows[k]["margin"]["values"]) > 0)) for k in ("dense", "sparse")}
    verdict = "held" if all(held.values()) else ("held in part" if any(held.values()) else "did not hold")
    print(f"closer to mixture Bayes (seeds' mean): {held}; every seed: {per_seed} -> {verdict}", flush=True)
    cfg = config.train
    title = (f"Dense + sparse mixture (Panwar et al. 2024): d = {study.D}, k = {study.K}, N = {study.N_CTX}, "
             f"sigma = {study.NOISE_STD:g}, p_dense = {study.P_DENSE:g}; {common.mode(args)}: {cfg.n_seeds} seeds, "
             f"{cfg.steps} steps of batch {cfg.batch_size} x {study.TRAIN_QUERIES} queries")
    png, _ = common.figure_paths(args, NAME)
    draw(png, rows, plots.read_log(args.out / "runs" / config.name), title)
    numbers = {"by_kind": rows, "closer_to_mixture": {"seeds_mean": held, "every_seed": per_seed},
               "train_steps_per_s": summary["train_steps_per_s"], "train_wall_s": summary["wall_s"],
               "eval": {"n_tasks": n_tasks, "n_queries": study.EVAL_QUERIES, "lam": study.LAM, "k": study.K,
                        "p_dense": study.P_DENSE, "noise_std": study.NOISE_STD, "weight_std": study.WEIGHT_STD},
               "criterion": "held if, on both dense and sparse held-out tasks, the model's dPM to the mixture's "
               "Bayes predictor is below its dPM to ridge and to sparse-Bayes (seeds' mean of the log margin > 0)"}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED, verdict=verdict)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
