"""Figure 3: a trained shared (looped) LSA layer run for more steps than it was trained for, with
damping, vs gradient descent with more steps (von Oswald et al. 2023, Sec. 4, recurrent transformers).

The runs: figure 2's shared stacks (icl/experiments/fig3_recurrence.py); the method, damping and the
GD / GD++ curves: icl/analysis/looping.py. All curves on the 10,000 final-table tasks.

    python paper_figures/fig3_recurrence.py               # full: reuses fig2's shared runs (K = 2, 3, 5)
    python paper_figures/fig3_recurrence.py --quick       # K = 2, 4 of fig2 --quick, K' <= 12 (~1 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import compare, runs, solvers, train
from icl.analysis import looping, tuning
from icl.experiments import fig3_recurrence as study

NAME = "fig3_recurrence"
PUBLISHED = {
    "source": "von Oswald et al. 2023, Sec. 4 (recurrent transformers, Figs. 3-4 curves); docs/math.md gives no "
    "reference numbers for this experiment",
    "claim": "a looped (shared) trained layer keeps implementing an iterative (GD++-like) learner when run "
    "for more steps; with a damped update it keeps improving like GD with more steps",
}


def draw(path, results, ks, best_ks, gd_best, k_max, title):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(6 * (len(results) + 1), 4.6))
    for ax, (k, r) in zip(axes[:-1], results.items(), strict=True):  # the last axis: the damping panel
        common.band(ax, ks, r["undamped"], "trained shared layer, lambda = 1", color="C0", marker="o", ms=3)
        common.band(ax, ks, r["damped"], f"damped, lambda* = {r['lambda'].mean():.2f} (fitted at K' = {k_max})",
                    color="C1", marker="s", ms=3)
        ax.plot(ks, r["gd_fixed"], "k--", label=f"GD, lr {r['gd_fixed_lr']:.2f} (tuned for {k} steps)")
        ax.plot(ks, r["gd_plus_plus"], "g-.", label=f"GD++, fitted for {k} steps")
        ax.plot(best_ks, gd_best, "k:", marker=".", label="GD, lr re-tuned for each K'")
        ax.axvline(k, color="gray", lw=0.5)
        ax.set(xlabel="K' (layer applications / steps)", ylabel="held-out loss", yscale="log",
               title=f"shared layer trained for K = {k}" + (" [diverged]" if r["diverged"] else ""))
        low = np.nanmin(np.concatenate([r["damped"].ravel(), r["undamped"].ravel(), r["gd_plus_plus"], gd_best]))
        ax.set_ylim(0.5 * low, 1.0)
        ax.legend(fontsize=7)
    for j, (k, r) in enumerate(results.items()):
        common.band(axes[-1], r["lam_grid"], r["lam_curve"], f"K_train = {k}", color=f"C{j}")
    axes[-1].set(xlabel="damping lambda (out weights x lambda)", ylabel=f"loss after K' = {k_max} applications", yscale="log",
                 title="damping", ylim=(None, 10))
    axes[-1].legend(fontsize=7)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    configs, k_max = study.configs(mode, args.steps, args.batch_size), study.k_max(mode)
    first = next(iter(configs.values()))
    cfg = first.train
    print(f"{NAME}: {common.mode(args)}, K_train = {tuple(configs)}, K' <= {k_max}, {cfg.n_seeds} seeds, "
          f"{cfg.steps} steps", flush=True)
    eval_batch = first.task.sample(train.heldout_key(first, train.HeldOut.FINAL), cfg.final_eval_tasks)
    tune_batch = first.task.sample(train.heldout_key(first, train.HeldOut.TUNE), cfg.final_eval_tasks)
    lr_max = 1.6 * solvers.optimal_gd_lr(first.task, train.heldout_key(first, train.HeldOut.GD_LR))
    ks = list(range(1, k_max + 1))
    best_ks = [k for k in study.BEST_KS if k <= k_max]
    lr_per_k = [tuning.tune_gd(tune_batch, k, lr_max) for k in best_ks]
    gd_best = [looping.gd_curve(eval_batch, lr, k)[-1] for k, lr in zip(best_ks, lr_per_k, strict=True)]
    ls_loss = float(compare.loss(solvers.least_squares(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query), eval_batch.y_query))
    print(f"  GD, lr re-tuned per K': K'=1 {gd_best[0]:.4f}, K'={k_max} {gd_best[-1]:.4f}; least squares {ls_loss:.2e}", flush=True)

    results = {}
    for k, config in configs.items():
        _, params, diverged = runs.train_or_last_good(config, args.out / "runs" / config.name, lambda c: common.run(c, args))
        r = results[k] = {**looping.loop_stack(config, params, k_max, eval_batch, tune_batch, lr_max, study.LAMBDA_MAX,
                                               study.LAMBDA_GRID, study.LAMBDA_TASKS), "diverged": diverged}
        print(f"  K_train={k}: at K'={k} loss {r['undamped'][k - 1].mean():.4f}; at K'={k_max}: undamped {r['undamped'][-1].mean():.3g}, "
              f"damped (lambda {r['lambda'].mean():.3f}) {r['damped'][-1].mean():.4f}; GD fixed lr {r['gd_fixed'][-1]:.4f}, "
              f"GD++ {r['gd_plus_plus'][-1]:.4f}, GD best {gd_best[-1]:.4f}", flush=True)

    png, _ = common.figure_paths(args, NAME)
    draw(png, results, ks, best_ks, gd_best, k_max, f"Looping a trained shared layer beyond its training depth (paper Sec. 4): "
         f"{cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")
    numbers = {
        "k_prime": ks, "n_tasks": cfg.final_eval_tasks, "least_squares_loss": ls_loss,
        "gd_best_k_prime": best_ks, "gd_lr_per_k_prime": lr_per_k, "gd_best_per_k_prime": gd_best,
        "trained": {str(k): {
            "undamped": common.stats(r["undamped"]), "damped": common.stats(r["damped"]),
            "lambda_star": common.stats(r["lambda"]), "loss_vs_lambda": {"lambda": r["lam_grid"].tolist(), **common.stats(r["lam_curve"])},
            **{key: r[key] for key in ("gd_fixed_lr", "gd_fixed", "gd_plus_plus_lr", "gd_plus_plus_gamma", "gd_plus_plus", "diverged")},
        } for k, r in results.items()},
        "seeds": train.seeds_of(first), "steps": cfg.steps,
        "method": "lambda* per seed: 31-point grid on [0, 1.5] then golden section, loss after K'_max layers on 2,000 "
        "held-out tuning tasks; curves on the final-table tasks",
    }
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
