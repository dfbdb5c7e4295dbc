"""Claim 19: the transient ridge — at intermediate task diversity a transformer first behaves like
ridge regression and later moves to dMMSE over its pretraining pool (Carroll, Hoogland,
Farrugia-Roberts & Murfet 2025).

For each pool size K of experiments.claim19_transient_ridge (claim 4's task and 2-layer softmax
transformer; K = 4 small control, 16 / 24 intermediate, 1024 large control; constant learning
rate), every 100 steps of training (quick: 50; icl.analysis.transient_ridge.trajectory, the
weights of icl.train):
  * the model's dPM to ridge and to dMMSE(K), and its MSE, on 1,000 fresh and 1,000 pool tasks;
  * per seed the transient rule on the fresh-task curves (ridge-like minimum, later rise of the
    distance to ridge, fall of the distance to dMMSE) and the verdict rule, both in
    icl.analysis.transient_ridge (written down before the full run).

    python paper_figures/claim19_transient_ridge.py            # full: 4 K x 3 seeds x 5,000 steps of batch 128
    python paper_figures/claim19_transient_ridge.py --quick    # K = 16, 1024; 2 seeds x 1,000 steps
"""

from __future__ import annotations

import numpy as np

import common
from icl.analysis import transient_ridge as analysis
from icl.experiments import claim19_transient_ridge as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Carroll, Hoogland, Farrugia-Roberts & Murfet, 'Dynamics of transient structure in in-context linear "
    "regression transformers' (2025, arXiv 2501.17745): trained on in-context linear regression with a finite pool of "
    "M tasks at intermediate task diversity, transformers first behave like ridge regression and then specialise to "
    "the pool (dMMSE); the out-of-distribution loss is non-monotone over training, and joint trajectory PCA shows the "
    "development deflected towards ridge on its way to dMMSE. No numbers to compare with at our scale.",
    "scale_down": "claim 4's 2-layer softmax transformer (width 32) and d = 8, N = 16, sigma^2 = 0.25; a few thousand "
    "steps of batch 128 on a CPU instead of the paper's long GPU runs; the distances are dPM on fresh tasks, not a "
    "trajectory PCA",
    "criterion": f"per seed, transient = the smallest (running median of {analysis.SMOOTH} records) distance to ridge on "
    f"fresh tasks is below the distance to dMMSE and below {analysis.NEAR} x E[ridge^2], the final distance to ridge is "
    f">= {analysis.RISE} x that minimum, and the final distance to dMMSE is <= {analysis.FALL} x its value there. "
    "held: a majority of seeds transient at some intermediate K and neither control (small, large K) transient in a "
    "majority; held in part: some intermediate seed transient otherwise; did not hold: none",
}


def report(k: int, role: str, r: dict) -> None:
    print(f"  K = {k} ({role}): fresh tasks: ridge MSE {r['fresh_ridge_mse']:.3f}, dMMSE MSE {r['fresh_dmmse_mse']:.3f}, "
          f"dPM(ridge, dMMSE) {r['fresh_ridge_dmmse']:.3f}, E[ridge^2] {r['fresh_ridge_sq']:.2f}; transient "
          f"{r['n_transient']} / {r['n_seeds']} seeds ({r['wall_s']:.0f} s)", flush=True)
    for i, s in enumerate(r["seeds"]):
        print(f"    seed {i}: d_ridge min {s['d_ridge_min']:.3f} at step {s['min_step']} (d_dmmse there {s['d_dmmse_at_min']:.3f}), "
              f"end {s['d_ridge_end']:.3f} (x{s['rise']:.2f}), d_dmmse end {s['d_dmmse_end']:.3f} (x{s['fall']:.2f}); "
              f"ridge-like {s['ridge_like']}, rises {s['rises']}, falls {s['falls']}, crossed {s['crossed']}; "
              f"fresh MSE min {r['fresh_mse_min'][i]:.3f} at {r['fresh_mse_min_step'][i]}, end {r['fresh_mse_end'][i]:.3f}", flush=True)


