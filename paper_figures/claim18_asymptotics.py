"""Claim 18: double descent in the number of pretraining sequences and a memorisation -> ICL
transition with task diversity, for the reduced linear-attention model (Lu, Letey, Zavatone-Veth,
Maiti & Pehlevan, PNAS 2025), solved in closed form at finite d, plus a trained LSA layer.

(icl.analysis.linear_attention_asymptotics; paper scale: x ~ N(0, I/d), w ~ N(0, I), rho = 0.1,
l = alpha d with alpha = 2)
  * double descent: the ridge Gamma on n = tau d^2 sequences (a fresh task each, kappa = infinity),
    nested training sets, tau from 0.1 to 4, four ridges; exact error on fresh tasks; the peak;
  * task diversity: a pool of k = kappa d tasks, kappa from 1/8 to 16: exact errors on fresh and on
    pool tasks of the tau = infinity solution (closed form) and of the ridge Gamma at tau = 1 and 4;
  * trained LSA (experiments.claim18_asymptotics, d = 16, kappa = 0.5 and 4, online): loss on fresh
    and pool tasks, and its read-off Gamma, against the reduced model's tau = infinity Gamma.

    python paper_figures/claim18_asymptotics.py            # full: d = 16, 32 (tau = inf: 32, 128); LSA 2 x 2 seeds x 10,000 steps
    python paper_figures/claim18_asymptotics.py --quick    # d = 16 (tau = inf: 32), fewer seeds; LSA 800 steps
"""

from __future__ import annotations

import time

import jax
import numpy as np

import common
from icl import train, weights
from icl.analysis import linear_attention_asymptotics as la, task_pool
from icl.experiments import claim18_asymptotics as study

