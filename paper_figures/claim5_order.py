"""Claim 5: order and the critique (Shen et al. 2023). Full-batch GD ignores the order of the context
examples; is a trained transformer's in-context learner order-sensitive, and do its weights resemble
the GD construction when its predictions match GD's?

The study (models, commands, runtime) is `icl.experiments.claim5_order`; the measurements are
`icl.analysis.order` (order sensitivity, slot influence, the GD / online SGD references),
`icl.analysis.online_sgd` and `icl.analysis.lsa_weights` (weights against the construction).

    python paper_figures/claim5_order.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import jax
import numpy as np

import common
from icl import compare, train
from icl.analysis import lsa_weights, online_sgd, order
from icl.experiments import claim5_order as study

NAME = study.STUDY
LABELS = {
    "lsa": "1-layer LSA (paired)", "lsa_init1": "1-layer LSA, init 1.0", "softmax": "2-layer softmax+MLP (paired)",
    "separate": "softmax+linear, separate tokens + positions",
}
PUBLISHED = {
    "source": "Shen et al. 2023, 'Do pretrained transformers really learn in-context by gradient descent?' "
    "(critique of von Oswald et al. 2023): GD is invariant to the order of the demonstrations while ICL "
    "of real LMs is order-sensitive; the GD correspondence of the trained linear model holds for its "
    "predictions under strong assumptions and does not carry to real models. No number is published "
    "for this setting (d = N = 10 synthetic linear regression), so there is none to compare with.",
    "claim_tested": "(i) trained in-context regressors are order-sensitive while one GD step is exactly "
    "order-invariant; (ii) trained 1-layer LSA weights resemble the GD construction, or only its "
    "predictions do",
}


def evaluate_model(config, params: dict, summary: dict, batch, x_perm, y_perm, reference) -> dict:
    """Order numbers per seed, and the final table's loss and comparison with GD."""
    scalars, slot_influence = order.evaluate_seeds(config, params, batch, x_perm, y_perm, reference)
    gd = summary["solvers"]["gd"]
    return {
        "order": scalars, "slot_influence": slot_influence,  # [S, N]
        "final_loss": common.stats(summary["model"]["loss"]),
        "gd_loss": gd["loss"], "gd_eta": gd["hparams"]["lr"],
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "train_wall_s": summary["wall_s"], "train_steps_per_s": summary["train_steps_per_s"],
    }


