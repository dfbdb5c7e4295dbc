"""Claim 8: a shallow linear transformer reproduces transformer optimisation quirks (Ahn, Cheng, Song,
Yun, Jadbabaie & Sra, ICLR 2024): Adam trains it much faster than tuned SGD, and its stochastic
gradient noise is heavy-tailed.

The study (model, task, grids, commands, runtime) is `icl.experiments.claim8_optimizer_quirks`; the
training loop and the noise statistics are `icl.analysis.optimizer_quirks`.
  1. tune: each optimiser (adam, sgd, sgd + momentum 0.9; all clipped to global norm 1) on its lr
     grid, runs of a third of the comparison's length on other seeds; the same grids unclipped;
  2. compare: each at its best lr, the same seeds, steps and batch; the steps each needs to reach
     1.1, 0.1 and 0.01 x one GD step's held-out loss, and the ratio to Adam's;
  3. noise: minibatch gradients minus the full-batch gradient at the initial weights and at the
     middle and end of every optimiser's runs; kurtosis and Hill tail index of their norms against
     Gaussian vectors of the same covariance and a model linear in its parameters.

    python paper_figures/claim8_optimizer_quirks.py [--quick] [--steps S --batch-size B]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import common
from icl import compare, trainer
from icl.analysis import optimizer_quirks as oq
from icl.experiments import claim8_optimizer_quirks as study

NAME = study.STUDY
LABELS = {"adam": "Adam", "sgd": "SGD", "momentum": "SGD + momentum 0.9"}
PUBLISHED = {
    "source": "Ahn, Cheng, Song, Yun, Jadbabaie & Sra, 'Linear attention is (maybe) all you need (to understand "
    "transformer optimization)', ICLR 2024: a 3-layer linear transformer on in-context linear regression "
    "(d = 5, N = 20, Gaussian or heavy-tailed covariates) reproduces (1) the large gap between Adam and SGD of real "
    "transformers (small for CNNs), (2) heavy-tailed stochastic gradient noise (Gaussian-like for CNNs), (3) an "
    "ill-conditioned landscape with varying directional smoothness. Shown as curves and histograms; no number "
    "to compare with.",
    "tested_here": "(1) and (2) at CPU scale, Gaussian covariates only; (3) not tested",
}
# The verdict, per part and overall (both held: held; neither: did not hold; else held in part).
# (1) Adam faster, in the clipped comparison: the ratio (steps of the better SGD variant, per seed) /
#     (Adam's steps) to a target; a variant that never gets there counts at the horizon (a lower bound).
#     Held if its median over seeds is >= SPEEDUP at 0.1 x one GD step's loss; in part if the median is
#     > 1 there or at 0.01 x; else not.
# (2) Heavy-tailed noise: a trained checkpoint (middle and end of each optimiser's runs) is heavy-tailed
#     if the seed median of the minibatch noise's Hill index is < HEAVY_HILL and the seed mean of its
#     kurtosis is > HEAVY_KURTOSIS, while every Gaussian reference has Hill index > HEAVY_HILL. Held if
#     every checkpoint is; in part if at least half are; else not.
# (The first full run used an all-or-nothing rule on seed means, see the README's Claim 8 section.)
HEAVY_HILL, HEAVY_KURTOSIS, SPEEDUP = 3.0, 10.0, 3.0


def finite_or_none(values):
    """Floats with non-finite values (diverged runs) as None (valid JSON)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float).ravel()]


