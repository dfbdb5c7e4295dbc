"""Claim 1: the optimal one-layer LSA is preconditioned GD with Gamma* (Ahn et al. 2023; Mahankali
et al. 2023; Zhang, Frei, Bartlett 2024).

For x ~ N(0, Sigma), w ~ N(0, tau^2 I), eps ~ N(0, sigma^2), the best predictor of the form
y_hat = x_q^T Gamma X^T y is (solvers.gamma_star; derivation in icl/solvers/optimal.py)

    Gamma* = ((N + 1) Sigma + (tr Sigma + sigma^2 / tau^2) I)^{-1},

and a trained one-layer linear LSA should converge to it. A one-layer LSA on a query [x_q, 0] predicts
(compare.preconditioner)
    y_hat = x_q^T Gamma X^T y - x_q^T A_xx X^T X b_x - (x_q . a_xy)(y^T X b_x + y^T y b_y),
with Gamma = -sum_h b_y^h A_xx^h read off the trained weights; the two extra terms should vanish.

For each setting (d = 5, N = 20; Sigma isotropic, diagonal with condition number 20, Haar-rotated
with condition number 20, and rotated with label noise sigma = 2, where Gamma* differs from its
noiseless form by ~15 %), 5 seeds of one LSA layer are trained through icl.train, and we measure
  * ||Gamma - Gamma*||_F / ||Gamma*||_F over training, next to the distance to the best multiple
    of I (plain GD) and of Sigma^-1 (Newton-like) and, with noise, to the noiseless Gamma*;
  * the weight of the extra terms: the loss of the full model vs that of preconditioned GD with
    its own Gamma (closed form, solvers.preconditioned_loss);
  * the test loss at context lengths N' != N: the trained model measured on 10,000 tasks against
    the closed form for Gamma*(N) at N' (the prediction of the theory for a model trained at N) and
    for the best preconditioner at N', Gamma*(N').

    python paper_figures/claim1_gamma_star.py            # full: 4 settings x 5 seeds x 20,000 steps of batch 2048
    python paper_figures/claim1_gamma_star.py --quick    # 1,500 steps of batch 512, 2 seeds (~2 min)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import common
from icl import compare, solvers, tasks, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig

NAME = "claim1_gamma_star"
D, N_CTX = 5, 20
SETTINGS = {
    "isotropic": dict(),
    "diagonal": dict(covariance="diagonal", condition_number=20.0),
    "rotated": dict(covariance="rotated", condition_number=20.0),
    "rotated_noisy": dict(covariance="rotated", condition_number=20.0, noise_std=2.0),
}
TEST_LENGTHS = (5, 10, 20, 40, 80)
N_PIECES = 8  # points on the Gamma-distance-over-training curve
PUBLISHED = {
    "source": "Ahn et al. 2023 (Thm. 1), Mahankali et al. 2023, Zhang, Frei & Bartlett 2024 (Thm. 4.1): "
    "the global optimum (and the gradient-flow limit) of a one-layer LSA on Gaussian linear tasks is one "
    "preconditioned GD step with Gamma* = ((N + 1) Sigma + tr(Sigma) I)^-1 (no numbers to compare; "
    "the claim is the limit itself)",
    "label_noise": "derived here (icl/solvers/optimal.py): tr(Sigma) -> tr(Sigma) + sigma^2 / tau^2",
    "context_length": "Zhang, Frei & Bartlett 2024 (Thm. 4.2): the trained model's test loss at a new "
    "length N' is that of Gamma*(N) applied at N' — closed form in solvers.preconditioned_loss",
}


def make_config(setting: str, quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", **SETTINGS[setting])
    if quick:
        cfg = TrainConfig(steps=2000, batch_size=512, n_seeds=2, eval_every=100, ckpt_every=500,
                          eval_tasks=1024, final_eval_tasks=4000)
    else:
        cfg = TrainConfig(steps=steps or 20000, batch_size=batch_size or 2048, n_seeds=5, eval_every=250,
                          ckpt_every=2500, eval_tasks=2048, final_eval_tasks=10000)
    return ExperimentConfig(
        name=f"{NAME}_{setting}",
        task=task,
        model=ModelConfig(n_layers=1, attention="linear", init_scale=0.02),
        # a cosine decay to 0 lets the weights settle at the optimum instead of jittering around it
        optim=OptimConfig(name="adam", lr=3e-3, b2=0.98, grad_clip=1.0, schedule="cosine"),
        train=cfg,
        compare_against=("gd", "preconditioned_gd", "least_squares"),
    )


def relative_distance(gamma: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(gamma - target) / np.linalg.norm(target))


def best_multiple(gamma: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """c * basis with c the least-squares fit to gamma (the closest member of that family)."""
    return float(np.sum(gamma * basis) / np.sum(basis * basis)) * basis


CONVERGED = 0.1  # a seed whose ||Gamma - Gamma*|| / ||Gamma*|| is below this counts as converged


def gammas(config: ExperimentConfig, params: dict) -> list[np.ndarray]:
    return [compare.preconditioner(m.layers[0], D)["gamma"] for m in train.seed_models(config, params)]


def rank_one_share(config: ExperimentConfig, params: dict) -> list[float]:
    """||sum_h a_xy b_x^T||_F / ||Gamma||_F per seed: how much of Gamma goes through the path that also
    switches on the two non-GD terms (0 for the construction; large for a seed stalled in a trap)."""
    out = []
    for m in train.seed_models(config, params):
        parts = compare.preconditioner(m.layers[0], D)
        out.append(float(np.linalg.norm(np.einsum("hd,he->de", parts["a_xy"], parts["b_x"])) / np.linalg.norm(parts["gamma"])))
    return out


def distances(config: ExperimentConfig, gamma: np.ndarray) -> dict:
    """Relative Frobenius distance of a trained Gamma to Gamma* and to the alternatives."""
    task = config.task
    sigma = task.input_covariance
    star = solvers.gamma_star(sigma, N_CTX, task.noise_std, task.weight_std)
    out = {
        "gamma_star": relative_distance(gamma, star),
        # how far the nearest plain-GD (c I) and Newton-like (c Sigma^-1) preconditioners are from Gamma*
        "best_multiple_of_identity": relative_distance(best_multiple(star, np.eye(D)), star),
        "best_multiple_of_sigma_inverse": relative_distance(best_multiple(star, np.linalg.inv(sigma)), star),
        # the trained Gamma's own distance from a multiple of I (0: it is plain GD)
        "trained_from_multiple_of_identity": relative_distance(gamma, best_multiple(gamma, np.eye(D))),
    }
    if task.noise_std > 0:
        out["noiseless_gamma_star"] = relative_distance(gamma, solvers.gamma_star(sigma, N_CTX))
        out["noiseless_vs_noisy_gamma_star"] = relative_distance(solvers.gamma_star(sigma, N_CTX), star)
    return out


def piece_steps(config: ExperimentConfig) -> list[int]:
    """Log-spaced points of training, all multiples of eval_every (where train.train can stop)."""
    every, total = config.train.eval_every, config.train.steps
    raw = np.geomspace(every, total, N_PIECES)
    return sorted({int(round(s / every)) * every for s in raw} | {total})


def distance_curve(config: ExperimentConfig, args) -> dict:
    """Train in pieces; the distance of every seed's Gamma to Gamma* at each (cached in the run dir)."""
    task = config.task
    star = solvers.gamma_star(task.input_covariance, N_CTX, task.noise_std, task.weight_std)
    measure = lambda step, params: [relative_distance(g, star) for g in gammas(config, params)]  # noqa: E731
    pieces = common.train_in_pieces(config, args, piece_steps(config), measure, "claim1_pieces.json")
    steps = sorted(int(s) for s in pieces)
    return {"steps": steps, "distance": [pieces[str(s)] for s in steps]}


