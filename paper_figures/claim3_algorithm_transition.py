"""Claim 3 (Akyürek et al. 2022, Sec. 4): with depth and label noise, trained in-context learners move from
GD-like to ridge / least squares.

"What learning algorithm is in-context learning? Investigations with linear models" (arXiv
2211.15661). The runs (LSA stacks of depth 1, 2, 4 at label noise sigma = 0 and 1):
icl/experiments/claim3_algorithm_transition.py; the measurements (SPD and ILWD of every seed to one GD
step, L GD steps, ridge at lam = sigma^2 / tau^2, least squares; the closest ridge lam):
icl/analysis/algorithm_fits.py. A run that diverges is evaluated at its last good checkpoint and flagged.

    python paper_figures/claim3_algorithm_transition.py           # full: 6 runs x 5 seeds x 5,000 steps of batch 512
    python paper_figures/claim3_algorithm_transition.py --quick   # 600 steps of batch 256, 2 seeds (~4 min)
"""

from __future__ import annotations

import dataclasses

import numpy as np

import common
from icl import compare, plots, runs, train
from icl.analysis import algorithm_fits
from icl.experiments import claim3_algorithm_transition as study

NAME = "claim3_algorithm_transition"
DEPTHS = study.DEPTHS
PUBLISHED = {
    "source": "Akyürek et al. 2022 (ICLR 2023), 'What learning algorithm is in-context learning? "
    "Investigations with linear models', Sec. 4 and Fig. 3 (curves, no table); d = 8, x, w ~ N(0, I)",
    "claim": "small / shallow trained models match one GD step; with depth they match least squares "
    "(noiseless) or ridge at lam = sigma^2 / tau^2 (noisy), by SPD and ILWD",
    "model_differs": "the paper trains GPT-style softmax transformers (up to 16 layers, width up to 512); "
    "here pure linear-attention stacks of depth 1, 2, 4 (a softmax + MLP model ran at ~8 steps/s for one "
    "seed on the shared CPU and was still at the one-step-GD loss after 1,500 steps, so it is left out)",
}


LABELS = {"gd1": "GD, 1 step (optimal lr)", "ridge": "ridge, lam = sigma^2/tau^2", "ls": "least squares"}


def label(key: str) -> str:
    return LABELS.get(key, f"GD, {key[2:]} steps (tuned lr)")


def evaluate_noise(noise: float, configs: dict, args) -> dict:
    """Train (or reuse) the runs of one noise level; SPD / ILWD of every seed against every algorithm."""
    first = configs[DEPTHS[0]]
    n_eval = first.train.final_eval_tasks
    probe_task = dataclasses.replace(first.task, n_query=study.N_PROBE)
    batch = probe_task.sample(train.heldout_key(first, train.HeldOut.FINAL), n_eval)  # contexts + N_PROBE probes (with labels)
    preds, hparams = algorithm_fits.algorithms(first, DEPTHS, n_eval)
    fits = {k: algorithm_fits.fit(f, batch) for k, f in preds.items()}
    zero_loss = float(compare.loss(0.0 * batch.y_query, batch.y_query))
    out = {"noise_std": noise, "n_contexts": n_eval, "n_probe": study.N_PROBE, "hparams": hparams,
           **algorithm_fits.algorithm_table(fits, batch), "zero_loss": zero_loss, "lam_grid": study.LAM_GRID.tolist(), "models": {}}
    for L, config in configs.items():
        run_dir = args.out / "runs" / config.name
        summary, params, diverged = runs.train_or_last_good(config, run_dir, lambda c: common.run(c, args))
        rows = algorithm_fits.model_distances(train.seed_models(config, params), batch, fits, study.LAM_GRID)
        closest, stats = algorithm_fits.summarise(rows, list(preds), study.PLATEAU * zero_loss)
        r = out["models"][L] = {
            "run": config.name, "diverged": diverged, **closest, "matched_gd": f"gd{L}", **stats,
            "log": [{"step": e["step"], "loss": e["loss"]} for e in plots.read_log(run_dir)],
            "train_wall_s": summary.get("wall_s"), "train_steps_per_s": summary.get("train_steps_per_s"),
        }
        dist = "  ".join(f"{k} {r[f'spd_{k}']['mean']:.3f}/{r[f'ilwd_{k}']['mean']:.3f}" for k in preds)
        print(f"  sigma={noise:g} L={L}: loss {r['loss']['mean']:.4f}; SPD/ILWD {dist}; closest {r['closest_by_mean']}; "
              f"per seed {r['closest_per_seed']['spd']}; best ridge lam {np.round(rows['best_ridge_lam'], 3).tolist()}; "
              f"off-plateau seeds {r['off_plateau']['seeds']} (closest {r['off_plateau'].get('closest')})"
              + ("  [diverged]" if diverged else ""), flush=True)
    return out


def off_plateau_values(r: dict, depth: int, key: str) -> list[float]:
    """The per-seed values of `key` at `depth`, NaN for seeds still on the initial plateau."""
    keep = set(r["models"][depth]["off_plateau"]["seeds"])
    return [v if s in keep else np.nan for s, v in enumerate(r["models"][depth][key]["values"])]


