"""Claim 2: deeper LSA learns preconditioned / higher-order methods (Ahn et al. 2023; Fu et al. 2023).

The study (setup, commands, runtime) is `icl.experiments.claim2_deep_newton`; the measurements are
`icl.analysis.layer_matching` (which Newton-Schulz / GD step each layer's read-out matches, by the
similarity of residuals, and the fits of k*(l)) and `icl.analysis.lsa_weights` (each layer's
preconditioner Gamma_l against Sigma^-1 and I).

    python paper_figures/claim2_deep_newton.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import numpy as np

import common
from icl import train
from icl.analysis import layer_matching, lsa_weights
from icl.experiments import claim2_deep_newton as study

NAME = study.STUDY
PUBLISHED = {
    "source_newton": "Fu et al. 2023 (arXiv 2310.17086), Figs. 3-4: 12-layer GPT-2 on d = 20 linear regression; "
    "layer l matches Newton iteration ~3 l (linear in l, 'each middle layer roughly computing 3 iterations'), "
    "while the matching GD step count grows exponentially in l; also for ill-conditioned inputs",
    "source_preconditioner": "Ahn et al. 2023 (arXiv 2306.00297), Thms. 3-4 and Fig. 2: for x ~ N(0, Sigma) the "
    "trained L-layer LSA weights satisfy A_l proportional to Sigma^-1 in every layer (preconditioned GD)",
    "claim_tested": "(a) k_Newton(l) linear in l; (b) k_GD(l) much faster (exponential) in l; (c) Gamma_l ~ Sigma^-1",
}


def draw(path, results: list[dict], title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    top = results[-1]  # the largest kappa
    layers = np.arange(1, study.N_LAYERS + 1)
    for ax, name, label in ((axes[0, 0], "newton", "Newton-Schulz iteration k"), (axes[0, 1], "gd", "GD step k (lr 1/lambda_max)")):
        sim = np.mean(top[name]["similarity"], axis=0)  # [L, K]
        steps = np.asarray(top[name]["steps"])
        image = ax.imshow(sim, aspect="auto", origin="lower", cmap="viridis", vmin=min(0.0, sim.min()), vmax=1.0,
                          extent=(-0.5, len(steps) - 0.5, 0.5, study.N_LAYERS + 0.5))
        ticks = np.linspace(0, len(steps) - 1, min(len(steps), 9)).round().astype(int)
        ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
        best = np.asarray(top[name]["best_step"])  # [S, L]
        index = {int(s): i for i, s in enumerate(steps)}
        for seed_best in best:
            ax.plot([index[int(b)] for b in seed_best], layers, "w.", ms=6)
        ax.set(xlabel=label, ylabel="layer l", title=f"{name}: mean residual cosine, kappa = {top['kappa']:g} (dots: argmax per seed)")
        best_sim = np.mean(top[name]["best_similarity"], axis=0)
        ax.set_yticks(layers, [f"{layer}\nmax {v:.2f}" for layer, v in zip(layers, best_sim, strict=True)])
        fig.colorbar(image, ax=ax)
    ax = axes[0, 2]
    for i, r in enumerate(results):
        common.band(ax, layers, np.asarray(r["newton"]["best_step"]).T, f"kappa {r['kappa']:g}: slope "
                    f"{r['newton']['slope']['mean']:.2f} (R2 {r['newton']['r2']['mean']:.2f})", color=f"C{i}", marker="o")
        ax.plot(layers, np.mean(r["newton"]["loss_matched_step"], axis=0), "--", color=f"C{i}", lw=1,
                label="loss-matched k (mean)" if i == 0 else None)
    ax.set(xlabel="layer l", ylabel="best-matching Newton-Schulz iteration k_N(l)",
           title="Newton match vs layer (argmax cosine: mean, min-max; dashed: loss-matched)", xticks=layers)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for i, r in enumerate(results):
        common.band(ax, layers, np.asarray(r["gd"]["best_step"]).T,
                    f"kappa {r['kappa']:g}: x{2 ** r['gd']['doubling_per_layer']['mean']:.2f} per layer", color=f"C{i}", marker="s")
        ax.plot(layers, np.exp(np.mean(np.log(r["gd"]["loss_matched_step"]), axis=0)), "--", color=f"C{i}", lw=1,
                label="loss-matched k (geometric mean)" if i == 0 else None)
    ax.set(xlabel="layer l", ylabel="best-matching GD step k_GD(l)", yscale="log",
           title="GD match vs layer (log scale; dashed: loss-matched)", xticks=layers)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    shown = []
    for i, r in enumerate(results):
        loss = np.asarray(r["model_loss"])  # [L, S]
        common.band(ax, layers, loss, f"LSA layer l, kappa {r['kappa']:g}", color=f"C{i}", marker="o")
        shown += [loss.min(), loss.max()]
        for name, ls, marker in (("newton", "--", "x"), ("gd", ":", "+")):
            steps = list(r[name]["steps"])
            matched = np.asarray([[r[name]["loss"][steps.index(int(k))] for k in seed] for seed in r[name]["best_step"]])  # [S, L]
            ax.plot(layers, matched.mean(0), ls, color=f"C{i}", marker=marker, lw=1,
                    label=f"{'Newton' if name == 'newton' else 'GD'} at the matched k" if i == 0 else None)
            shown += [matched.mean(0).min(), matched.mean(0).max()]
    ls_loss = max(r["least_squares_loss"] for r in results)
    ax.plot([], [], " ", label=f"(least squares: <= {ls_loss:.0e}, noiseless tasks)")
    ax.set(xlabel="layer l", ylabel="held-out loss", yscale="log", title="loss per layer vs the matched solver steps",
           xticks=layers, ylim=(0.5 * min(shown), 2 * max(shown)))
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    for i, r in enumerate(results):
        p = r["preconditioners"]
        common.band(ax, layers, p["cos_sigma_inv"], f"cos(Gamma_l, Sigma^-1), kappa {r['kappa']:g}", color=f"C{i}", marker="o")
        common.band(ax, layers, p["cos_identity"], f"cos(Gamma_l, I), kappa {r['kappa']:g}", color=f"C{i}", marker="s", ls="--")
        ax.axhline(p["reference"]["cos_sigma_inv_identity"], color=f"C{i}", lw=0.6, ls=":")
    ax.set(xlabel="layer l", ylabel="Frobenius cosine",
           title="Gamma_l = -(B_yy A_xx + A_xy B_xy^T) vs Sigma^-1 and I\n(dotted: cos(Sigma^-1, I) per kappa)",
           xticks=layers, ylim=(-1.05, 1.05))
    ax.legend(fontsize=7)
    common.save(fig, path, title)


def summary_line(r: dict) -> str:
    p = r["preconditioners"]
    return (f"  kappa {r['kappa']:g}: layer loss {np.round(np.mean(r['model_loss'], 1), 4).tolist()} (LS {r['least_squares_loss']:.2e}); "
            f"k_N(l) {np.round(np.mean(r['newton']['best_step'], 0), 1).tolist()} slope {r['newton']['slope']['mean']:.2f}; "
            f"k_GD(l) {np.round(np.mean(r['gd']['best_step'], 0), 1).tolist()} x{2 ** r['gd']['doubling_per_layer']['mean']:.2f}/layer; "
            f"cos(Gamma, Sigma^-1) {np.round(np.mean(p['cos_sigma_inv'], 1), 3).tolist()}, "
            f"cos(Gamma, I) {np.round(np.mean(p['cos_identity'], 1), 3).tolist()}; "
            f"best sim Newton {np.round(np.mean(r['newton']['best_similarity'], 0), 2).tolist()} "
            f"GD {np.round(np.mean(r['gd']['best_similarity'], 0), 2).tolist()}; "
            f"reliable-layer fit: Newton slope {r['newton']['reliable_fit']['mean'] if r['newton']['reliable_fit'] else float('nan'):.2f}, "
            f"GD x{2 ** r['gd']['reliable_fit']['mean'] if r['gd']['reliable_fit'] else float('nan'):.2f}/layer; "
            f"loss-matched k_N {np.round(np.mean(r['newton']['loss_matched_step'], 0), 1).tolist()} "
            f"k_GD {np.round(np.exp(np.mean(np.log(r['gd']['loss_matched_step']), 0)), 1).tolist()}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    kappas = study.kappas(mode)
    configs = study.configs(mode, args.steps, args.batch_size)
    cfg = configs[0].train
    print(f"{NAME}: {common.mode(args)}, kappa {kappas}, {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}", flush=True)
    results = []
    for config in configs:
        summary, params = common.run(config, args)
        result = layer_matching.match_layers(config, params, config.train.final_eval_tasks, study.N_QUERY_EVAL,
                                             study.K_NEWTON, study.GD_STEPS, study.SIM_MIN)
        result["preconditioners"] = lsa_weights.preconditioner_alignment(config, params)
        result["train_wall_s"], result["train_steps_per_s"] = summary.get("wall_s"), summary.get("train_steps_per_s")
        result["final_table_loss"] = summary["model"]["loss"]
        results.append(result)
        print(summary_line(result), flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, f"Deep LSA ({study.N_LAYERS} layers, d = {study.D}, N = {study.N_CTX}) vs Newton-Schulz and GD: "
         f"{cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")
    numbers = {"kappas": list(kappas), "seeds": train.seeds_of(configs[0]), "steps": cfg.steps,
               "gd_steps_grid": list(study.GD_STEPS), "k_newton_max": study.K_NEWTON, "by_kappa": results,
               "similarity": "mean over held-out tasks of the cosine, over the task's 16 queries, of the residuals y_hat - y_query",
               "gd_lr": "per task N / lambda_max(X^T X)"}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