def length_shift(config: ExperimentConfig, params: dict, gamma_list: list[np.ndarray], n_tasks: int, converged: list[int]) -> dict:
    """Measured loss of each seed's model at every test length vs the closed forms (also over the
    converged seeds alone: the theory's prediction is about the optimum, not a stalled seed)."""
    task, sigma = config.task, config.task.input_covariance
    hyper = (task.noise_std, task.weight_std)
    star = solvers.gamma_star(sigma, N_CTX, *hyper)
    models = train.seed_models(config, params)
    rows = []
    for i, n_test in enumerate(TEST_LENGTHS):
        batch = dataclasses.replace(task, n_ctx=n_test).sample(jax.random.fold_in(train.heldout_key(config, 5), i), n_tasks)
        measured, stderr, own_gamma = [], [], []
        for model, gamma in zip(models, gamma_list):
            sq = 0.5 * np.asarray(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query, np.float64) ** 2
            measured.append(float(sq.mean()))
            stderr.append(float(sq.std() / np.sqrt(sq.size)))
            y_pgd = solvers.preconditioned_gd(batch.x_ctx, batch.y_ctx, batch.x_query, gamma_matrix=jnp.asarray(gamma, batch.x_ctx.dtype))
            own_gamma.append(float(compare.loss(y_pgd, batch.y_query)))
        rows.append({
            "n_test": n_test,
            "model_measured": common.stats(measured),
            "model_stderr": float(np.mean(stderr)),
            "model_measured_converged_seeds": [measured[i] for i in converged],
            "own_gamma_measured": own_gamma,  # preconditioned GD with each seed's Gamma, same tasks
            "closed_form_trained_gamma": common.stats([solvers.preconditioned_loss(g, sigma, n_test, *hyper) for g in gamma_list]),
            "closed_form_gamma_star_train_n": solvers.preconditioned_loss(star, sigma, n_test, *hyper),
            "closed_form_gamma_star_test_n": solvers.preconditioned_loss(solvers.gamma_star(sigma, n_test, *hyper), sigma, n_test, *hyper),
        })
    return {"rows": rows}


