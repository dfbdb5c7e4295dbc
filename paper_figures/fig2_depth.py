"""Figure 2 (von Oswald et al. 2023, Figs. 3-4): K-layer LSA transformers vs K steps of GD and GD++.

The runs: icl/experiments/fig2_depth.py (K = 1..5, separate or shared weights); the measurements:
icl/analysis/depth.py and tuning.py. K-step GD has its lr tuned for K steps (grid, then golden
section), K-step GD++ its (lr, gamma) (grid, then Nelder-Mead), on held-out tuning tasks; all are
evaluated on the 10,000 tasks of the final table. Shown: loss vs K, model_cos with GD / GD++ vs K,
the read-out after every layer of the deepest models vs GD / GD++ after as many steps, training curves.

    python paper_figures/fig2_depth.py               # full: 10 runs x 5 seeds x 5,000 steps (~2 h, 2-core CPU)
    python paper_figures/fig2_depth.py --quick       # K = 1, 2, 4; 500 steps of batch 256, 2 seeds (~3 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import compare, plots, runs, solvers, train
from icl.analysis import depth, tuning
from icl.experiments import fig2_depth as study

NAME = "fig2_depth"
PLATEAU_LOSS = 0.35  # a seed whose final loss is above this is still on the initial plateau (~0.39)
PUBLISHED = {
    "source": "von Oswald et al. 2023, Figs. 3 and 4 (curves; no table). docs/math.md has no official-code "
    "numbers for K > 1 except the pitfall: L = 4 trained to 0.37 vs 4-step GD 0.95 with U(-1, 1) inputs.",
    "claim_loss": "a trained K-layer LSA outperforms K steps of plain GD and matches K steps of GD++ "
    "(recurrent / shared: close to GD++ as well)",
    "claim_cos": "model cosine with GD++ stays high (~1) with depth, while cosine with plain GD decreases",
    "claim_layers": "the read-out after layer l of a trained deep model follows GD++ step l",
}
STYLES = {"sep": ("C0", "o", "trained, separate layers"), "shared": ("C1", "s", "trained, shared layer")}


def draw(path, results, depths, solver_rows, ls_loss, title):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(25, 4.6))
    ks, kmax = np.array(depths), depths[-1]
    layers = np.arange(1, kmax + 1)
    ax = axes[0]
    for kind, (color, marker, label) in STYLES.items():
        common.band(ax, ks, [results[kind][k]["final"]["loss"] for k in depths], label, color=color, marker=marker)
        for k in depths:
            if results[kind][k]["diverged"]:
                ax.annotate("diverged", (k, np.mean(results[kind][k]["final"]["loss"])), color=color, fontsize=7)
    ax.plot(ks, [solver_rows[k]["gd_loss"] for k in depths], "k--", marker="x", label="K steps GD (lr tuned for K)")
    ax.plot(ks, [solver_rows[k]["gd_plus_plus_loss"] for k in depths], "g-.", marker="+", label="K steps GD++ (lr, gamma fitted)")
    shown = [np.min(results[kind][k]["final"]["loss"]) for kind in results for k in depths]
    shown += [solver_rows[k][key] for k in depths for key in ("gd_loss", "gd_plus_plus_loss")]
    ax.plot([], [], " ", label=f"(least squares: {ls_loss:.1e})")
    ax.set(xlabel="K (layers / steps)", ylabel="held-out loss", yscale="log", title="loss vs depth", xticks=ks,
           ylim=(0.7 * min(shown), 1.4 * max(shown)))
    for kind, (color, marker, label) in STYLES.items():
        for solver, ls, who in (("gd", "--", "GD"), ("gd_plus_plus", "-", "GD++")):
            common.band(axes[1], ks, [results[kind][k]["final"][f"model_cos_{solver}"] for k in depths],
                        f"{label.split(', ')[1]} vs {who}", color=color, marker=marker, ls=ls)
            common.band(axes[3], layers, [r[f"model_cos_{solver}"] for r in results[kind][kmax]["layers"]],
                        f"{label.split(', ')[1]} vs {who}", color=color, marker=marker, ls=ls)
        common.band(axes[2], layers, [r["loss"] for r in results[kind][kmax]["layers"]], label, color=color, marker=marker)
    axes[1].set(xlabel="K", ylabel="model_cos", title="cosine of sensitivities with GD / GD++", xticks=ks)
    rows = results["sep"][kmax]["layers"]
    axes[2].plot(layers, [r["gd_loss"] for r in rows], "k--", marker="x", label=f"GD step l (lr tuned for {kmax})")
    axes[2].plot(layers, [r["gd_plus_plus_loss"] for r in rows], "g-.", marker="+", label=f"GD++ step l (fitted for {kmax})")
    axes[2].set(yscale="log")
    for ax, ylabel in ((axes[2], "loss after layer l / step l"), (axes[3], "model_cos per layer")):
        ax.set(xlabel=f"layer l of the {kmax}-layer models", ylabel=ylabel, title=f"per layer, K = {kmax}", xticks=layers)
    for kind, (color, _, _) in STYLES.items():
        for k in depths:
            log = results[kind][k]["log"]
            axes[4].plot([r["step"] for r in log], np.mean([r["loss"] for r in log], axis=1), color=color,
                         alpha=0.35 + 0.65 * k / kmax, lw=1, label=f"{kind} K={k}" if k in (depths[0], kmax) else None)
    axes[4].set(xlabel="training step", ylabel="held-out loss (mean over seeds)", yscale="log", title="training curves")
    for ax in axes:
        ax.legend(fontsize=7)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    depths, configs = study.depths(mode), study.configs(mode, args.steps, args.batch_size)
    first = configs[(depths[0], False)]
    cfg = first.train
    print(f"{NAME}: {common.mode(args)}, K = {depths}, {cfg.n_seeds} seeds, {cfg.steps} steps", flush=True)
    eval_batch = first.task.sample(train.heldout_key(first, train.HeldOut.FINAL), cfg.final_eval_tasks)
    tune_batch = first.task.sample(train.heldout_key(first, train.HeldOut.TUNE), cfg.final_eval_tasks)
    eta1 = solvers.optimal_gd_lr(first.task, train.heldout_key(first, train.HeldOut.GD_LR))

    solver_rows = {}
    for k in depths:
        hp = tuning.tune_depth(tune_batch, k, 1.6 * eta1)
        losses = depth.solver_losses(eval_batch, k, hp)
        solver_rows[k] = {"gd_lr": hp["gd_lr"], "gd_loss": losses["gd_loss"], "gd_plus_plus_lr": hp["gd_plus_plus_lr"],
                          "gd_plus_plus_gamma": hp["gd_plus_plus_gamma"], "gd_plus_plus_loss": losses["gd_plus_plus_loss"]}
        print(f"  K={k}: GD lr {hp['gd_lr']:.3f} loss {losses['gd_loss']:.4f};  GD++ lr {hp['gd_plus_plus_lr']:.3f} "
              f"gamma {hp['gd_plus_plus_gamma']:.4f} loss {losses['gd_plus_plus_loss']:.4f}", flush=True)
    ls_loss = float(compare.loss(solvers.least_squares(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query), eval_batch.y_query))

    results = {"sep": {}, "shared": {}}
    for (k, shared), config in configs.items():
        run_dir = args.out / "runs" / config.name
        summary, params, diverged = runs.train_or_last_good(config, run_dir, lambda c: common.run(c, args))
        cmp = depth.compare_layers(config, params, eval_batch, solver_rows[k])
        results["shared" if shared else "sep"][k] = {**cmp, "diverged": diverged, "log": plots.read_log(run_dir),
                                                     "train_steps_per_s": summary.get("train_steps_per_s"),
                                                     "train_wall_s": summary.get("wall_s")}
        f = cmp["final"]
        print(f"  {config.name}: loss {np.mean(f['loss']):.4f} (GD {f['gd_loss']:.4f}, GD++ {f['gd_plus_plus_loss']:.4f}); "
              f"cos GD {np.mean(f['model_cos_gd']):.4f}, GD++ {np.mean(f['model_cos_gd_plus_plus']):.4f}"
              + ("  [diverged]" if diverged else ""), flush=True)

    png, _ = common.figure_paths(args, NAME)
    draw(png, results, depths, solver_rows, ls_loss,
         f"K-layer LSA vs K steps of GD / GD++ (paper Figs. 3-4): {cfg.n_seeds} seeds (mean, min-max band), "
         f"{cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")
    numbers = {
        "depths": list(depths), "n_tasks": cfg.final_eval_tasks, "eta_one_step": eta1,
        "least_squares_loss": ls_loss, "solvers": {str(k): v for k, v in solver_rows.items()},
        "trained": {kind: {str(k): depth.summarise(r, PLATEAU_LOSS) for k, r in results[kind].items()} for kind in results},
        "seeds": train.seeds_of(first), "steps": cfg.steps,
        "tuning": "GD lr: 201-point grid on [0, 1.6 eta_1] then golden section; GD++: 41 x 41 grid on 2,000 "
        "tasks (lr in [0, 1.6 eta_1], gamma in [-0.1, 0.7]) then Nelder-Mead on all; on held-out tuning tasks "
        "(fold_in(key(eval_seed), 4)), evaluated on the final-table tasks (heldout_key 1)",
    }
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
