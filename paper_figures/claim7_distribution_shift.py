"""Claim 7: the trained one-layer LSA under distribution shift (Zhang, Frei & Bartlett 2024, Sec. 4).

The run (experiments.claim7_distribution_shift: d = 5, N = 20, x ~ N(0, Lambda) rotated with
condition number 10, sigma = 0.5; one 2-head LSA layer, 3 seeds) is tested, with
icl.analysis.distribution_shift, on the same prompts under
  * task shifts (w ~ N(mu, s^2 I)), covariate shifts (Lambda' = c Lambda, rotated, isotropic):
    each seed's loss against preconditioned GD with the training Gamma* (closed form and measured),
    the best one-layer LSA for the shifted distribution, least squares, ridge and the Bayes
    posterior mean of the shifted prior;
  * context lengths N' (the layer as trained, and with Zhang et al.'s 1/N).

    python paper_figures/claim7_distribution_shift.py            # full: 6,000 steps of batch 2048, 3 seeds
    python paper_figures/claim7_distribution_shift.py --quick    # 1,500 steps of batch 512, 2 seeds (~1 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl import train
from icl.analysis import distribution_shift as ds, gamma_star
from icl.experiments import claim7_distribution_shift as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Zhang, Frei & Bartlett, 'Trained transformers learn linear models in-context', JMLR 25 (2024), "
    "Sec. 4 (behaviour of the trained transformer under distribution shift): gradient flow on a one-layer "
    "LSA converges to y_hat = x_q^T Gamma X^T y / N with Gamma ~ Lambda^-1; the trained model is robust to "
    "task shift (any distribution of w) and to the prompt length, and not robust to covariate shift "
    "(its error does not vanish with N when the test prompts have another covariance). No numbers to compare.",
    "claim_tested": "under task shift the model stays preconditioned GD with Gamma* and keeps its quality; under "
    "covariate shift it follows Gamma*-GD's degradation while least squares is unaffected",
}
KIND_COLOR = {"none": "k", "task": "C0", "covariate": "C3"}


def draw(path, numbers, config) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.2))
    shifts = numbers["shifts"]
    names = list(shifts)
    x = np.arange(len(names))
    ax = axes[0]
    for i, name in enumerate(names):
        r = shifts[name]
        ax.scatter(np.full(len(r["model"]["values"]), i), r["model"]["values"], color=KIND_COLOR[r["kind"]], zorder=3,
                   label="trained seeds" if i == 0 else None)
    cf = lambda key: [shifts[n]["closed_form"][key] for n in names]
    ax.plot(x, cf("gamma_star_gd"), "k_", ms=18, mew=2, label="Gamma*-GD (training Lambda), closed form")
    ax.plot(x, cf("best_gamma_gd"), "g_", ms=14, mew=2, label="best one-layer LSA for the shifted tasks, closed form")
    ax.plot(x, cf("least_squares"), "C1.", ms=8, label="least squares, closed form")
    ax.plot(x, [shifts[n]["measured"]["bayes_shifted_prior"] for n in names], "C4x", label="Bayes posterior mean (shifted prior)")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set(yscale="log", ylabel="held-out loss", title="loss per shift (blue: task, red: covariate)")
    ax.legend(fontsize=7)
    ax = axes[1]
    for key, marker, label in (("best_gamma_gd", "o", "model / best one-layer LSA for the shift"),
                               ("least_squares", "s", "model / least squares"),
                               ("gamma_star_gd", "^", "model / Gamma*-GD (same tasks)")):
        ax.plot(x, [shifts[n]["model_over"][key]["mean"] for n in names], marker=marker, ls="-", lw=0.8, label=label)
    for i, name in enumerate(names):
        ax.axvspan(i - 0.5, i + 0.5, color=KIND_COLOR[shifts[name]["kind"]], alpha=0.06, lw=0)
    ax.axhline(1, color="gray", lw=0.6)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set(yscale="log", ylabel="ratio (mean over seeds)", title="the trained model relative to other learners")
    ax.legend(fontsize=7)
    ax = axes[2]
    rows = numbers["length_shift"]["rows"]
    n = [r["n_test"] for r in rows]
    ax.plot(n, [r["model"]["mean"] for r in rows], "C3o-", label="trained layer as is")
    ax.plot(n, [r["closed_form"]["gamma_star_gd"] for r in rows], "C3--", lw=1, label="Gamma*(N) at N', closed form")
    ax.plot(n, [r["model_normalised"]["mean"] for r in rows], "C0o-", label="trained layer x N / N' (Zhang et al.'s 1/N)")
    ax.plot(n, [r["closed_form"]["gamma_star_gd_normalised"] for r in rows], "C0--", lw=1, label="Gamma*(N) N / N', closed form")
    ax.plot(n, [r["closed_form"]["best_gamma_gd"] for r in rows], "g:", label="best Gamma*(N'), closed form")
    ax.plot(n, [r["closed_form"]["least_squares"] for r in rows], "C1:", label="least squares, closed form")
    ax.axvline(config.task.n_ctx, color="gray", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="test context length N'", ylabel="held-out loss", title="context-length shift")
    ax.legend(fontsize=7)
    cfg = config.train
    common.save(fig, path, f"One 2-head LSA layer under distribution shift (d = {config.task.d}, N = {config.task.n_ctx}, "
                f"rotated Lambda kappa {config.task.condition_number:g}, sigma {config.task.noise_std:g}): "
                f"{cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}")


def report(numbers: dict) -> None:
    print(f"  |Gamma - Gamma*|/|Gamma*| per seed {np.round(numbers['distance_to_gamma_star'], 4).tolist()}", flush=True)
    for name, r in numbers["shifts"].items():
        over = r["model_over"]
        print(f"  {name:14s} ({r['kind']:9s}) model {r['model']['mean']:9.4f}  Gamma*-GD cf {r['closed_form']['gamma_star_gd']:9.4f}  "
              f"best cf {r['closed_form']['best_gamma_gd']:8.4f}  LS {r['measured']['least_squares']:.4f}  "
              f"Bayes {r['measured']['bayes_shifted_prior']:.4f} | model/Gamma*GD {over['gamma_star_gd']['mean']:.4f}  "
              f"/best {over['best_gamma_gd']['mean']:.3f}  /LS {over['least_squares']['mean']:.2f}", flush=True)
    for r in numbers["length_shift"]["rows"]:
        print(f"  N'={r['n_test']:3d}: as trained {r['model']['mean']:.4f} (cf {r['closed_form']['gamma_star_gd']:.4f}); "
              f"x N/N' {r['model_normalised']['mean']:.4f} (cf {r['closed_form']['gamma_star_gd_normalised']:.4f}); "
              f"best {r['closed_form']['best_gamma_gd']:.4f}; LS {r['measured']['least_squares']:.4f}", flush=True)
    print("  verdict:", {k: v for k, v in numbers["verdict"].items() if k != "thresholds"}, flush=True)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    (config,) = study.configs(mode, args.steps, args.batch_size)
    common.announce(config, args)
    summary, params = common.run(config, args)
    task, star = config.task, gamma_star.optimum(config)
    distances = gamma_star.distances_to_optimum(config, params)
    converged = [s for s, dist in enumerate(distances) if dist < gamma_star.CONVERGED]
    if not converged:
        raise SystemExit(f"no seed converged to Gamma* (distances {distances}): nothing to test the claim on")
    models = [m for s, m in enumerate(train.seed_models(config, params)) if s in converged]
    gammas = [g for s, g in enumerate(gamma_star.gammas(config, params)) if s in converged]
    n_tasks = study.EVAL_TASKS[mode]
    key = train.heldout_key(config, train.HeldOut.OOD)  # one key: every shift sees the same standard-normal draws
    shifts = {}
    for name, (kind, shift) in ds.make_shifts(task, study.task_shifts(task), study.COVARIATE_FACTORS).items():
        shifts[name] = {"kind": kind, **ds.evaluate(shift, models, gammas, star, task.noise_std, task.weight_std, key, n_tasks)}
    lengths = ds.length_rows(models, star, task, study.TEST_LENGTHS, train.heldout_key(config, train.HeldOut.EXTRA), n_tasks)
    numbers = {
        "distance_to_gamma_star": distances, "converged_seeds": converged,
        "rank_one_path_share": gamma_star.rank_one_share(config, params),
        "gamma_star": star.tolist(), "sigma_eigenvalues": np.linalg.eigvalsh(task.input_covariance).tolist(),
        "eval_tasks_per_shift": n_tasks,
        "training_summary": {"model_loss": common.stats(summary["model"]["loss"]),
                             **{k: v["loss"] for k, v in summary["solvers"].items()}, "zero": summary["zero_loss"]},
        "train_wall_s": summary["wall_s"],
        "shifts": shifts, "length_shift": lengths,
        "verdict": ds.verdict(shifts, {k: v["kind"] for k, v in shifts.items()}, lengths),
    }
    report(numbers)
    png, _ = common.figure_paths(args, NAME)
    draw(png, numbers, config)
    path = common.write_numbers(args, NAME, numbers, [config], PUBLISHED, verdict=numbers["verdict"]["verdict"])
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