def draw(path, results: dict, configs: dict) -> None:
    plt = common.pyplot()
    keys = list(results)
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.2 * (len(keys) + 1), 4.6), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=False):
        r = results[k]
        c = r["curves"]
        for s in range(r["n_seeds"]):
            kw = dict(lw=1, alpha=0.85)
            ax.plot(c["steps"], c["fresh_d_ridge"][s], color="C0", label="to ridge (fresh tasks)" if s == 0 else None, **kw)
            ax.plot(c["steps"], c["fresh_d_dmmse"][s], color="C3", label="to dMMSE (fresh tasks)" if s == 0 else None, **kw)
            ax.plot(c["steps"], c["pool_d_ridge"][s], color="C0", ls=":", label="to ridge (pool tasks)" if s == 0 else None, **kw)
            ax.plot(c["steps"], c["pool_d_dmmse"][s], color="C3", ls=":", label="to dMMSE (pool tasks)" if s == 0 else None, **kw)
            seed = r["seeds"][s]
            ax.scatter([seed["min_step"]], [seed["d_ridge_min"]], color="C0", s=25, zorder=3,
                       marker="*" if seed["transient"] else "o")
        ax.axhline(r["fresh_ridge_dmmse"], color="grey", lw=0.7, ls="--", label="dPM(ridge, dMMSE), fresh")
        ax.set(yscale="log", xlabel="training step", title=f"K = {k} ({study.ROLES[k]}): {r['n_transient']}/{r['n_seeds']} transient")
        if k == keys[0]:
            ax.set_ylabel("dPM (mean squared prediction difference)")
            ax.legend(fontsize=7)
    ax = axes[0][-1]
    for j, k in enumerate(keys):
        c = results[k]["curves"]
        ax.plot(c["steps"], np.mean(c["fresh_mse"], axis=0), color=f"C{j}", label=f"K = {k}")
    ax.axhline(results[keys[0]]["fresh_ridge_mse"], color="k", lw=0.7, ls="--", label="ridge")
    ax.set(yscale="log", xlabel="training step", ylabel="MSE on fresh tasks (seed mean)", title="out-of-distribution loss")
    ax.legend(fontsize=7)
    cfg = next(iter(configs.values())).train
    common.save(fig, path, f"Transient ridge? distance to ridge / dMMSE over training, {cfg.n_seeds} seeds x {cfg.steps} steps "
                f"of batch {cfg.batch_size} (star: a transient seed)")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    results = {}
    for k, config in configs.items():
        common.announce(config, args)
        traj = analysis.trajectory(config, study.fresh_task(), study.EVAL_TASKS, study.LAM, study.NOISE_STD,
                                   args.out / "runs" / config.name)
        args.train_wall_s = getattr(args, "train_wall_s", 0.0) + float(traj["wall_s"])
        r = analysis.summarise(traj)
        results[k] = r
        report(k, study.ROLES[k], r)
    by_role: dict[str, list[tuple[int, int]]] = {}
    for k, r in results.items():
        by_role.setdefault(study.ROLES[k], []).append((r["n_transient"], r["n_seeds"]))
    verdict = analysis.verdict(by_role)
    counts = ", ".join(f"K = {k}: {r['n_transient']}/{r['n_seeds']}" for k, r in results.items())
    print(f"verdict: {verdict} (transient seeds: {counts})")
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs)
    numbers = {f"k{k}": {"K": k, "role": study.ROLES[k], **r} for k, r in results.items()}
    path = common.write_numbers(args, NAME, {"by_K": numbers, "by_role": by_role,
                                             "eval": {"n_tasks": study.EVAL_TASKS, "lam": study.LAM,
                                                      "noise_std": study.NOISE_STD, "every": study.EVAL_EVERY}},
                                list(configs.values()), PUBLISHED, verdict=verdict,
                                seeds=next(iter(configs.values())).train.n_seeds,
                                steps=next(iter(configs.values())).train.steps)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