NAME = study.STUDY
ALPHA, RHO = 2, study.RHO
LAMS = (1e-4, 1e-2, 1e-1, 1.0)
TAUS = np.unique(np.concatenate([np.geomspace(0.1, 4, 17), [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25]]))
KAPPAS = (0.125, 0.1875, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
KAPPAS_FINITE = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LAM_FINITE = 1e-2  # the ridge of the finite-tau task-diversity scan
TAU_FINITE = (1, 4)
MODES = {  # d -> seeds
    "full": {"dd": {16: 8, 32: 3}, "td_inf": {32: 6, 128: 4}, "td_finite": {16: 4, 32: 2}, "eval_tasks": 10000},
    "quick": {"dd": {16: 3}, "td_inf": {32: 3}, "td_finite": {16: 2}, "eval_tasks": 2000},
}
# The verdict rule (written before the full run; see paper_figures/README.md, claim 18)
DD_TAU_BAND = (0.8, 1.25)  # the small-ridge peak's location, tau = n / d^2
DD_MIN_HEIGHT = 2.0  # ... its height, in units of the zero predictor's error (1 + rho)
DD_GONE = 1.05  # at lam = 1: no interior maximum above this x the zero predictor's error
TD_MEMO_POOL_OVER_FRESH = 0.3  # kappa = 1/8, tau = inf: e_pool <= this x e_fresh
TD_MEMO_EXCESS = 0.75  # ... and the fresh excess (e_fresh - e*) / (zero - e*) >= this
TD_ICL_EXCESS = 0.05  # kappa = 16, tau = inf: fresh excess <= this, and gap (fresh - pool) / fresh <= this
TD_CROSS_BAND = (0.5, 2.0)  # the kappa where the gap falls below 0.5 (tau = inf, largest d)
TD_FINITE = (0.5, 0.1)  # tau = 4, largest d: gap >= 0.5 at kappa = 1/8 and <= 0.1 at kappa = 16
LSA_LOSS_TOL, LSA_COS_MIN = 0.1, 0.95  # trained LSA vs the reduced tau = inf model: losses within 10 %, cos(Gamma) >= 0.95
PUBLISHED = {
    "source": "Lu, Letey, Zavatone-Veth, Maiti & Pehlevan, 'Asymptotic theory of in-context learning by linear attention', "
    "PNAS 122(28) e2502599122 (2025), arXiv 2405.11751: for linear regression in context by a simplified linear attention "
    "model, in the limit d -> infinity with l / d = alpha, k / d = kappa, n / d^2 = tau, sharp asymptotics of the learning "
    "curve; a double-descent learning curve with increasing pretraining examples, and a phase transition between low "
    "task diversity (memorisation of the training tasks) and high task diversity (in-context learning of tasks beyond the "
    "pretraining pool), separated near kappa = 1. Their deterministic curves e^ICL, e^IDG come from self-consistent "
    "equations we did not retrieve in full: not implemented, so no number-for-number comparison.",
    "scale_down": "finite d (16, 32; tau = inf: 32, 128), alpha = 2, rho = 0.1; our d x d Gamma (the part of an LSA layer "
    "linear in the labels), ridge penalty (n / d) lam |Gamma|_F^2",
    "criterion": f"double descent held if at lam = {LAMS[0]:g} the fresh-task error peaks inside tau in {DD_TAU_BAND} "
    f"with height >= {DD_MIN_HEIGHT} x the zero predictor's at every d, the peak heights fall with lam, and at lam = "
    f"{LAMS[-1]:g} no interior maximum exceeds {DD_GONE} x the zero predictor's; the task-diversity transition held if "
    f"at the largest d, tau = inf: kappa = 1/8 has e_pool <= {TD_MEMO_POOL_OVER_FRESH} e_fresh and fresh excess >= "
    f"{TD_MEMO_EXCESS}, kappa = 16 has fresh excess and gap <= {TD_ICL_EXCESS}, the gap (e_fresh - e_pool) / e_fresh "
    f"falls below 0.5 at a kappa in {TD_CROSS_BAND}, and at tau = 4 the gap is >= {TD_FINITE[0]} at kappa = 1/8 and "
    f"<= {TD_FINITE[1]} at kappa = 16; the trained LSA matches the reduced model if its fresh and pool losses are within "
    f"{LSA_LOSS_TOL:.0%} of Gamma_inf's and cos(N Gamma_LSA, Gamma_inf) >= {LSA_COS_MIN} (seed means). Verdict: held if all "
    "three, held in part if one or two, did not hold if none",
}


def double_descent(d: int, seeds: int) -> dict:
    s, n_ctx = 1 / d, ALPHA * d
    ns = np.unique(np.round(TAUS * d * d).astype(int))
    curves = np.array([la.learning_curve(np.random.default_rng([18, d, seed]), d, n_ctx, RHO, ns, LAMS, s)["fresh"]
                       for seed in range(seeds)])  # [S, lam, n]
    tau = ns / d**2
    mean = curves.mean(0)
    ref = la.best_fresh(d, n_ctx, RHO, s)
    peaks = [la.peak(tau, mean[i]) for i in range(len(LAMS))]
    return {"d": d, "seeds": seeds, "tau": tau.tolist(), "lams": list(LAMS), "fresh_mean": mean.tolist(),
            "fresh_std": curves.std(0).tolist(), "peaks": peaks, "peak_over_zero": [p["height"] / ref["zero"] for p in peaks],
            "reference": ref, "tau_inf_fresh": la.fresh_error(la.gamma_infinite_fresh(d, n_ctx, RHO, s), n_ctx, RHO, s)}


def task_diversity_inf(d: int, seeds: int) -> dict:
    s, n_ctx = 1 / d, ALPHA * d
    ref = la.best_fresh(d, n_ctx, RHO, s)
    fresh, pool = np.zeros((len(KAPPAS), seeds)), np.zeros((len(KAPPAS), seeds))
    ks = [max(1, round(kap * d)) for kap in KAPPAS]
    for i, k in enumerate(ks):
        for seed in range(seeds):
            w = la.sample_pool(np.random.default_rng([18, d, k, seed]), k, d)
            g = la.gamma_infinite(w, n_ctx, RHO, s)
            fresh[i, seed], pool[i, seed] = la.fresh_error(g, n_ctx, RHO, s), la.pool_error(g, w, n_ctx, RHO, s)
    return _td_summary(d, seeds, ks, fresh, pool, ref)


def task_diversity_finite(d: int, seeds: int) -> dict:
    s, n_ctx = 1 / d, ALPHA * d
    ref = la.best_fresh(d, n_ctx, RHO, s)
    ks = [max(1, round(kap * d)) for kap in KAPPAS_FINITE]
    fresh, pool = np.zeros((len(TAU_FINITE), len(ks), seeds)), np.zeros((len(TAU_FINITE), len(ks), seeds))
    for i, k in enumerate(ks):
        for seed in range(seeds):
            rng = np.random.default_rng([18, d, k, seed])
            w = la.sample_pool(rng, k, d)
            r = la.learning_curve(rng, d, n_ctx, RHO, [t * d * d for t in TAU_FINITE], [LAM_FINITE], s, pool=w)
            fresh[:, i, seed], pool[:, i, seed] = r["fresh"][0], r["pool"][0]
    return {f"tau{t}": _td_summary(d, seeds, ks, fresh[j], pool[j], ref) for j, t in enumerate(TAU_FINITE)}


def _td_summary(d, seeds, ks, fresh, pool, ref) -> dict:
    kappa = np.array(ks) / d
    f, p = fresh.mean(-1), pool.mean(-1)
    gap = la.memorisation_gap(f, p)
    excess = (f - ref["error"]) / (ref["zero"] - ref["error"])
    return {"d": d, "seeds": seeds, "kappa": kappa.tolist(), "k": list(ks), "fresh": f.tolist(), "pool": p.tolist(),
            "fresh_std": fresh.std(-1).tolist(), "pool_std": pool.std(-1).tolist(), "gap": gap.tolist(),
            "fresh_excess": excess.tolist(), "kappa_gap_half": la.kappa_crossing(kappa, gap, 0.5), "reference": ref}


def lsa_check(args, mode: str, n_tasks: int) -> dict:
    out, cfgs = {}, study.configs(mode, args.steps, args.batch_size)
    d, n, rho_repo = study.D, study.N_CTX, study.NOISE_STD**2
    for k, config in cfgs.items():
        common.announce(config, args)
        _, params = common.run(config, args)
        pool = config.task.pool
        g_inf = la.gamma_infinite(pool, n, rho_repo, 1.0)
        gammas = [n * weights.preconditioner(m.layers[0], d)["gamma"] for m in train.seed_models(config, params)]
        row = {"k": k, "kappa": k / d, "gamma_inf": {"fresh": la.fresh_error(g_inf, n, rho_repo, 1.0) / d,
                                                     "pool": la.pool_error(g_inf, pool, n, rho_repo, 1.0) / d}}
        g_mean, a_mean = la.gamma_infinite_with_mean(pool, n, rho_repo, 1.0)  # + a . x_q (not in the verdict)
        row["gamma_inf_with_mean"] = {"fresh": la.error_with_mean(g_mean, a_mean, None, n, rho_repo, 1.0) / d,
                                      "pool": la.error_with_mean(g_mean, a_mean, pool, n, rho_repo, 1.0) / d,
                                      "a_norm": float(np.linalg.norm(a_mean)), "pool_mean_norm": float(np.linalg.norm(pool.mean(0)))}
        row["cos_gamma"] = common.stats([la_cos(g, g_inf) for g in gammas])
        row["rel_diff_gamma"] = common.stats([np.linalg.norm(g - g_inf) / np.linalg.norm(g_inf) for g in gammas])
        row["read_off_exact"] = {"fresh": common.stats([la.fresh_error(g, n, rho_repo, 1.0) / d for g in gammas]),
                                 "pool": common.stats([la.pool_error(g, pool, n, rho_repo, 1.0) / d for g in gammas])}
        for name, task, key in (("fresh", study.task_for(None), 1), ("pool", config.task, 2)):
            batch = task.sample(jax.random.key(1800 + key), n_tasks)
            y_model = np.asarray(task_pool.model_predictions(config, params, batch))[..., 0]  # [S, B]
            xc, yc, xq, yq = (np.asarray(a, np.float64) for a in (batch.x_ctx, batch.y_ctx, batch.x_query[:, 0], batch.y_query[:, 0]))
            y_inf = la.predict(g_inf, xc, yc, xq, 1.0)
            y_lin = np.array([la.predict(g, xc, yc, xq, 1.0) for g in gammas])
            row[name] = {"lsa": common.stats(np.mean((y_model - yq) ** 2, -1) / d),
                         "gamma_inf_mc": float(np.mean((y_inf - yq) ** 2) / d),
                         "lsa_over_gamma_inf": common.stats(np.mean((y_model - yq) ** 2, -1) / np.mean((y_inf - yq) ** 2)),
                         "other_terms_share": common.stats(np.mean((y_model - y_lin) ** 2, -1) / np.mean(y_model**2, -1)),
                         "zero": float(np.mean(yq**2) / d)}
        out[f"k{k}"] = row
        print(f"  k = {k} (kappa {k / d:g}): fresh LSA {row['fresh']['lsa']['mean']:.4f} vs Gamma_inf {row['gamma_inf']['fresh']:.4f} "
              f"(MC {row['fresh']['gamma_inf_mc']:.4f}); pool LSA {row['pool']['lsa']['mean']:.4f} vs {row['gamma_inf']['pool']:.4f} "
              f"(MC {row['pool']['gamma_inf_mc']:.4f}); cos(N Gamma_LSA, Gamma_inf) {row['cos_gamma']['mean']:.4f}, rel diff "
              f"{row['rel_diff_gamma']['mean']:.3f}; reduced + a . x_q: fresh {row['gamma_inf_with_mean']['fresh']:.4f}, pool "
              f"{row['gamma_inf_with_mean']['pool']:.4f}; other terms' share {row['fresh']['other_terms_share']['mean']:.4f} / "
              f"{row['pool']['other_terms_share']['mean']:.4f}", flush=True)
    return out, list(cfgs.values())


def la_cos(a, b) -> float:
    return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def verdicts(dd: dict, td_inf: dict, td_fin: dict, lsa: dict) -> dict:
    dd_ok = []
    for r in dd.values():
        small, big = r["peaks"][0], r["peaks"][-1]
        heights = [p["height"] for p in r["peaks"]]
        dd_ok.append(small["interior"] and DD_TAU_BAND[0] <= small["x"] <= DD_TAU_BAND[1]
                     and small["height"] >= DD_MIN_HEIGHT * r["reference"]["zero"]
                     and all(a > b for a, b in zip(heights, heights[1:], strict=False))
                     and not (big["interior"] and big["height"] > DD_GONE * r["reference"]["zero"]))
    top = td_inf[max(td_inf)]
    i8, i16 = top["kappa"].index(0.125), top["kappa"].index(16.0)
    fin = td_fin[max(td_fin)]["tau4"]
    j8, j16 = fin["kappa"].index(0.125), fin["kappa"].index(16.0)
    cross = top["kappa_gap_half"]
    td_ok = (top["pool"][i8] <= TD_MEMO_POOL_OVER_FRESH * top["fresh"][i8] and top["fresh_excess"][i8] >= TD_MEMO_EXCESS
             and top["fresh_excess"][i16] <= TD_ICL_EXCESS and top["gap"][i16] <= TD_ICL_EXCESS
             and cross is not None and TD_CROSS_BAND[0] <= cross <= TD_CROSS_BAND[1]
             and fin["gap"][j8] >= TD_FINITE[0] and fin["gap"][j16] <= TD_FINITE[1])
    lsa_ok = all(abs(r[s]["lsa"]["mean"] / r["gamma_inf"][s] - 1) <= LSA_LOSS_TOL for r in lsa.values() for s in ("fresh", "pool")) \
        and all(r["cos_gamma"]["mean"] >= LSA_COS_MIN for r in lsa.values())
    n_ok = sum([all(dd_ok), td_ok, lsa_ok])
    return {"verdict": "held" if n_ok == 3 else ("held in part" if n_ok else "did not hold"),
            "double_descent": all(dd_ok), "double_descent_per_d": dd_ok, "task_transition": td_ok, "lsa_matches_reduced": lsa_ok}


def draw(path, dd, td_inf, td_fin, lsa) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    ax = axes[0]
    for j, (d, r) in enumerate(sorted(dd.items())):
        last = j == len(dd) - 1
        for i, lam in enumerate(r["lams"]):
            label = f"lam = {lam:g}, d = {d}" if last else (f"d = {d} (dashed)" if i == 0 else None)
            ax.plot(r["tau"], r["fresh_mean"][i], color=f"C{i}", ls="-" if last else "--", marker="." if last else None, label=label)
        ax.axhline(r["reference"]["zero"], color="grey", lw=0.8, ls=":")
        ax.axhline(r["tau_inf_fresh"], color="k", lw=0.8, ls=":")
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="tau = n / d^2", ylabel="ICL error on fresh tasks (exact)",
           title="double descent (kappa = inf; grey: zero predictor, black: tau = inf)")
    ax.legend(fontsize=7)
    ax = axes[1]
    for j, (d, r) in enumerate(sorted(td_inf.items())):
        ls = "-" if j == len(td_inf) - 1 else "--"
        ax.plot(r["kappa"], r["fresh"], color="C0", ls=ls, label=f"fresh, tau = inf, d = {d}")
        ax.plot(r["kappa"], r["pool"], color="C1", ls=ls, label=f"pool, tau = inf, d = {d}")
    for j, (d, r) in enumerate(sorted(td_fin.items())):
        m = "o" if j == len(td_fin) - 1 else "s"
        ax.plot(r["tau4"]["kappa"], r["tau4"]["fresh"], color="C2", marker=m, ls=":", label=f"fresh, tau = 4, d = {d}")
        ax.plot(r["tau4"]["kappa"], r["tau4"]["pool"], color="C3", marker=m, ls=":", label=f"pool, tau = 4, d = {d}")
    ref = td_inf[max(td_inf)]["reference"]
    ax.axhline(ref["error"], color="k", lw=0.8, ls=":")
    ax.axhline(ref["zero"], color="grey", lw=0.8, ls=":")
    ax.axvline(1.0, color="k", lw=0.6)
    ax.set(xscale="log", xlabel="kappa = k / d", ylabel="error (exact)", ylim=(0, None),
           title=f"task diversity (ridge lam = {LAM_FINITE:g} at tau = 4; black: best Gamma)")
    ax.legend(fontsize=7)
    ax = axes[2]
    labels, x = [], 0
    for r in lsa.values():
        for s in ("fresh", "pool"):
            ax.bar(x - 0.2, r[s]["lsa"]["mean"], 0.4, color="C0", label="trained LSA (MC)" if x == 0 else None)
            ax.bar(x + 0.2, r["gamma_inf"][s], 0.4, color="C1", label="reduced model, Gamma_inf (exact)" if x == 0 else None)
            ax.scatter([x + 0.2], [r["gamma_inf_with_mean"][s]], color="C3", marker="_", s=300, zorder=4,
                       label="reduced + constant a . x_q (exact)" if x == 0 else None)
            ax.scatter(np.full(len(r[s]["lsa"]["values"]), x - 0.2), r[s]["lsa"]["values"], color="k", s=12, zorder=3)
            labels.append(f"kappa {r['kappa']:g}\n{s}")
            x += 1
    ax.set_xticks(range(len(labels)), labels)
    ax.set(ylabel="error (paper units: MSE / d)", title=f"trained LSA vs reduced model (d = {study.D}, N = {study.N_CTX}, online)")
    ax.legend(fontsize=8)
    common.save(fig, path, f"Claim 18: reduced linear attention at finite d (alpha = {ALPHA}, rho = {RHO})")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    plan = MODES[mode]
    timings = {}
    t = time.perf_counter()
    dd = {d: double_descent(d, seeds) for d, seeds in plan["dd"].items()}
    timings["double_descent_s"] = round(time.perf_counter() - t, 1)
    for d, r in dd.items():
        print(f"double descent d = {d} ({r['seeds']} seeds): " + "; ".join(
            f"lam {lam:g}: peak tau {p['x']:.3f} height {p['height']:.3f} ({h:.2f} x zero){'' if p['interior'] else ' [edge]'}"
            for lam, p, h in zip(r["lams"], r["peaks"], r["peak_over_zero"], strict=True)), flush=True)
    t = time.perf_counter()
    td_inf = {d: task_diversity_inf(d, seeds) for d, seeds in plan["td_inf"].items()}
    td_fin = {d: task_diversity_finite(d, seeds) for d, seeds in plan["td_finite"].items()}
    timings["task_diversity_s"] = round(time.perf_counter() - t, 1)
    for label, r in [*((f"tau = inf, d = {d}", r) for d, r in td_inf.items()),
                     *((f"tau = {tau}, d = {d}", r[f"tau{tau}"]) for d, r in td_fin.items() for tau in TAU_FINITE)]:
        print(f"task diversity {label}: kappa {np.round(r['kappa'], 3).tolist()}\n  fresh {np.round(r['fresh'], 3).tolist()}\n"
              f"  pool  {np.round(r['pool'], 3).tolist()}\n  gap {np.round(r['gap'], 3).tolist()}, gap < 0.5 from kappa "
              f"{r['kappa_gap_half']}", flush=True)
    t = time.perf_counter()
    lsa, configs = lsa_check(args, mode, plan["eval_tasks"])
    timings["lsa_s"] = round(time.perf_counter() - t, 1)
    v = verdicts(dd, td_inf, td_fin, lsa)
    print(f"verdict: {v} ; timings {timings}", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, dd, td_inf, td_fin, lsa)
    numbers = {"setting": {"alpha": ALPHA, "rho": RHO, "scale": "x ~ N(0, I/d), w ~ N(0, I)", "lams": list(LAMS),
                           "lam_finite_tau": LAM_FINITE, "seeds": {k: {str(d): s for d, s in v2.items()} for k, v2 in plan.items()
                                                                  if isinstance(v2, dict)},
                           "seed_rule": "numpy default_rng([18, d, seed]) (double descent), ([18, d, k, seed]) (pools)"},
               "double_descent": {f"d{d}": r for d, r in dd.items()},
               "task_diversity": {"tau_inf": {f"d{d}": r for d, r in td_inf.items()}, **{
                   f"tau{tau}": {f"d{d}": r[f"tau{tau}"] for d, r in td_fin.items()} for tau in TAU_FINITE}},
               "lsa": lsa, "timings": timings}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED, verdict=v["verdict"], parts=v,
                                asymptotic_formulas="not implemented (not retrieved in full; finite-d exact solutions instead)")
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