def smoothed_final(loss: np.ndarray) -> np.ndarray:
    """Mean held-out loss over the last 10 % of each run's evaluations (inf if any is non-finite)."""
    tail = loss[:, -max(1, loss.shape[1] // 10):]
    return np.where(np.isfinite(tail).all(1), np.nanmean(np.where(np.isfinite(tail), tail, 0.0), 1), np.inf)


def tune(config, name: str, lrs, seeds, steps: int, clip: float) -> dict:
    out = oq.train_runs(config, name, lrs, seeds, steps, config.train.eval_every, eval_tasks=config.train.eval_tasks, clip=clip)
    final = smoothed_final(out["loss"]).reshape(len(lrs), len(seeds))
    picked = oq.pick_lr(lrs, final)
    picked["score"] = finite_or_none(picked["score"])
    return {"lrs": [float(x) for x in lrs], "seeds": list(seeds), "steps": steps, "clip": clip,
            "final_loss": [finite_or_none(row) for row in final], **picked, "wall_s": out["wall_s"]}


def survival(norms: np.ndarray, n_points: int = 40) -> dict:
    """The upper tail of sorted norms: P(r > q) = p for p log-spaced in [1/n, 0.5], as q / median."""
    n = len(norms)
    p = np.geomspace(1.0 / n, 0.5, n_points)
    q = np.quantile(norms, 1.0 - p)
    return {"p": p.tolist(), "over_median": (q / np.median(norms)).tolist()}


def measure_noise(sampler, params, key) -> dict:
    grads = np.asarray(sampler(params, key))
    r = oq.gradient_noise(grads, jax.random.fold_in(key, 1))
    xi, _ = oq.noise_of(grads)
    gauss = np.linalg.norm(oq.gaussian_reference(xi, jax.random.fold_in(key, 1)), axis=1)
    return {"noise": r["noise"], "gaussian": r["gaussian"], "full_grad_norm": r["full_grad_norm"],
            "survival": survival(r["noise_norms"]), "gaussian_survival": survival(gauss)}


def middle(config) -> int:
    """The middle checkpoint: half the steps, rounded down to an evaluation step."""
    every = config.train.eval_every
    return config.train.steps // 2 // every * every


def pick(params: dict, i: int) -> dict:
    return jax.tree.map(lambda x: x[i], params)


def noise_study(config, runs: dict, proto: study.Protocol) -> dict:
    """Noise statistics at every checkpoint (init, each optimiser's middle and end), per seed, for
    minibatches of the training batch size and for single tasks; and the linear control."""
    key = trainer.heldout_key(config, trainer.HeldOut.EXTRA)  # tasks never trained on, the same at every checkpoint
    grad = oq.model_gradient(config)
    batch = config.train.batch_size
    samplers = {"minibatch": oq.gradient_sampler(grad, config.task.sample, proto.noise_batches, batch),
                "per_task": oq.gradient_sampler(grad, config.task.sample, proto.noise_tasks, 1, map_batch=250)}
    points = [("init", "adam", 0)] + [(f"{name}_{where}", name, s) for name in study.OPTIMIZERS
                                       for where, s in (("mid", middle(config)), ("end", config.train.steps))]
    out: dict = {"checkpoints": [], "batch_size": batch, "n_minibatches": proto.noise_batches, "n_tasks": proto.noise_tasks}
    for label, name, step in points:
        run = runs[name]
        row = {"checkpoint": label, "optimizer": name, "step": step}
        for j, (kind, sampler) in enumerate(samplers.items()):
            row[kind] = [measure_noise(sampler, pick(run["params"][step], i), jax.random.fold_in(key, j)) for i in range(len(run["seed"]))]
        row["heldout_loss"] = finite_or_none(run["loss"][:, run["steps"].index(step)])
        out["checkpoints"].append(row)
        m = row["minibatch"]
        print(f"  noise {label:>14}: minibatch kurtosis {np.mean([s['noise']['kurtosis'] for s in m]):9.1f} "
              f"(Gaussian {np.mean([s['gaussian']['kurtosis'] for s in m]):.2f}), Hill "
              f"{[round(s['noise']['hill_index'], 2) for s in m]} (Gaussian {np.mean([s['gaussian']['hill_index'] for s in m]):.2f}); "
              f"per task Hill {np.mean([s['noise']['hill_index'] for s in row['per_task']]):.2f}", flush=True)
    lin = oq.linear_control_gradient()
    theta = jnp.zeros(config.task.d)
    lin_samplers = {"minibatch": oq.gradient_sampler(lin, config.task.sample, proto.noise_batches, batch),
                    "per_task": oq.gradient_sampler(lin, config.task.sample, proto.noise_tasks, 1, map_batch=250)}
    out["linear_control"] = {kind: measure_noise(sampler, theta, jax.random.fold_in(key, j))
                             for j, (kind, sampler) in enumerate(lin_samplers.items())}
    c = out["linear_control"]["minibatch"]
    print(f"  noise linear control: kurtosis {c['noise']['kurtosis']:.2f} (Gaussian {c['gaussian']['kurtosis']:.2f}), "
          f"Hill {c['noise']['hill_index']:.2f} (Gaussian {c['gaussian']['hill_index']:.2f})", flush=True)
    return out


def summarise_noise(noise: dict) -> dict:
    """Seed statistics of each checkpoint's headline numbers."""
    out = {}
    for row in noise["checkpoints"]:
        out[row["checkpoint"]] = {
            f"{kind}_{ref}_{stat}": common.stats([s[ref][stat] for s in row[kind]])
            for kind in ("minibatch", "per_task") for ref in ("noise", "gaussian") for stat in ("kurtosis", "hill_index")
        }
    for kind in ("minibatch", "per_task"):
        c = noise["linear_control"][kind]
        out.setdefault("linear_control", {}).update({f"{kind}_{ref}_{stat}": c[ref][stat] for ref in ("noise", "gaussian")
                                                     for stat in ("kurtosis", "hill_index")})
    return out


def summarise_run(r: dict, lr: float) -> dict:
    """A comparison run's curves and per-seed final, best and second-half worst held-out loss (None:
    diverged)."""
    loss = np.where(np.isfinite(r["loss"]), r["loss"], np.inf)  # [S, E]
    half = loss.shape[1] // 2
    return {"lr": lr, "steps": r["steps"], "loss": [finite_or_none(c) for c in r["loss"]], "final_loss": finite_or_none(loss[:, -1]),
            "min_loss": finite_or_none(loss.min(1)), "max_loss_second_half": finite_or_none(loss[:, half:].max(1)), "wall_s": r["wall_s"]}


def speed(runs: dict, targets: dict, horizon: int, every: int) -> dict:
    """Steps to each target per optimiser and seed; the ratio of each SGD variant's and of the better
    one's (per seed) to Adam's."""
    out = {}
    for label, target in targets.items():
        steps = {name: [oq.steps_to_target(r["steps"], curve, target) for curve in r["loss"]] for name, r in runs.items()}
        best = [min((s for s in pair if s is not None), default=None) for pair in zip(steps["sgd"], steps["momentum"], strict=True)]
        out[label] = {"target": target, "steps": steps, "best_sgd_family": best,
                      **{f"ratio_{name}": oq.speedup(steps["adam"], s, horizon + every)
                         for name, s in (("sgd", steps["sgd"]), ("momentum", steps["momentum"]), ("best_sgd_family", best))}}
    return out


def verdict(speeds: dict, noise_summary: dict) -> tuple[str, dict]:
    """The rule in the comment above HEAVY_HILL; returns (verdict, the numbers it rests on)."""
    median = {}
    for label in ("0.1x_gd", "0.01x_gd"):
        ratios = [r for r in speeds[label]["ratio_best_sgd_family"]["ratio"] if r is not None]
        median[label] = float(np.median(ratios)) if ratios else None
    first = ("held" if (median["0.1x_gd"] or 0) >= SPEEDUP
             else "in part" if any((m or 0) > 1 for m in median.values()) else "not")
    trained = [k for k in noise_summary if k.endswith(("_mid", "_end"))]
    hill = {k: float(np.median(noise_summary[k]["minibatch_noise_hill_index"]["values"])) for k in trained}
    kurt = {k: noise_summary[k]["minibatch_noise_kurtosis"]["mean"] for k in trained}
    gauss_hill = min(noise_summary[k]["minibatch_gaussian_hill_index"]["min"] for k in trained)
    heavy = [k for k in trained if hill[k] < HEAVY_HILL and kurt[k] > HEAVY_KURTOSIS] if gauss_hill > HEAVY_HILL else []
    second = "held" if len(heavy) == len(trained) else "in part" if 2 * len(heavy) >= len(trained) else "not"
    parts = (first, second)
    overall = "held" if parts == ("held", "held") else "did not hold" if parts == ("not", "not") else "held in part"
    why = {"adam_faster": first, "heavy_tailed_noise": second, "median_ratio_best_sgd_over_adam": median,
           "heavy_checkpoints": heavy, "n_trained_checkpoints": len(trained), "seed_median_hill": hill, "seed_mean_kurtosis": kurt,
           "gaussian_reference_min_hill": gauss_hill,
           "thresholds": {"speedup": SPEEDUP, "hill_below": HEAVY_HILL, "kurtosis_above": HEAVY_KURTOSIS}}
    return overall, why


def draw(path, numbers, configs) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(19, 10))
    colors = {"adam": "C0", "sgd": "C3", "momentum": "C1"}
    refs = numbers["references"]

    ax = axes[0, 0]
    for key, ls in (("clipped", "-"), ("unclipped", "--")):
        for name, r in numbers["runs"][key].items():
            loss = np.array([[np.nan if v is None else v for v in row] for row in r["loss"]]).T  # [E, S]
            label = f"{LABELS[name]}, {'clip 1' if ls == '-' else 'no clip'} (lr {r['lr']:.3g})"
            if key == "clipped":
                common.band(ax, r["steps"], loss, label=label, color=colors[name])
            else:
                finite = np.isfinite(loss).any(1)  # a point where every seed has diverged is a gap
                mean = np.where(finite, np.nanmean(np.where(finite[:, None], loss, 0.0), 1), np.nan)
                ax.plot(r["steps"], mean, ls=ls, lw=1, color=colors[name], label=label)
    ax.axhline(refs["gd_loss"], color="k", ls="-.", lw=0.8, label=f"one GD step ({refs['gd_loss']:.3f})")
    for label, s in numbers["speed"]["clipped"].items():
        ax.axhline(s["target"], color="gray", ls=":", lw=0.8)
        ax.annotate(f"target {label}", (0, s["target"]), fontsize=7, color="gray", va="bottom")
    ax.set(yscale="log", xlabel="step", ylabel="held-out loss", title="held-out loss, each optimiser at its tuned lr\n"
           "(clipped: mean and min-max over seeds; unclipped, dashed: mean)")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    for name in study.OPTIMIZERS:
        for key, ls, tag in (("clipped", "-", "clip 1"), ("unclipped", "--", "no clip")):
            t = numbers["tuning"][key][name]
            top = 4 * refs["zero_loss"]  # worse than this (or non-finite): drawn as x at the top
            score = np.array([np.inf if v is None else v for v in t["score"]], float)
            ax.plot(t["lrs"], np.where(score < top, score, np.nan), ls=ls, marker="o", color=colors[name], label=f"{LABELS[name]}, {tag}")
            div = [lr for lr, v in zip(t["lrs"], score, strict=True) if not v < top]
            ax.scatter(div, np.full(len(div), top), marker="x", color=colors[name])
    ax.axhline(refs["zero_loss"], color="gray", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="lr", ylabel="mean held-out loss, last 10 % of the tuning run",
           title=f"lr grids ({numbers['setting']['tune_steps']} steps; x at the top: diverged or > 4 x the zero predictor;\n"
           "grey line: zero predictor)")
    ax.legend(fontsize=7)

    ax = axes[0, 2]
    speeds = numbers["speed"]["clipped"]
    labels = list(speeds)
    width = 0.25
    horizon = numbers["setting"]["steps"]
    for j, name in enumerate(study.OPTIMIZERS):
        for i, label in enumerate(labels):
            vals = speeds[label]["steps"][name]
            x = i + (j - 1) * width
            shown = [horizon * 1.15 if v is None else v for v in vals]
            ax.scatter(np.full(len(vals), x), shown, color=colors[name], marker="o",
                       label=LABELS[name] if i == 0 else None, zorder=3)
            for v, s in zip(vals, shown, strict=True):
                if v is None:
                    ax.scatter([x], [s], color=colors[name], marker="^", s=60, zorder=3)
    ax.axhline(horizon, color="gray", lw=0.6)

    def ratios(label):
        ratio = speeds[label]["ratio_best_sgd_family"]
        pairs = zip(ratio["ratio"], ratio["censored"], strict=True)
        return ", ".join("-" if r is None else (">" if c else "") + f"{r:.1f}" for r, c in pairs)

    ax.set_xticks(range(len(labels)), [f"{label} ({speeds[label]['target']:.3g})\nbest SGD / Adam:\n{ratios(label)}"
                                       for label in labels], fontsize=8)
    ax.set(yscale="log", ylabel="first step at or below the target",
           title="steps to a target, clipped runs (seeds; ^ = never, above the horizon)")
    ax.legend(fontsize=8)

    noise = numbers["noise"]
    ax = axes[1, 0]
    rows = {r["checkpoint"]: r for r in noise["checkpoints"]}
    for label, color in (("init", "k"), ("adam_mid", "C0"), ("adam_end", "C9"), ("momentum_end", "C1"), ("sgd_end", "C3")):
        s = rows[label]["minibatch"][0]
        ax.plot(s["survival"]["over_median"], s["survival"]["p"], color=color, label=f"{label} (seed 0)")
    g = rows["adam_end"]["minibatch"][0]["gaussian_survival"]
    ax.plot(g["over_median"], g["p"], color="C9", ls=":", label="Gaussian, same covariance as adam_end")
    c = noise["linear_control"]["minibatch"]
    ax.plot(c["survival"]["over_median"], c["survival"]["p"], color="C2", ls="--", label="linear control model")
    ax.set(xscale="log", yscale="log", xlabel="||g_b - g|| / median", ylabel="fraction of minibatches above",
           title=f"noise norm tails, minibatches of {noise['batch_size']} ({noise['n_minibatches']} per point)")
    ax.legend(fontsize=7)

    for ax, stat, title in ((axes[1, 1], "hill_index", "Hill tail index of the noise norms (top 5 %)"),
                            (axes[1, 2], "kurtosis", "kurtosis of the noise norms")):
        names = [r["checkpoint"] for r in noise["checkpoints"]] + ["linear_control"]
        for j, (kind, ref, marker, color) in enumerate((("minibatch", "noise", "o", "C0"), ("minibatch", "gaussian", "s", "gray"),
                                                        ("per_task", "noise", "^", "C3"), ("per_task", "gaussian", "v", "silver"))):
            for i, n in enumerate(names):
                vals = [noise["linear_control"][kind][ref][stat]] if n == "linear_control" else [s[ref][stat] for s in rows[n][kind]]
                ax.scatter(np.full(len(vals), i + (j - 1.5) * 0.15), vals, marker=marker, color=color,
                           label=f"{kind.replace('_', ' ')}: {'gradient noise' if ref == 'noise' else 'Gaussian, same covariance'}"
                           if i == 0 else None, zorder=3)
        if stat == "hill_index":
            ax.axhline(HEAVY_HILL, color="k", ls=":", lw=0.8, label=f"heavy-tail threshold {HEAVY_HILL:g}")
        else:
            ax.axhline(3.0, color="k", ls=":", lw=0.8, label="Gaussian scalar: 3")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set(yscale="log", title=title + " (seeds)")
        ax.legend(fontsize=7)

    cfg = configs["adam"].train
    common.save(fig, path, f"Claim 8 (optimiser quirks): 3-layer linear LSA, d = {study.D}, N = {study.N_CTX}; "
                f"{cfg.n_seeds} seeds x {cfg.steps} steps of batch {cfg.batch_size}; verdict: {numbers['verdict']}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    mode = "quick" if args.quick else "full"
    proto = study.PROTOCOL[mode]
    configs = study.configs(mode, args.steps, args.batch_size)
    config = configs["sgd"]  # the setting every optimiser runs in (the configs differ only in optim)
    cfg = config.train
    seeds = trainer.seeds_of(config)
    print(f"{NAME}: {common.mode(args)}, {len(seeds)} seeds x {cfg.steps} steps of batch {cfg.batch_size}", flush=True)

    eval_batch = config.task.sample(trainer.heldout_key(config, trainer.HeldOut.EVAL), cfg.eval_tasks)  # train_runs' eval set
    gd, gd_hparams = compare.solver_predictor("gd", config.task, trainer.heldout_key(config, trainer.HeldOut.GD_LR))
    gd_loss = float(compare.loss(gd(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query), eval_batch.y_query))
    zero_loss = float(compare.loss(jnp.zeros_like(eval_batch.y_query), eval_batch.y_query))
    targets = {f"{f:g}x_gd": f * gd_loss for f in study.TARGET_FACTORS}
    numbers: dict = {"references": {"gd_loss": gd_loss, "gd_eta": float(gd_hparams["lr"]), "zero_loss": zero_loss,
                                    "least_squares_loss": 0.0, "n_tasks": cfg.eval_tasks},
                     "setting": {"steps": cfg.steps, "batch_size": cfg.batch_size, "seeds": seeds, "eval_every": cfg.eval_every,
                                 "tune_steps": study.tune_steps(config), "tune_seeds": list(proto.tune_seeds), "clip": study.CLIP,
                                 "momentum": oq.MOMENTUM, "tail_fraction": oq.TAIL_FRACTION}}
    print(f"  one GD step {gd_loss:.4f} (eta {numbers['references']['gd_eta']:.3f}), zero predictor {zero_loss:.4f}", flush=True)
    train_wall = 0.0

    numbers["tuning"] = {"clipped": {}, "unclipped": {}}
    for key, clip in (("clipped", study.CLIP), ("unclipped", 0.0)):
        tune_seeds = proto.tune_seeds if clip else proto.tune_seeds[:1]
        for name in study.OPTIMIZERS:
            t = tune(config, name, study.grid(name, mode, bool(clip)), tune_seeds, study.tune_steps(config), clip)
            numbers["tuning"][key][name] = t
            train_wall += t["wall_s"]
            print(f"  tune {key:>9} {name:>8}: best lr {t['best_lr']:.3g}{' (grid edge)' if t['at_edge'] else ''}; "
                  f"score {[None if s is None else round(s, 4) for s in t['score']]}", flush=True)

    runs: dict = {}
    for key, clip in (("clipped", study.CLIP), ("unclipped", 0.0)):
        runs[key], numbers.setdefault("runs", {})[key] = {}, {}
        for name in study.OPTIMIZERS:
            lr = numbers["tuning"][key][name]["best_lr"]
            r = runs[key][name] = oq.train_runs(config, name, [lr], seeds, cfg.steps, cfg.eval_every, eval_tasks=cfg.eval_tasks,
                                                keep=(0, middle(config), cfg.steps) if clip else (), clip=clip)
            train_wall += r["wall_s"]
            numbers["runs"][key][name] = summarise_run(r, lr)
            print(f"  {key:>9} {name:>8} lr {lr:.3g}: final held-out loss {numbers['runs'][key][name]['final_loss']}; "
                  f"max in the second half {numbers['runs'][key][name]['max_loss_second_half']} ({r['wall_s']:.0f} s)", flush=True)
            if clip and name in configs and not np.isclose(lr, configs[name].optim.lr, rtol=1e-6):
                print(f"  note: tuned lr {lr:.4g} differs from the registered {configs[name].optim.lr:.4g} (the full record's winner)")
        numbers.setdefault("speed", {})[key] = speed(runs[key], targets, cfg.steps, cfg.eval_every)
        for label, sp in numbers["speed"][key].items():
            print(f"  {key} target {label} ({sp['target']:.4f}): steps {sp['steps']}; best SGD / Adam {sp['ratio_best_sgd_family']}",
                  flush=True)
    runs = runs["clipped"]  # the comparison; the noise is measured along its runs

    noise = numbers["noise"] = noise_study(config, runs, proto)
    numbers["noise_summary"] = summarise_noise(noise)
    numbers["verdict"], numbers["verdict_reasons"] = verdict(numbers["speed"]["clipped"], numbers["noise_summary"])
    print(f"  verdict: {numbers['verdict']} {numbers['verdict_reasons']}", flush=True)
    args.train_wall_s = train_wall
    png, _ = common.figure_paths(args, NAME)
    draw(png, numbers, configs)
    ran = [dataclasses.replace(c, optim=dataclasses.replace(c.optim, lr=numbers["tuning"]["clipped"][name]["best_lr"]))
           for name, c in configs.items()]  # the configs at the lrs this invocation tuned and ran
    path = common.write_numbers(args, NAME, numbers, ran, PUBLISHED, verdict=numbers["verdict"])
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