def draw(path, results: dict, title: str) -> None:
    """Every per-seed panel shows the seeds that left the initial plateau (the JSON has all)."""
    plt = common.pyplot()
    noises = list(results)
    fig, axes = plt.subplots(2, len(noises) + 2, figsize=(6 * (len(noises) + 2), 9))
    depths = np.array(DEPTHS)
    colors = {"gd1": "C0", "gd_matched": "C1", "ridge": "C2", "ls": "C3"}
    for col, noise in enumerate(noises):
        r = results[noise]
        for row, metric in enumerate(("spd", "ilwd")):
            ax = axes[row, col]
            lines = {"gd1": "gd1", "gd_matched": None, **({"ridge": "ridge"} if "ridge" in r["hparams"] else {}), "ls": "ls"}
            for name, key in lines.items():
                keys = [key if key else r["models"][L]["matched_gd"] if L > 1 else "gd1" for L in DEPTHS]
                values = [off_plateau_values(r, L, f"{metric}_{k}") for L, k in zip(DEPTHS, keys, strict=True)]
                common.band(ax, depths, values, "GD, L steps (lr tuned for L)" if name == "gd_matched" else label(key),
                            color=colors[name], marker="o", ls="--" if name == "gd_matched" else "-")
            ref = r["algorithm_distances"].get("gd1|ridge" if "ridge" in r["hparams"] else "gd1|ls")
            if ref:
                pair = "GD1 vs ridge" if "ridge" in r["hparams"] else "GD1 vs LS"
                ax.axhline(ref[metric], color="gray", lw=0.8, ls=":", label=f"{pair} (algorithms)")
            n_off = "/".join(str(len(r["models"][L]["off_plateau"]["seeds"])) for L in DEPTHS)
            ax.set(xlabel="LSA depth L", ylabel=f"{metric.upper()} (trained model vs algorithm)", yscale="log", xticks=depths,
                   title=f"{metric.upper()}, noise sigma = {noise:g} (seeds off plateau: {n_off})")
            ax.legend(fontsize=7)
    ax = axes[0, -2]
    floor = 0.5 * min(min([v for v in r["algorithm_loss"].values() if v > 1e-3]
                          + [r["models"][L]["loss"]["min"] for L in DEPTHS]) for r in results.values())
    for i, noise in enumerate(noises):
        r = results[noise]
        common.band(ax, depths, [off_plateau_values(r, L, "loss") for L in DEPTHS], f"trained LSA, sigma={noise:g}",
                    color=f"C{i}", marker="o")
        for key, ls in (("gd1", ":"), ("ridge", "-."), ("ls", "--")):
            value = r["algorithm_loss"].get(key)
            if value is None:
                continue
            if value < floor:  # least squares without noise (0 up to rounding): off the log scale
                ax.plot([], [], color=f"C{i}", ls=ls, lw=0.8, label=f"{label(key)}, sigma={noise:g}: {value:.1e} (off scale)")
            else:
                ax.axhline(value, color=f"C{i}", ls=ls, lw=0.8, label=f"{label(key)}, sigma={noise:g}")
    ax.set(xlabel="LSA depth L", ylabel="held-out loss (0.5 mean sq.)", yscale="log", xticks=depths, title="loss vs depth")
    ax.set_ylim(bottom=floor)
    ax.legend(fontsize=6)
    ax = axes[1, -2]
    for i, noise in enumerate(noises):
        for L in DEPTHS:
            log = results[noise]["models"][L]["log"]
            ax.plot([e["step"] for e in log], np.mean([e["loss"] for e in log], axis=1), color=f"C{i}",
                    alpha=0.35 + 0.65 * L / DEPTHS[-1], label=f"sigma={noise:g}, L={L}")
    ax.set(xlabel="training step", ylabel="eval loss (mean over seeds)", yscale="log", title="training curves")
    ax.legend(fontsize=7)
    for ax, key, ylabel, what in ((axes[0, -1], "best_ridge_lam", "lam", "ridge lam closest to the model (min ILWD over a grid)"),
                                  (axes[1, -1], "best_ridge_ilwd", "ILWD", "ILWD to that closest ridge")):
        for i, noise in enumerate(noises):
            r = results[noise]
            common.band(ax, depths, [off_plateau_values(r, L, key) for L in DEPTHS], f"trained LSA, sigma={noise:g}",
                        color=f"C{i}", marker="o")
            if key == "best_ridge_lam":
                ax.axhline(noise**2, color=f"C{i}", ls="--", lw=0.8, label=f"Bayes lam = sigma^2/tau^2 = {noise**2:g}")
        ax.set(xlabel="LSA depth L", ylabel=ylabel, xticks=depths, title=what)
        if key == "best_ridge_lam":
            ax.set_yscale("symlog", linthresh=0.01)
            ax.set_ylim(bottom=0)
        else:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    noises, first = study.NOISES, configs[study.NOISES[0]][DEPTHS[0]]
    cfg = first.train
    print(f"{NAME}: {common.mode(args)}, L = {DEPTHS}, sigma = {noises}, {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}",
          flush=True)
    results = {noise: evaluate_noise(noise, configs[noise], args) for noise in noises}
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, f"Trained LSA vs GD / ridge / least squares (Akyürek et al. 2022): d={study.D}, N={study.N_CTX}, "
         f"{cfg.n_seeds} seeds (mean, min-max band over seeds off the loss plateau), {cfg.steps} steps of batch {cfg.batch_size} "
         f"[{common.mode(args)}]")
    numbers = {"d": study.D, "n_ctx": study.N_CTX, "depths": list(DEPTHS), "noises": list(noises), "n_probe": study.N_PROBE,
               "seeds": train.seeds_of(first), "steps": cfg.steps, "by_noise": {f"{noise:g}": results[noise] for noise in noises}}
    path = common.write_numbers(args, NAME, numbers, [c for per in configs.values() for c in per.values()], PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