def draw(path, numbers, configs):
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    refs = numbers["references"]
    floor = 1e-9  # log-scale floor for float roundoff (exactly 0 is off a log axis)

    ax = axes[0, 0]
    entries = [(LABELS[m], numbers["models"][m]["order"]) for m in study.ORDER_MODELS]
    def single(ref):  # a reference learner's numbers in the per-seed layout of the models'
        return {k: {"values": [ref[k]]} for k in ("sensitivity", "worst")}

    entries += [("1 step GD", single(refs["gd"])), ("online SGD, alpha = eta/N", single(refs["online_sgd_matched"])),
                (f"online SGD, tuned alpha = {refs['online_sgd_tuned']['factor']:.2g} eta/N", single(refs["online_sgd_tuned"]))]
    for i, (_label, spread) in enumerate(entries):
        mean = np.maximum(spread["sensitivity"]["values"], floor)
        worst = np.maximum(spread["worst"]["values"], floor)
        ax.scatter(np.full(len(mean), i) - 0.1, mean, color="C0", marker="o", label="mean over tasks" if i == 0 else None)
        ax.scatter(np.full(len(worst), i) + 0.1, worst, color="C3", marker="^", label="worst task" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(entries)), [e[0] for e in entries], rotation=25, ha="right", fontsize=7)
    ax.set(ylabel="std over orders / std over tasks", title=f"order sensitivity ({refs['n_perms']} orders x "
           f"{refs['n_tasks']} tasks; float32; points = seeds)")
    ax.legend(fontsize=7)

    sweep = refs["online_sgd_sweep"]
    ax = axes[0, 1]  # the loss / order-sensitivity plane: online SGD traced over alpha, models per seed
    ax.plot([s["sensitivity"] for s in sweep], [s["loss"] for s in sweep], "k-", marker=".", label="online SGD over alpha")
    for s in sweep[::4]:
        ax.annotate(f"{s['factor']:.2g}", (s["sensitivity"], s["loss"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.scatter([max(refs["online_sgd_matched"]["sensitivity"], floor)], [refs["online_sgd_matched"]["loss"]], color="k",
               marker="s", s=40, label="online SGD, alpha = eta/N", zorder=3)
    ax.scatter([max(refs["gd"]["sensitivity"], floor)], [refs["gd"]["loss"]], color="k", marker="*", s=80,
               label="1 step GD (0 up to float32 roundoff)", zorder=3)
    for i, m in enumerate(study.ORDER_MODELS):
        spread = numbers["models"][m]["order"]
        ax.scatter(np.maximum(spread["sensitivity"]["values"], floor), spread["loss"]["values"], color=f"C{i + 1}",
                   label=LABELS[m] + " (seeds)", zorder=3)
    ax.set(xscale="log", xlabel="order sensitivity (std over orders / std over tasks)", ylabel="held-out loss",
           ylim=(0, 0.45), title="loss vs order sensitivity (labels on the curve: alpha / (eta/N))")
    ax.legend(fontsize=7)

    ax = axes[0, 2]  # which slots the prediction listens to (recency would rise to the right)
    slots = np.arange(1, len(refs["gd"]["slot_influence"]) + 1)
    ax.plot(slots, refs["gd"]["slot_influence"], "k:", marker="*", label="1 step GD")
    ax.plot(slots, refs["online_sgd_matched"]["slot_influence"], "k-", marker="s", label="online SGD, alpha = eta/N")
    ax.plot(slots, refs["online_sgd_tuned"]["slot_influence"], "k--", marker=".", label="online SGD, tuned alpha")
    for i, m in enumerate(study.ORDER_MODELS):
        corr = numbers["models"][m]["order"]["corr_with_online_sgd"]["mean"]
        for j, profile in enumerate(numbers["models"][m]["slot_influence"]):
            ax.plot(slots, profile, color=f"C{i + 1}", lw=0.8, alpha=0.8,
                    label=f"{LABELS[m]} (seeds; corr of order effects with online SGD {corr:.2f})" if j == 0 else None)
    ax.set(xlabel="context slot i", ylabel="share of mean |d y_hat / d y_i|",
           title="influence of each slot's label on the prediction")
    ax.legend(fontsize=6)

    scale_b = configs["lsa"].task.n_ctx / numbers["eta"]  # B x N / eta: the construction's B is -1 at (D, D)
    for ax, m in ((axes[1, 0], "lsa"), (axes[1, 1], "lsa_init1")):
        w = numbers["weights"][m][0]
        a, b = np.asarray(w["A"]), np.asarray(w["B"]) * scale_b
        mat = np.concatenate([a, np.full((len(a), 1), np.nan), b], 1)  # [D, 2D + 1]: A | gap | B
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-1.2, vmax=1.2)
        ax.set(title=f"{LABELS[m]}, seed 0: cA (left) | B N / (c eta) (right)\n"
               f"construction: diag(I, 0) | -1 at (D, D); cos {w['cos_A']:.3f} | {w['cos_B']:.3f}",
               xticks=[], yticks=[])
        fig.colorbar(image, ax=ax, fraction=0.025)

    ax = axes[1, 2]
    keys = ["cos_A", "cos_B", "cos_A_xx", "cos_B_readout_col", "zero_frac_A", "zero_frac_B", "model_cos"]
    for j, m in enumerate(study.WEIGHT_MODELS):
        for i, k in enumerate(keys):
            vals = numbers["models"][m]["model_cos"]["values"] if k == "model_cos" else [s[k] for s in numbers["weights"][m]]
            x = i + (j - 0.5) * 0.35
            ax.bar(x, np.mean(vals), width=0.33, color=f"C{j}", alpha=0.6, label=LABELS[m] if i == 0 else None)
            ax.scatter(np.full(len(vals), x), vals, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(keys)), keys, rotation=25, ha="right", fontsize=8)
    ax.set(ylim=(-0.05, 1.05), title="weights vs construction (c-aligned; seeds) and model_cos")
    ax.legend(fontsize=7)

    cfg = {m: c.train for m, c in configs.items()}
    common.save(fig, path, "Claim 5 (order and the critique): " + "; ".join(
        f"{m} {cfg[m].steps} x {cfg[m].batch_size}" for m in configs) + f"; {cfg['lsa'].n_seeds} seeds")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    configs = study.configs(mode, args.steps, args.batch_size)
    lsa = configs["lsa"]  # every config has the same task; the final tables' GD eta comes from the same key
    batch, x_perm, y_perm = order.order_batch(lsa, *study.ORDER_TASKS[mode])
    eta = float(compare.solver_predictor("gd", lsa.task, train.heldout_key(lsa, train.HeldOut.GD_LR))[1]["lr"])
    reference = np.asarray(order.predict_orders(jax.jit(online_sgd.matched_online_sgd(eta, lsa.task.n_ctx)), x_perm, y_perm,
                                                batch.x_query))  # [R, B, M]
    numbers: dict = {"models": {}, "weights": {}, "eta": eta}
    for m, config in configs.items():
        common.announce(config, args)
        summary, params = common.run(config, args)
        r = numbers["models"][m] = evaluate_model(config, params, summary, batch, x_perm, y_perm, reference)
        if not np.isclose(r["gd_eta"], eta, rtol=1e-5):
            raise RuntimeError(f"{config.name}: the final table's GD eta {r['gd_eta']} differs from {eta}")
        print(f"  loss {r['final_loss']['mean']:.4f} (GD {r['gd_loss']:.4f})  model_cos {r['model_cos']['mean']:.4f}  "
              f"order sensitivity {r['order']['sensitivity']['mean']:.3g} (worst {r['order']['worst']['max']:.3g}, "
              f"max |diff| {r['order']['max_abs']['max']:.3g}; corr with online SGD's order effects "
              f"{r['order']['corr_with_online_sgd']['mean']:.3f})", flush=True)
        if m in study.WEIGHT_MODELS:
            w = numbers["weights"][m] = lsa_weights.construction_resemblance(config, params, r["gd_eta"])
            print("  weights: " + "  ".join(f"{k} {np.mean([s[k] for s in w]):.4f}" for k in
                  ("cos_A", "cos_B", "cos_A_xx", "cos_B_readout_col", "zero_frac_A", "zero_frac_B", "eta_eff")), flush=True)
    refs = numbers["references"] = order.evaluate_references(lsa, eta, batch, x_perm, y_perm, study.ALPHA_FACTORS)
    for k in ("gd", "online_sgd_matched", "online_sgd_tuned"):
        print(f"  {k}: loss {refs[k]['loss']:.4f}  order sensitivity {refs[k]['sensitivity']:.3g} "
              f"(worst {refs[k]['worst']:.3g}, max |diff| {refs[k]['max_abs']:.3g})", flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, numbers, configs)
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
