"""Claim 1: the optimal one-layer LSA is preconditioned GD with Gamma* (Ahn et al. 2023; Mahankali
et al. 2023; Zhang, Frei, Bartlett 2024).

For each setting of experiments.claim1_gamma_star (d = 5, N = 20; Sigma isotropic, diagonal or
rotated with condition number 20, rotated with label noise sigma = 2), 5 seeds of one LSA layer,
and (icl.analysis.gamma_star, icl.analysis.length_shift)
  * ||Gamma - Gamma*||_F / ||Gamma*||_F over training, next to the distance to the best multiple
    of I (plain GD) and of Sigma^-1 (Newton-like) and, with noise, to the noiseless Gamma*;
  * the loss of the full model vs preconditioned GD with its own Gamma (the two extra terms);
  * the loss at context lengths N' != N, measured and in closed form for Gamma*(N) and Gamma*(N').

    python paper_figures/claim1_gamma_star.py            # full: 4 settings x 5 seeds x 20,000 steps of batch 2048
    python paper_figures/claim1_gamma_star.py --quick    # 2,000 steps of batch 512, 2 seeds (~2 min)
"""

from __future__ import annotations

import numpy as np

import common
from icl.analysis import gamma_star
from icl.experiments import claim1_gamma_star as study

NAME = study.STUDY
PUBLISHED = {
    "source": "Ahn et al. 2023 (Thm. 1), Mahankali et al. 2023, Zhang, Frei & Bartlett 2024 (Thm. 4.1): "
    "the global optimum (and the gradient-flow limit) of a one-layer LSA on Gaussian linear tasks is one "
    "preconditioned GD step with Gamma* = ((N + 1) Sigma + tr(Sigma) I)^-1 (no numbers to compare; "
    "the claim is the limit itself)",
    "label_noise": "derived here (icl/solvers/optimal.py): tr(Sigma) -> tr(Sigma) + sigma^2 / tau^2",
    "context_length": "Zhang, Frei & Bartlett 2024 (Thm. 4.2): the trained model's test loss at a new "
    "length N' is that of Gamma*(N) applied at N' — closed form in solvers.preconditioned_loss",
}


def draw(path, results, configs) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    ax = axes[0]
    for i, r in enumerate(results):
        curve = r["distance_over_training"]
        for j, seed_curve in enumerate(np.asarray(curve["distance"]).T):  # [S, pieces]
            ax.plot(curve["steps"], seed_curve, color=f"C{i}", marker=".", lw=1, label=r["setting"] if j == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel="training step", ylabel="||Gamma - Gamma*||_F / ||Gamma*||_F",
           title="trained preconditioner vs Gamma* (one line per seed)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for i, r in enumerate(results):
        dist = r["distances"]
        ax.scatter(np.full(len(dist["gamma_star"]["values"]), i), dist["gamma_star"]["values"], color="C0",
                   label="trained seeds vs Gamma*" if i == 0 else None, zorder=3)
        if "noiseless_gamma_star" in dist:
            ax.scatter(np.full(len(dist["noiseless_gamma_star"]["values"]), i + 0.15), dist["noiseless_gamma_star"]["values"],
                       color="C3", marker="x", label="trained seeds vs noiseless Gamma*")
        for key, color, label in (("best_multiple_of_identity", "C1", "best c I (plain GD) vs Gamma*"),
                                  ("best_multiple_of_sigma_inverse", "C2", "best c Sigma^-1 vs Gamma*")):
            if dist[key]["mean"] > 0:
                ax.hlines(dist[key]["mean"], i - 0.3, i + 0.3, color=color, label=label if i == 1 else None)
    ax.axhline(gamma_star.CONVERGED, color="gray", ls=":", lw=0.8, label=f"'converged' threshold {gamma_star.CONVERGED}")
    ax.set_xticks(np.arange(len(results)), [r["setting"] for r in results], fontsize=8)
    ax.set(yscale="log", ylabel="relative Frobenius distance", title="final Gamma per seed and the alternatives")
    ax.legend(fontsize=7)
    ax = axes[2]
    for i, r in enumerate(results):
        rows = r["length_shift"]["rows"]
        n = [row["n_test"] for row in rows]
        conv = [np.mean(row["model_measured_converged_seeds"]) if row["model_measured_converged_seeds"] else np.nan for row in rows]
        ax.plot(n, conv, color=f"C{i}", marker="o", label=f"{r['setting']}: trained, converged seeds ({len(r['converged_seeds'])})")
        ax.plot(n, [row["closed_form_gamma_star_train_n"] for row in rows], color=f"C{i}", ls="--", lw=1)
        ax.plot(n, [row["closed_form_gamma_star_test_n"] for row in rows], color=f"C{i}", ls=":", lw=1)
    ax.axvline(study.N_CTX, color="gray", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="test context length N'", ylabel="held-out loss",
           title="length shift (dashed: Gamma*(N=20) at N', closed form;\ndotted: best Gamma*(N'))")
    ax.legend(fontsize=7)
    cfg = configs[0].train
    common.save(fig, path, f"One LSA layer vs Gamma* (d = {study.D}, N = {study.N_CTX}): {cfg.n_seeds} seeds, "
                f"{cfg.steps} steps of batch {cfg.batch_size}")


def report(r: dict) -> None:
    dist, loss = r["distances"], r["loss"]
    print(f"  |Gamma - Gamma*|/|Gamma*| per seed {np.round(dist['gamma_star']['values'], 4).tolist()}; "
          f"converged seeds {r['converged_seeds']}; a_xy b_x^T share {np.round(r['rank_one_path_share'], 3).tolist()}; "
          f"best cI {dist['best_multiple_of_identity']['mean']:.3f}; "
          + (f"noiseless Gamma* {dist['noiseless_gamma_star']['mean']:.3f}; " if "noiseless_gamma_star" in dist else "")
          + f"loss model {loss['model_at_train_n']['mean']:.4f} vs Gamma* {loss['closed_form_gamma_star']:.4f} "
          f"(GD {loss['one_step_gd_optimal_eta']:.4f}, LS {loss['least_squares']:.4f})", flush=True)
    for row in r["length_shift"]["rows"]:
        conv = row["model_measured_converged_seeds"]
        print(f"    N'={row['n_test']:3d}: model {row['model_measured']['mean']:.4f} ± {row['model_stderr']:.4f} "
              f"(converged seeds {np.mean(conv) if conv else float('nan'):.4f})  "
              f"theory Gamma*(N) {row['closed_form_gamma_star_train_n']:.4f}  best Gamma*(N') {row['closed_form_gamma_star_test_n']:.4f}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    results = []
    for config in configs:
        common.announce(config, args)
        measured = common.train_in_pieces(config, args, study.piece_steps(config),
                                          lambda step, params, c=config: gamma_star.distances_to_optimum(c, params),
                                          "claim1_pieces.json")
        steps = sorted(int(s) for s in measured)
        curve = {"steps": steps, "distance": [measured[str(s)] for s in steps]}
        summary, params = common.run(config, args)
        results.append(gamma_star.summarise(config, summary, params, curve, study.TEST_LENGTHS, study.setting_of(config)))
        report(results[-1])
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs)
    path = common.write_numbers(args, NAME, {"settings": results}, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