def evaluate(config: ExperimentConfig, summary: dict, params: dict, curve: dict) -> dict:
    task, sigma = config.task, config.task.input_covariance
    hyper = (task.noise_std, task.weight_std)
    gamma_list = gammas(config, params)
    per_seed = [distances(config, g) for g in gamma_list]
    converged = [i for i, s in enumerate(per_seed) if s["gamma_star"] < CONVERGED]
    shift = length_shift(config, params, gamma_list, config.train.final_eval_tasks, converged)
    at_train_n = next(r for r in shift["rows"] if r["n_test"] == N_CTX)
    return {
        "setting": config.name.removeprefix(NAME + "_"),
        "task": {"covariance": task.covariance if isinstance(task.covariance, str) else "matrix",
                 "condition_number": task.condition_number, "noise_std": task.noise_std},
        "distances": {k: common.stats([s[k] for s in per_seed]) for k in per_seed[0]},
        "converged_seeds": converged,
        "distance_of_converged_seeds": [s["gamma_star"] for s in per_seed if s["gamma_star"] < CONVERGED],
        "rank_one_path_share": rank_one_share(config, params),
        "gamma_trained_seed0": gamma_list[0].tolist(),
        "gamma_star": solvers.gamma_star(sigma, N_CTX, *hyper).tolist(),
        "loss": {
            "model_summary": common.stats(summary["model"]["loss"]),
            "model_at_train_n": at_train_n["model_measured"],
            "closed_form_trained_gamma": at_train_n["closed_form_trained_gamma"],
            "closed_form_gamma_star": at_train_n["closed_form_gamma_star_train_n"],
            "one_step_gd_optimal_eta": summary["solvers"]["gd"]["loss"],
            "least_squares": summary["solvers"]["least_squares"]["loss"],
            "zero": summary["zero_loss"],
        },
        # the two non-GD terms' cost: model vs preconditioned GD with its own Gamma on the same tasks
        "extra_terms_loss_share": common.stats([
            (m - g) / g for m, g in zip(at_train_n["model_measured"]["values"], at_train_n["own_gamma_measured"])
        ]),
        "length_shift": shift,
        "distance_over_training": curve,
        "train_wall_s": summary["wall_s"],
    }


def draw(path, results, configs) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    ax = axes[0]
    for i, r in enumerate(results):
        curve = r["distance_over_training"]
        per_seed = np.asarray(curve["distance"]).T  # [S, pieces]
        for j, seed_curve in enumerate(per_seed):
            ax.plot(curve["steps"], seed_curve, color=f"C{i}", marker=".", lw=1, label=r["setting"] if j == 0 else None)
    ax.set(xscale="log", yscale="log", xlabel="training step", ylabel="||Gamma - Gamma*||_F / ||Gamma*||_F",
           title="trained preconditioner vs Gamma* (one line per seed)")
    ax.legend(fontsize=8)
    ax = axes[1]
    x = np.arange(len(results))
    for i, r in enumerate(results):
        dist = r["distances"]
        ax.scatter(np.full(len(dist["gamma_star"]["values"]), i), dist["gamma_star"]["values"], color="C0",
                   label="trained seeds vs Gamma*" if i == 0 else None, zorder=3)
        if "noiseless_gamma_star" in dist:
            ax.scatter(np.full(len(dist["noiseless_gamma_star"]["values"]), i + 0.15), dist["noiseless_gamma_star"]["values"],
                       color="C3", marker="x", label="trained seeds vs noiseless Gamma*")
        for key, color, label in (("best_multiple_of_identity", "C1", "best c I (plain GD) vs Gamma*"),
                                  ("best_multiple_of_sigma_inverse", "C2", "best c Sigma^-1 vs Gamma*")):
            value = dist[key]["mean"]
            if value > 0:
                ax.hlines(value, i - 0.3, i + 0.3, color=color, label=label if i == 1 else None)
    ax.axhline(CONVERGED, color="gray", ls=":", lw=0.8, label=f"'converged' threshold {CONVERGED}")
    ax.set_xticks(x, [r["setting"] for r in results], fontsize=8)
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
    ax.axvline(N_CTX, color="gray", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="test context length N'", ylabel="held-out loss",
           title="length shift (dashed: Gamma*(N=20) at N', closed form;\ndotted: best Gamma*(N'))")
    ax.legend(fontsize=7)
    cfg = configs[0].train
    common.save(fig, path, f"One LSA layer vs Gamma* (d = {D}, N = {N_CTX}): {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = [make_config(s, args.quick, args.steps, args.batch_size) for s in SETTINGS]
    results = []
    for config in configs:
        print(f"{config.name}: {common.mode(args)}, {config.train.n_seeds} seeds, {config.train.steps} steps", flush=True)
        curve = distance_curve(config, args)
        summary, params = common.run(config, args)
        r = evaluate(config, summary, params, curve)
        results.append(r)
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
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs)
    path = common.write_numbers(args, NAME, {"settings": results}, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
