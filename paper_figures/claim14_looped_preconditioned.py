"""Claim 14: a looped linear transformer implements multi-step preconditioned GD with one Gamma
(Gatmiry, Saunshi, Reddi, Jegelka & Kumar, ICML 2024).

experiments.claim14_looped_preconditioned (one shared LSA layer looped L = 3 times, d = 5, N = 20,
x ~ N(0, Sigma) rotated with condition number 10, 3 seeds) and icl.analysis.looped_preconditioned:
the read-out after each loop l against l steps of preconditioned GD with ONE Gamma (read off the
layer's weights, or fitted on loop 1 only), against l steps of plain GD at the best-matching lr;
the loss per loop; cos(Gamma, Sigma^-1) vs cos(Gamma, I).

    python paper_figures/claim14_looped_preconditioned.py            # full: 3 seeds x 6,000 steps of batch 2048
    python paper_figures/claim14_looped_preconditioned.py --quick    # 800 steps of batch 256, 2 seeds (~1 min)
"""

from __future__ import annotations

import jax
import numpy as np

import common
from icl.analysis import looped_preconditioned as lp
from icl.experiments import claim14_looped_preconditioned as study

NAME = study.STUDY
TEST_TASKS, TEST_SEED = 2000, 14_2024
HOLD = 0.99  # model_cos a one-Gamma PGD must reach at every loop of every seed
LEARNERS = {"pgd_read_off": "PGD, Gamma read off the layer", "pgd_fitted_loop1": "PGD, Gamma fitted on loop 1",
            "gd": "plain GD, lr matched per loop"}
PUBLISHED = {
    "source": "Gatmiry, Saunshi, Reddi, Jegelka & Kumar, ICML 2024, 'Can looped transformers learn to implement "
    "multi-step gradient descent for in-context learning?': for a looped linear transformer on linear regression "
    "with x ~ N(0, Sigma), the trained (global-optimum) loop implements multi-step preconditioned GD with one "
    "preconditioner, close to a multiple of Sigma^-1 for large N; the loss falls with the loop count like "
    "K-step preconditioned GD's (no numbers to compare at our scale)",
}


def draw(path, result, config) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    loops = np.arange(1, config.model.n_layers + 1)
    seeds = result["seeds"]
    panels = ((axes[0], "model_cos", "model_cos with the looped model"), (axes[1], "preds_diff", "preds_diff (mean |y_model - y|)"))
    for ax, key, label in panels:
        for i, (name, text) in enumerate(LEARNERS.items()):
            for j, s in enumerate(seeds):
                ax.plot(loops, [row[name][key] for row in s["loops"]], color=f"C{i}", marker="o", lw=1,
                        label=text if j == 0 else None)
        ax.set(xlabel="loop l (= steps of the solver)", ylabel=label, xticks=loops)
        ax.legend(fontsize=8)
    axes[0].axhline(HOLD, color="gray", ls=":", lw=0.8)
    axes[0].set_title("loop l vs l steps (one line per seed)")
    axes[1].set(yscale="log", title="prediction gap")
    ax = axes[2]
    for j, s in enumerate(seeds):
        ax.plot(loops, [row["model_loss"] for row in s["loops"]], color="k", marker="o", label="looped model" if j == 0 else None)
        ax.plot(loops, [row["pgd_read_off"]["loss"] for row in s["loops"]], color="C0", ls="--", marker="x",
                label="PGD with the read-off Gamma" if j == 0 else None)
        ax.plot(loops, [row["gd"]["loss"] for row in s["loops"]], color="C2", ls=":", marker=".",
                label="plain GD (matched lr)" if j == 0 else None)
    theory = result["optimal_loop_pgd"]
    ax.plot(loops, theory["loss_per_loop"], color="C3", marker="s", label=f"best one-Gamma {len(loops)}-step PGD (theory's optimum)")
    cos = ", ".join(f"s{j} {s['gamma']['read_off']['cos_sigma_inverse']:.2f} / {s['gamma']['read_off']['cos_identity']:.2f}"
                    for j, s in enumerate(seeds))
    ax.set(yscale="log", xlabel="loop l", ylabel="held-out loss", xticks=loops)
    ax.set_title(f"loss per loop; cos(Gamma, Sigma^-1) / cos(Gamma, I):\nread off {cos};\n"
                 f"best one-Gamma PGD {theory['cos_sigma_inverse']:.2f} / {theory['cos_identity']:.2f}", fontsize=9)
    ax.legend(fontsize=8)
    cfg = config.train
    common.save(fig, path, f"Looped LSA (L = {config.model.n_layers}, d = {study.D}, N = {study.N_CTX}, kappa {study.KAPPA:g}) "
                f"vs one-Gamma preconditioned GD: {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}")


