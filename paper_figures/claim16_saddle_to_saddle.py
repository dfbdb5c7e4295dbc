"""Claim 16: linear attention with separate rank-one keys and queries learns in saddle-to-saddle
dynamics, one principal component per loss drop in eigenvalue order, while a merged key-query
matrix drops once (Zhang, Singh, Latham & Saxe, ICML 2025).

The study (setup, models, commands, runtime) is `icl.experiments.claim16_saddle_to_saddle`; the
closed forms (Gamma*, the in-context PCR losses L_k), the layer's Gamma along training, the
plateau / drop detection and the verdict rule are `icl.analysis.saddle_to_saddle`. Training runs
inside the analysis (`trajectory`: icl.trainer.Trainer chunk by chunk, as icl.train does, keeping
the weights every eval_every steps), cached as <out>/runs/<run>/trajectory.npz.

    python paper_figures/claim16_saddle_to_saddle.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import numpy as np

import common
from icl.analysis import saddle_to_saddle as analysis
from icl.experiments import claim16_saddle_to_saddle as study

NAME = study.STUDY
LABELS = {"sep": "ATTN_S: 5 heads, key size 1", "merged": "merged stand-in: 1 head, key size D"}
PUBLISHED = {
    "source": "Zhang, Singh, Latham & Saxe, 'Training dynamics of in-context learning in linear attention' (ICML 2025, "
    "PMLR 267, arXiv 2501.16265): multi-head linear attention trained by gradient descent from small initialisation on "
    "in-context linear regression; merged key-query (ATTN_M): two fixed points, one abrupt loss drop; separate rank-one "
    "key and query per head (ATTN_S): saddle-to-saddle dynamics, the model implementing in-context principal component "
    "regression with the number of components growing over training. No numbers to compare with (loss curves).",
    "paper_setting": "d = 4 (their default), input covariance eigenvalues proportional to 1, 2, 3, 4 (randomly rotated, "
    "trace 1), sequences of 20 tokens, w ~ N(0, I), noiseless, 1/N in the attention, full-batch gradient descent on a "
    "fixed training set (lr 0.02, init 1e-2, 5 heads for ATTN_S), as their README and code state it",
    "scale_down": "our d = 4, same relative spectrum scaled to trace d, N = 20, fresh tasks every step (SGD, batch 512), "
    "no 1/N (absorbed by the weights); ATTN_S's value / output are also size 1 (only W_O W_V's label row matters); the "
    "codebase has no merged W_KQ: the stand-in is one head of key size D (W_Q W_K^T, two factored D x D matrices)",
}


def short(values, digits: int = 5):
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def report(model: str, r: dict) -> None:
    pcr = r["pcr_losses"]
    print(f"  {model}: PCR losses L_0..L_d {np.round(pcr, 3).tolist()} (on the held-out tasks "
          f"{np.round(r['pcr_losses_on_tasks'], 3).tolist()})", flush=True)
    for seed, s in zip(r["seed_ids"], r["seeds"], strict=True):
        levels = [round(p["level"], 3) for p in s["plateaus"]]
        print(f"    seed {seed}: learned at {s['learning_steps']} (in order {s['in_order']}), {s['n_drops']} drops at "
              f"{s['drop_steps']}, plateau levels {levels}, final p_i / g_i* "
              f"{np.round(s['final_projection_over_gamma_star'], 3).tolist()}, loss / L_d {s['final_loss_over_optimum']:.3f}, "
              f"heads serve components {[h['component'] for h in s['final_heads']]} "
              f"(shares {[round(h['share'], 2) for h in s['final_heads']]})", flush=True)


def draw(path, results: dict, configs: dict, title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    d = study.D
    ax = axes[0, 0]
    for j, (model, r) in enumerate(results.items()):
        steps, loss = np.asarray(r["steps"]), np.asarray(r["loss"])
        for s in range(loss.shape[1]):
            ax.plot(steps, loss[:, s], color=f"C{3 * j}", lw=0.9, alpha=0.8, label=LABELS[model] if s == 0 else None)
    pcr = next(iter(results.values()))["pcr_losses"]
    for k, level in enumerate(pcr):
        ax.axhline(level, color="gray", lw=0.6, ls="--")
        ax.text(55, level, f"L_{k}", va="bottom", fontsize=8, color="gray")
    ax.set(xlabel="training step", ylabel="held-out loss", yscale="log", xscale="log", xlim=(50, None),
           title="loss, every seed (dashed: in-context PCR with k components, closed form)")
    ax.legend(fontsize=8)

    for col, model in enumerate(results):
        ax = axes[1, col]
        r = results[model]
        steps, proj = np.asarray(r["steps"]), np.asarray(r["projections"])  # [R, S, d]
        target = np.asarray(r["gamma_star"])
        for s in range(proj.shape[1]):
            for i in range(d):
                ax.plot(steps, proj[:, s, i] / target[i], color=f"C{i}", lw=1.2 if s == 0 else 0.5,
                        alpha=1.0 if s == 0 else 0.4,
                        label=f"u_{i + 1} (lambda = {r['lambda'][i]:.2f})" if s == 0 else None)
        ax.axhline(analysis.FRAC, color="gray", lw=0.6, ls=":")
        ax.set(xlabel="training step", ylabel="u_i^T Gamma_t u_i / g_i*", ylim=(-0.1, 1.3), xscale="log", xlim=(50, None),
               title=f"{LABELS[model]}: p_i(t) / g_i* (seed {r['seed_ids'][0]} bold)")
        ax.legend(fontsize=8, loc="lower right")

    ax = axes[0, 1]
    for j, (model, r) in enumerate(results.items()):
        for k, s in enumerate(r["seeds"]):
            times = np.asarray(s["learning_steps"], dtype=float)
            times[times < 0] = np.nan
            ax.plot(np.arange(1, d + 1) + 0.04 * (k - 2) + 0.25 * j, times, "o-", color=f"C{3 * j}", ms=4, lw=0.8,
                    label=LABELS[model] if k == 0 else None)
    ax.set(xlabel="component i (eigenvalues decreasing)", ylabel=f"step where u_i^T Gamma u_i reaches {analysis.FRAC:g} g_i*",
           yscale="log", title="when each component is learned (every seed; missing: never)")
    ax.set_xticks(range(1, d + 1))
    ax.legend(fontsize=8)
    common.save(fig, path, title)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    configs = common.study_configs(study, args)
    results = {}
    args.train_wall_s = 0.0
    for model, config in configs.items():
        common.announce(config, args)
        traj = analysis.trajectory(config, args.out / "runs" / config.name)
        args.train_wall_s += float(traj["wall_s"])
        r = analysis.summarise(config, traj)
        r["seed_ids"] = [config.train.seed + i for i in range(config.train.n_seeds)]
        results[model] = r
        report(model, r)
    d = study.D
    sep, merged = results["sep"]["seeds"], results["merged"]["seeds"]
    verdict = analysis.verdict(sep, merged, d)
    counts = {
        "sep_saddle_to_saddle": sum(analysis.saddle_to_saddle(s, d) for s in sep),
        "sep_in_order": sum(s["in_order"] for s in sep),
        "sep_in_order_so_far": sum(s["in_order_so_far"] for s in sep),
        "merged_drops_once": sum(analysis.drops_once(s) for s in merged),
        "n_seeds": len(sep),
    }
    print(f"verdict: {verdict} ({counts})", flush=True)
    cfg = configs["sep"].train
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, configs, f"Saddle-to-saddle (Zhang et al. 2025): d = {d}, N = {study.N_CTX}, lambda = "
         f"{np.round(results['sep']['lambda'], 2).tolist()}; {common.mode(args)}: {cfg.n_seeds} seeds, {cfg.steps} steps "
         f"of batch {cfg.batch_size}, SGD lr {configs['sep'].optim.lr:g}")
    numbers = {}
    for model, r in results.items():  # the curves thinned to ~120 records (every record: runs/<run>/trajectory.npz)
        stride = max(1, len(r["steps"]) // 120)
        numbers[model] = {**{k: v for k, v in r.items() if k not in ("loss", "projections", "steps")},
                          "curves": {"stride_records": stride, "steps": r["steps"][::stride], "loss": short(r["loss"][::stride], 4),
                                     "projections": short(r["projections"][::stride], 5)}}
    numbers["counts"] = counts
    numbers["criterion"] = (
        f"per seed, ATTN_S is saddle-to-saddle if its held-out loss has >= d - 1 = {d - 1} drops (plateau detection: "
        f"log loss smoothed by a running median of {analysis.SMOOTH} records, flat = changes < {analysis.FLAT_TOL} over "
        f"{analysis.WINDOW} records, plateau >= {analysis.MIN_PLATEAU} flat records, drop = fall >= {analysis.MIN_DROP} "
        f"in log loss between plateaus) and its components are learned (u_i^T Gamma u_i >= {analysis.FRAC:g} g_i*) in "
        "strictly decreasing-eigenvalue order; the merged model drops once if its curve has exactly one drop; held if "
        "both in a majority of seeds, held in part if only ATTN_S's half, did not hold if ATTN_S's half fails")
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED, verdict=verdict, **counts)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
