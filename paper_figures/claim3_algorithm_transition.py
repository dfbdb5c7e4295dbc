"""Claim 3 (Akyürek et al. 2022, Sec. 4): with depth and label noise, trained in-context learners move from GD-like to ridge / least squares.

"What learning algorithm is in-context learning? Investigations with linear models" (arXiv
2211.15661): trained transformers' predictions match one step of GD when they are small, and ridge
regression at the Bayes-optimal lam = sigma^2 / tau^2 (least squares without noise) when they are
deep; the closest algorithm is measured by
    SPD(f, g)  = E_D E_x (f(x | D) - g(x | D))^2           squared prediction difference
    ILWD(f, g) = E_D ||w_hat_f(D) - w_hat_g(D)||^2          implicit linear weight difference
with w_hat the least-squares linear fit of a learner's predictions on probe queries for a fixed
context (icl.probes). Here: pure linear-attention (LSA) stacks of L = 1, 2, 4 unshared layers,
trained by icl.train on d = 8, N = 16 linear tasks, x ~ N(0, I_8), w ~ N(0, I_8), label noise
sigma in NOISES, 5 seeds each; then on held-out contexts (N_PROBE probe queries each, from the
task's input distribution) SPD and ILWD of every model seed against
  * one GD step at the closed-form optimal lr (solvers.optimal_gd_lr);
  * L steps of GD, lr tuned for L steps on separate tuning tasks (fig2_depth.tune_gd);
  * ridge at the Bayes-optimal lam = sigma^2 / tau^2 (sigma > 0; at sigma = 0 it is least squares);
  * least squares;
and the same distances between the algorithms themselves (the scale on which "closest" is read).

sigma = 1 rather than 0.5: at d = 8, N = 16, tau = 1, ridge and least squares differ by SPD 0.02 at
sigma = 0.5 (too close to tell apart from a model's distance to either), 0.25 at sigma = 1.
With isotropic probes E_x (dw . x)^2 = ||dw||^2, so for linear learners SPD ~ ILWD up to sampling.

Training: experiments.paper_1layer's model and optimiser (init 0.002, Adam b2 0.98, clip 1), lr
1e-3, and for L = 4 the deep-stack lr 5e-4 of fig2_depth.py. No activation clipping: fig2's clip of
10 would cut labels here (y has std sqrt(8) ~ 2.8), and the unclipped stack is exactly linear in
the query (so its implicit weights are exact). A run that diverges is evaluated at its last good
checkpoint and flagged.

    python paper_figures/claim3_algorithm_transition.py           # full: 6 runs x 5 seeds x 5,000 steps of batch 512
        # measured on the shared 2-core CPU (load ~15): 13.5 min of training per noise level (L = 4: 9.7
        # steps/s), the two levels trained in parallel processes through these configs; evaluation 1 min
    python paper_figures/claim3_algorithm_transition.py --steps 4000 --batch-size 256   # intermediate
    python paper_figures/claim3_algorithm_transition.py --quick   # 600 steps of batch 256, 2 seeds
        # 4.3 min from scratch under load ~15 (64 s of CPU time)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

import common
import experiments
from fig2_depth import train_or_last_good, tune_gd
from icl import compare, plots, probes, solvers, tasks, train
from icl.config import ExperimentConfig, TrainConfig

NAME = "claim3_algorithm_transition"
BASE = experiments.get("paper_1layer")
D, N_CTX = 8, 16
NOISES = (0.0, 1.0)
DEPTHS = (1, 2, 4)
N_PROBE = 64  # probe queries per held-out context (8 x d)
LAM_GRID = np.concatenate([[0.0], np.logspace(-2, 1.5, 36)])  # for each model's best-fitting ridge lam
PLATEAU = 0.75  # a seed whose final loss is above PLATEAU x the zero predictor's never left the initial plateau
PUBLISHED = {
    "source": "Akyürek et al. 2022 (ICLR 2023), 'What learning algorithm is in-context learning? "
    "Investigations with linear models', Sec. 4 and Fig. 3 (curves, no table); d = 8, x, w ~ N(0, I)",
    "claim": "small / shallow trained models match one GD step; with depth they match least squares "
    "(noiseless) or ridge at lam = sigma^2 / tau^2 (noisy), by SPD and ILWD",
    "model_differs": "the paper trains GPT-style softmax transformers (up to 16 layers, width up to 512); "
    "here pure linear-attention stacks of depth 1, 2, 4 (a softmax + MLP model ran at ~8 steps/s for one "
    "seed on the shared CPU and was still at the one-step-GD loss after 1,500 steps, so it is left out)",
}


def make_task(noise: float):
    return tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", noise_std=noise)


def make_config(noise: float, depth: int, quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    model = dataclasses.replace(BASE.model, n_layers=depth, shared=False)
    optim = dataclasses.replace(BASE.optim, lr=5e-4 if depth > 3 else 1e-3)
    if quick:
        cfg = TrainConfig(steps=600, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=600,
                          eval_tasks=512, final_eval_tasks=1000)
    else:
        cfg = TrainConfig(steps=steps or 5000, batch_size=batch_size or 512, n_seeds=5, eval_every=100,
                          ckpt_every=500, eval_tasks=1024, final_eval_tasks=2000)
    against = ("gd", "least_squares") + (("bayes_ridge",) if noise > 0 else ())
    return dataclasses.replace(BASE, name=f"claim3_s{noise:g}_L{depth}", task=make_task(noise), model=model,
                               optim=optim, train=cfg, compare_against=against)


def algorithms(task, config: ExperimentConfig, depths, n_tune: int) -> tuple[dict, dict]:
    """{key: predictor} and {key: hyper-parameters}: gd1 (closed-form lr), gd<L> (lr tuned for L
    steps on tuning tasks), ridge (sigma > 0, lam = sigma^2 / tau^2), ls."""
    eta1 = solvers.optimal_gd_lr(task, train.heldout_key(config, 2))
    tune_batch = task.sample(jax.random.fold_in(jax.random.key(config.train.eval_seed), 4), n_tune)
    preds = {"gd1": functools.partial(solvers.gd, lr=eta1, steps=1)}
    hparams = {"gd1": {"lr": eta1, "steps": 1, "tuning": "closed form E[a y] / E[a^2]"}}
    for depth in depths:
        if depth > 1:
            lr = tune_gd(tune_batch, depth, 1.6 * eta1)
            preds[f"gd{depth}"] = functools.partial(solvers.gd, lr=lr, steps=depth)
            hparams[f"gd{depth}"] = {"lr": lr, "steps": depth, "tuning": "201-point grid on [0, 1.6 eta_1] then golden section"}
    if task.noise_std > 0:
        lam = (task.noise_std / task.weight_std) ** 2
        preds["ridge"] = functools.partial(solvers.ridge, lam=lam)
        hparams["ridge"] = {"lam": lam}
    preds["ls"] = solvers.least_squares
    hparams["ls"] = {}
    return preds, hparams


LABELS = {"gd1": "GD, 1 step (optimal lr)", "ridge": "ridge, lam = sigma^2/tau^2", "ls": "least squares"}


def label(key: str) -> str:
    return LABELS.get(key, f"GD, {key[2:]} steps (tuned lr)")


def evaluate_noise(noise: float, configs: dict, args) -> dict:
    """Train (or reuse) the runs of one noise level; SPD / ILWD of every seed against every algorithm."""
    first = configs[DEPTHS[0]]
    task = first.task
    n_eval = first.train.final_eval_tasks
    probe_task = dataclasses.replace(task, n_query=N_PROBE)
    batch = probe_task.sample(train.heldout_key(first, 1), n_eval)  # contexts + N_PROBE probes (with labels)
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query  # [B, N, d], [B, N], [B, M, d]
    preds, hparams = algorithms(task, first, DEPTHS, n_eval)
    algo_fits = {k: probes.implicit_fit(f, xc, yc, xq) for k, f in preds.items()}
    ridge_path = [solvers.ridge_weights(xc, yc, float(lam)) for lam in LAM_GRID]  # [G] x [B, d]
    zero_loss = float(compare.loss(0.0 * batch.y_query, batch.y_query))
    out = {
        "noise_std": noise, "n_contexts": n_eval, "n_probe": N_PROBE, "hparams": hparams,
        "algorithm_loss": {k: float(compare.loss(f.predictions, batch.y_query)) for k, f in algo_fits.items()},
        "algorithm_distances": {f"{a}|{b}": {m: float(v) for m, v in probes.distances(algo_fits[a], algo_fits[b]).items()}
                                for i, a in enumerate(algo_fits) for b in list(algo_fits)[i + 1:]},
        "zero_loss": zero_loss, "lam_grid": LAM_GRID.tolist(), "models": {},
    }
    for depth, config in configs.items():
        summary, params, diverged = train_or_last_good(config, args)
        rows = {"loss": [], "linear_residual": [], "best_ridge_lam": [], "best_ridge_ilwd": [],
                **{f"{m}_{k}": [] for k in preds for m in ("spd", "ilwd")}}
        for model in train.seed_models(config, params):
            fit = probes.implicit_fit(model.predict, xc, yc, xq)
            rows["loss"].append(float(compare.loss(fit.predictions, batch.y_query)))
            rows["linear_residual"].append(float(fit.residual_mse.mean() / (fit.predictions**2).mean()))
            path = [float(probes.ilwd(fit.weights, w)) for w in ridge_path]  # ILWD to ridge(lam) along the grid
            rows["best_ridge_lam"].append(float(LAM_GRID[int(np.argmin(path))]))
            rows["best_ridge_ilwd"].append(float(np.min(path)))
            for k, algo in algo_fits.items():
                for m, v in probes.distances(fit, algo).items():
                    rows[f"{m}_{k}"].append(float(v))
        closest = {m: [min(preds, key=lambda k: rows[f"{m}_{k}"][s]) for s in range(config.train.n_seeds)] for m in ("spd", "ilwd")}
        off = np.asarray(rows["loss"]) < PLATEAU * zero_loss  # [S] seeds that left the initial plateau
        off_plateau = {"seeds": np.flatnonzero(off).tolist()}
        if off.any():
            off_plateau.update({key: float(np.mean(np.asarray(v)[off])) for key, v in rows.items()})
            off_plateau["best_ridge_lam_median"] = float(np.median(np.asarray(rows["best_ridge_lam"])[off]))
            off_plateau["closest"] = {m: min(preds, key=lambda k: off_plateau[f"{m}_{k}"]) for m in ("spd", "ilwd")}
        log = plots.read_log(args.out / "runs" / config.name)
        out["models"][depth] = {
            "run": config.name, "diverged": diverged, "closest_per_seed": closest, "off_plateau": off_plateau,
            "closest_by_mean": {m: min(preds, key=lambda k: np.mean(rows[f"{m}_{k}"])) for m in ("spd", "ilwd")},
            "matched_gd": f"gd{depth}",
            **{k: common.stats(v) for k, v in rows.items()},
            "log": [{"step": r["step"], "loss": r["loss"]} for r in log],
            "train_wall_s": summary.get("wall_s"), "train_steps_per_s": summary.get("train_steps_per_s"),
        }
        r = out["models"][depth]
        dist = "  ".join(f"{k} {r[f'spd_{k}']['mean']:.3f}/{r[f'ilwd_{k}']['mean']:.3f}" for k in preds)
        print(f"  sigma={noise:g} L={depth}: loss {r['loss']['mean']:.4f}; SPD/ILWD {dist}; closest {r['closest_by_mean']}; "
              f"per seed {closest['spd']}; best ridge lam {np.round(rows['best_ridge_lam'], 3).tolist()}; off-plateau seeds "
              f"{off_plateau['seeds']} (closest {off_plateau.get('closest')})"
              + ("  [diverged]" if diverged else ""), flush=True)
    return out


def off_plateau_values(r: dict, depth: int, key: str) -> list[float]:
    """The per-seed values of `key` at `depth`, NaN for seeds still on the initial plateau."""
    keep = set(r["models"][depth]["off_plateau"]["seeds"])
    return [v if s in keep else np.nan for s, v in enumerate(r["models"][depth][key]["values"])]


def band_nan(ax, x, values, label=None, **kw):
    """common.band ignoring NaN entries: mean over the finite seeds, min-max band."""
    values = np.asarray(values, dtype=float)  # [T, S]
    (line,) = ax.plot(x, np.nanmean(values, 1), label=label, **kw)
    ax.fill_between(x, np.nanmin(values, 1), np.nanmax(values, 1), color=line.get_color(), alpha=0.2, lw=0)
    return line


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
                values = [off_plateau_values(r, L, f"{metric}_{k}") for L, k in zip(DEPTHS, keys)]
                band_nan(ax, depths, values, "GD, L steps (lr tuned for L)" if name == "gd_matched" else label(key),
                            color=colors[name], marker="o", ls="--" if name == "gd_matched" else "-")
            ref = r["algorithm_distances"].get("gd1|ridge" if "ridge" in r["hparams"] else "gd1|ls")
            if ref:
                ax.axhline(ref[metric], color="gray", lw=0.8, ls=":", label=f"{'GD1 vs ridge' if 'ridge' in r['hparams'] else 'GD1 vs LS'} (algorithms)")
            n_off = "/".join(str(len(r["models"][L]["off_plateau"]["seeds"])) for L in DEPTHS)
            ax.set(xlabel="LSA depth L", ylabel=f"{metric.upper()} (trained model vs algorithm)", yscale="log", xticks=depths,
                   title=f"{metric.upper()}, noise sigma = {noise:g} (seeds off plateau: {n_off})")
            ax.legend(fontsize=7)
    ax = axes[0, -2]
    floor = 0.5 * min(min([v for v in r["algorithm_loss"].values() if v > 1e-3]
                          + [r["models"][L]["loss"]["min"] for L in DEPTHS]) for r in results.values())
    for i, noise in enumerate(noises):
        r = results[noise]
        band_nan(ax, depths, [off_plateau_values(r, L, "loss") for L in DEPTHS], f"trained LSA, sigma={noise:g}", color=f"C{i}", marker="o")
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
            band_nan(ax, depths, [off_plateau_values(r, L, key) for L in DEPTHS], f"trained LSA, sigma={noise:g}", color=f"C{i}", marker="o")
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
    configs = {noise: {L: make_config(noise, L, args.quick, args.steps, args.batch_size) for L in DEPTHS} for noise in NOISES}
    first = configs[NOISES[0]][DEPTHS[0]].train
    print(f"{NAME}: {common.mode(args)}, L = {DEPTHS}, sigma = {NOISES}, {first.n_seeds} seeds, {first.steps} steps of batch {first.batch_size}", flush=True)
    results = {noise: evaluate_noise(noise, configs[noise], args) for noise in NOISES}
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, f"Trained LSA vs GD / ridge / least squares (Akyürek et al. 2022): d={D}, N={N_CTX}, "
         f"{first.n_seeds} seeds (mean, min-max band over seeds off the loss plateau), {first.steps} steps of batch {first.batch_size} [{common.mode(args)}]")
    numbers = {"d": D, "n_ctx": N_CTX, "depths": list(DEPTHS), "noises": list(NOISES), "n_probe": N_PROBE,
               "seeds": train.seeds_of(configs[NOISES[0]][DEPTHS[0]]), "steps": first.steps,
               "by_noise": {f"{noise:g}": results[noise] for noise in NOISES}}
    flat = [c for per in configs.values() for c in per.values()]
    path = common.write_numbers(args, NAME, numbers, flat, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