def converged_seeds(result) -> list[int]:
    """Seeds whose loss after the last loop is at most the best one-Gamma PGD's (the theory's level)."""
    best = result["optimal_loop_pgd"]["loss_per_loop"][-1]
    return [j for j, s in enumerate(result["seeds"]) if s["loops"][-1]["model_loss"] <= best]


def verdict(result) -> dict:
    """held: one Gamma makes every loop of every seed PGD (model_cos >= HOLD, read off or fitted on
    loop 1) and the read-off Gamma of the converged seeds is closer in angle to Sigma^-1 than to I;
    held in part: one of the two, or only the theory's optimum aligns."""
    one_gamma = all(max(a, b) >= HOLD for a, b in zip(result["min_model_cos_over_seeds"]["pgd_read_off"],
                                                     result["min_model_cos_over_seeds"]["pgd_fitted_loop1"], strict=True))
    conv = converged_seeds(result)
    aligned = bool(conv) and all(result["seeds"][j]["gamma"]["read_off"]["cos_sigma_inverse"]
                                 > result["seeds"][j]["gamma"]["read_off"]["cos_identity"] for j in conv)
    theory = result["optimal_loop_pgd"]
    theory_aligned = theory["cos_sigma_inverse"] > theory["cos_identity"]
    word = ("held" if one_gamma and aligned else "held in part" if one_gamma or aligned or theory_aligned else "did not hold")
    return {"verdict": word, "one_gamma_matches_every_loop": one_gamma, "converged_seeds": conv,
            "converged_read_off_gamma_aligned_with_sigma_inverse": aligned, "optimum_aligned_with_sigma_inverse": bool(theory_aligned)}


def report(result) -> None:
    for j, s in enumerate(result["seeds"]):
        g = s["gamma"]
        print(f"  seed {j}: x-write share {s['x_write_share']:.3f}; Gamma read-off cos Sigma^-1 {g['read_off']['cos_sigma_inverse']:.3f} "
              f"vs I {g['read_off']['cos_identity']:.3f}; fitted cos Sigma^-1 {g['fitted_loop1']['cos_sigma_inverse']:.3f} "
              f"vs I {g['fitted_loop1']['cos_identity']:.3f}")
        for row in s["loops"]:
            print(f"    l={row['loop']}: loss {row['model_loss']:.4f}  " + "  ".join(
                f"{k}: cos {row[k]['model_cos']:.4f} diff {row[k]['preds_diff']:.4f} loss {row[k]['loss']:.4f}" for k in LEARNERS)
                + f"  (gd lr {row['gd_lr']:.3f})", flush=True)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    config = configs[0]
    common.announce(config, args)
    _, params = common.run(config, args)
    batch = config.task.sample(jax.random.key(TEST_SEED), TEST_TASKS)
    result = lp.summarise(config, params, batch)
    report(result)
    t = result["optimal_loop_pgd"]
    print(f"  best one-Gamma {config.model.n_layers}-step PGD: cos Sigma^-1 {t['cos_sigma_inverse']:.3f} vs I {t['cos_identity']:.3f}; "
          f"loss per loop {np.round(t['loss_per_loop'], 4).tolist()}; cos with each seed's read-off Gamma "
          f"{np.round(t['cos_with_read_off'], 3).tolist()}")
    print("  min model_cos over seeds per loop:", {k: np.round(v, 4).tolist() for k, v in result["min_model_cos_over_seeds"].items()})
    png, _ = common.figure_paths(args, NAME)
    draw(png, result, config)
    v = verdict(result)
    result["verdict"] = v
    path = common.write_numbers(args, NAME, result, configs, PUBLISHED, verdict=v["verdict"])
    print(f"wrote {png} and {path}; verdict {v}")


if __name__ == "__main__":
    main()
