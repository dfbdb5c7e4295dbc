"""Figure 2 (von Oswald et al. 2023, Figs. 3-4): K-layer LSA transformers vs K steps of GD and GD++.

For K = 1..5 linear-attention layers, with separate weights per layer and with one shared layer
(model.shared=True), trained on the paper's task (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I),
no noise, batch 2048, Adam b2 0.98, init 0.002, 5 seeds), against
  * K steps of GD with its lr tuned for K steps: a fine grid then golden section on the jitted
    held-out loss (tasks from a key used by neither training nor the evaluation);
  * K steps of GD++ (solvers.gd_plus_plus) with lr and gamma fitted: a 2-d grid then Nelder-Mead;
all evaluated on the held-out tasks of the final table (10,000). Shown: loss vs K, model_cos
(sensitivities d y_hat / d x_q) with GD and with GD++ vs K, and the read-out after every layer of
the deepest models (compare.layer_predictors) vs GD / GD++ after as many steps.

Deep unshared stacks are unstable (docs/math.md): as the official code, K > 3 uses lr 5e-4 and clips
activations to 10 (model.clip_activations). A run whose loss turns non-finite stops with
train.TrainingDiverged: it is reported (step, message) and evaluated at its last good checkpoint.

    python paper_figures/fig2_depth.py               # full: 10 runs x 5 seeds x 5,000 steps (~2 h, 2-core CPU)
    python paper_figures/fig2_depth.py --steps 1500 --batch-size 512  # the intermediate setting committed here
    python paper_figures/fig2_depth.py --quick       # K = 1, 2, 4; 500 steps of batch 256, 2 seeds (~3 min)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import common
import experiments
from icl import compare, solvers, train
from icl.config import ExperimentConfig, TrainConfig

NAME = "fig2_depth"
BASE = experiments.get("paper_1layer")
DEPTHS = (1, 2, 3, 4, 5)
QUICK_DEPTHS = (1, 2, 4)
PLATEAU_LOSS = 0.35  # a seed whose final loss is above this is still on the initial plateau (~0.39)
PUBLISHED = {
    "source": "von Oswald et al. 2023, Figs. 3 and 4 (curves; no table). docs/math.md has no official-code "
    "numbers for K > 1 except the pitfall: L = 4 trained to 0.37 vs 4-step GD 0.95 with U(-1, 1) inputs.",
    "claim_loss": "a trained K-layer LSA outperforms K steps of plain GD and matches K steps of GD++ "
    "(recurrent / shared: close to GD++ as well)",
    "claim_cos": "model cosine with GD++ stays high (~1) with depth, while cosine with plain GD decreases",
    "claim_layers": "the read-out after layer l of a trained deep model follows GD++ step l",
}


def depth_config(n_layers: int, shared: bool, quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """K layers, separate or shared weights; K > 3 uses the official lr 5e-4 and activation clip 10."""
    deep = n_layers > 3
    model = dataclasses.replace(BASE.model, n_layers=n_layers, shared=shared, clip_activations=10.0 if deep else 0.0)
    optim = dataclasses.replace(BASE.optim, lr=5e-4 if deep else 1e-3)
    if quick:
        train_cfg = TrainConfig(steps=500, batch_size=256, n_seeds=2, eval_every=50, ckpt_every=500,
                                eval_tasks=512, final_eval_tasks=2000)
    else:
        train_cfg = TrainConfig(steps=steps or 5000, batch_size=batch_size or 2048, n_seeds=5, eval_every=100, ckpt_every=500,
                                eval_tasks=2048, final_eval_tasks=10000)
    name = f"fig2_L{n_layers}_{'shared' if shared else 'sep'}"
    return dataclasses.replace(BASE, name=name, model=model, optim=optim, train=train_cfg)


def train_or_last_good(config: ExperimentConfig, args) -> tuple[dict, dict, str | None]:
    """(summary or {}, params, divergence message or None): a diverged run is evaluated at its last
    good checkpoint."""
    try:
        summary, params = common.run(config, args)
        return summary, params, None
    except train.TrainingDiverged as error:
        print(f"  {config.name}: {error}", flush=True)
        _, params, step = train.load_params(args.out / "runs" / config.name, config)
        return {"diverged_at_checkpoint": step}, params, str(error)


# -- tuning the explicit learners --------------------------------------------------------------
def _finite(x):
    return jnp.where(jnp.isfinite(x), x, jnp.inf)


def minimise_1d(f, lo: float, hi: float, n_grid: int = 201, iters: int = 40) -> float:
    """argmin of a jitted scalar f on [lo, hi]: a vmapped grid, then golden section around its best."""
    grid = jnp.linspace(lo, hi, n_grid)
    values = np.asarray(jax.vmap(f)(grid))
    i = int(np.nanargmin(values))
    a, b = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, n_grid - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = float(f(c)), float(f(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = float(f(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = float(f(d))
    return (a + b) / 2


def tune_gd(batch, steps: int, lr_max: float) -> float:
    """The lr of `steps`-step GD minimising the loss on `batch` (passed to jit as an argument, not
    closed over: XLA would constant-fold the whole computation)."""
    loss = jax.jit(lambda lr, b: _finite(compare.loss(solvers.gd(b.x_ctx, b.y_ctx, b.x_query, lr=lr, steps=steps), b.y_query)))
    return minimise_1d(lambda lr: loss(lr, batch), 0.0, lr_max)


def tune_gd_plus_plus(batch, steps: int, lr_max: float) -> tuple[float, float]:
    """(lr, gamma) of `steps`-step GD++: a 41 x 41 grid, then Nelder-Mead from its best point."""
    from scipy.optimize import minimize  # noqa: PLC0415

    def loss(lr, gamma, b):
        y_hat = solvers.gd_plus_plus(b.x_ctx, b.y_ctx, b.x_query, lr=lr, gamma=gamma, steps=steps)
        return _finite(compare.loss(y_hat, b.y_query))

    jitted = jax.jit(loss)
    f = lambda lr, gamma: jitted(lr, gamma, batch)  # noqa: E731
    lrs, gammas = np.linspace(0.0, lr_max, 41), np.linspace(-0.1, 0.7, 41)
    small = jax.tree.map(lambda x: x[:2000], batch)  # the grid on 2,000 tasks (memory), the fit on all
    row = jax.vmap(loss, (None, 0, None))  # one lr, every gamma
    grid_fn = jax.jit(lambda ls, gs, b: jax.lax.map(lambda lr: row(lr, gs, b), ls))
    grid = np.asarray(grid_fn(jnp.asarray(lrs), jnp.asarray(gammas), small))
    i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
    if steps == 1:  # gamma only acts from the second step on
        return minimise_1d(lambda lr: f(lr, 0.0), 0.0, lr_max), 0.0
    result = minimize(lambda p: float(f(p[0], p[1])), x0=[lrs[i], gammas[j]], method="Nelder-Mead",
                      options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 400,
                               "initial_simplex": [[lrs[i], gammas[j]], [lrs[i] + 0.1, gammas[j]], [lrs[i], gammas[j] + 0.02]]})
    return float(result.x[0]), float(result.x[1])


# -- comparisons -------------------------------------------------------------------------------
def compare_runs(config: ExperimentConfig, params: dict, batch, gd_hp: dict, gdpp_hp: dict) -> dict:
    """Per seed: the model vs K-step GD and vs K-step GD++; and per layer l of the model vs l steps
    of each (with the K-step hyper-parameters)."""
    spec = train.model_spec(config)
    k = config.model.n_layers

    def one(p, b):
        model = spec.model(p)
        out = {}
        for l, layer_predict in enumerate(compare.layer_predictors(model)):
            gd = lambda xc, yc, xq, s=l + 1: solvers.gd(xc, yc, xq, steps=s, **gd_hp)  # noqa: E731
            gdpp = lambda xc, yc, xq, s=l + 1: solvers.gd_plus_plus(xc, yc, xq, steps=s, **gdpp_hp)  # noqa: E731
            out[l] = {"gd": compare.compare(layer_predict, gd, b), "gd_plus_plus": compare.compare(layer_predict, gdpp, b)}
        return out

    raw = jax.device_get(jax.jit(jax.vmap(one, in_axes=(0, None)))(params, batch))
    layers = []
    for l in range(k):
        row = {"loss": raw[l]["gd"]["loss"].tolist(), "gd_loss": float(raw[l]["gd"]["loss_other"][0]),
               "gd_plus_plus_loss": float(raw[l]["gd_plus_plus"]["loss_other"][0])}
        for name in ("gd", "gd_plus_plus"):
            for metric in ("model_cos", "model_diff", "preds_diff"):
                row[f"{metric}_{name}"] = raw[l][name][metric].tolist()
        layers.append(row)
    return {"final": layers[-1], "layers": layers}


def draw(path, results, depths, solver_rows, ls_loss, title):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(25, 4.6))
    ks = np.array(depths)
    styles = {"sep": ("C0", "o", "trained, separate layers"), "shared": ("C1", "s", "trained, shared layer")}
    ax = axes[0]
    for kind, (color, marker, label) in styles.items():
        values = [results[kind][k]["final"]["loss"] for k in depths]
        common.band(ax, ks, values, label, color=color, marker=marker)
        for k, r in zip(depths, (results[kind][k] for k in depths)):
            if r["diverged"]:
                ax.annotate("diverged", (k, np.mean(r["final"]["loss"])), color=color, fontsize=7)
    ax.plot(ks, [solver_rows[k]["gd_loss"] for k in depths], "k--", marker="x", label="K steps GD (lr tuned for K)")
    ax.plot(ks, [solver_rows[k]["gd_plus_plus_loss"] for k in depths], "g-.", marker="+", label="K steps GD++ (lr, gamma fitted)")
    shown = [np.min(results[kind][k]["final"]["loss"]) for kind in results for k in depths]
    shown += [solver_rows[k][key] for k in depths for key in ("gd_loss", "gd_plus_plus_loss")]
    ax.plot([], [], " ", label=f"(least squares: {ls_loss:.1e})")
    ax.set(xlabel="K (layers / steps)", ylabel="held-out loss", yscale="log", title="loss vs depth", xticks=ks,
           ylim=(0.7 * min(shown), 1.4 * max(shown)))
    ax.legend(fontsize=7)
    ax = axes[1]
    for kind, (color, marker, label) in styles.items():
        for solver, ls in (("gd", "--"), ("gd_plus_plus", "-")):
            values = [results[kind][k]["final"][f"model_cos_{solver}"] for k in depths]
            common.band(ax, ks, values, f"{label.split(', ')[1]} vs {'GD' if solver == 'gd' else 'GD++'}",
                        color=color, marker=marker, ls=ls)
    ax.set(xlabel="K", ylabel="model_cos", title="cosine of sensitivities with GD / GD++", xticks=ks)
    ax.legend(fontsize=7)
    kmax = depths[-1]
    layers = np.arange(1, kmax + 1)
    for ax, metric, ylabel in ((axes[2], "loss", "loss after layer l / step l"), (axes[3], "model_cos", "model_cos per layer")):
        for kind, (color, marker, label) in styles.items():
            rows = results[kind][kmax]["layers"]
            if metric == "loss":
                common.band(ax, layers, [r["loss"] for r in rows], label, color=color, marker=marker)
            else:
                common.band(ax, layers, [r["model_cos_gd"] for r in rows], f"{label.split(', ')[1]} vs GD", color=color, marker=marker, ls="--")
                common.band(ax, layers, [r["model_cos_gd_plus_plus"] for r in rows], f"{label.split(', ')[1]} vs GD++", color=color, marker=marker)
        if metric == "loss":
            rows = results["sep"][kmax]["layers"]
            ax.plot(layers, [r["gd_loss"] for r in rows], "k--", marker="x", label=f"GD step l (lr tuned for {kmax})")
            ax.plot(layers, [r["gd_plus_plus_loss"] for r in rows], "g-.", marker="+", label=f"GD++ step l (fitted for {kmax})")
            ax.set(yscale="log")
        ax.set(xlabel=f"layer l of the {kmax}-layer models", ylabel=ylabel, title=f"per layer, K = {kmax}", xticks=layers)
        ax.legend(fontsize=7)
    ax = axes[4]
    for kind, (color, marker, label) in styles.items():
        for k in depths:
            log = results[kind][k]["log"]
            steps = [r["step"] for r in log]
            ax.plot(steps, np.mean([r["loss"] for r in log], axis=1), color=color,
                    alpha=0.35 + 0.65 * k / kmax, lw=1, label=f"{kind} K={k}" if k in (depths[0], kmax) else None)
    ax.set(xlabel="training step", ylabel="held-out loss (mean over seeds)", yscale="log", title="training curves")
    ax.legend(fontsize=7)
    common.save(fig, path, title)


def main() -> None:
    from icl import plots  # noqa: PLC0415

    args = common.parse_args(__doc__.splitlines()[0])
    depths = QUICK_DEPTHS if args.quick else DEPTHS
    configs = {(k, s): depth_config(k, s, args.quick, args.steps, args.batch_size) for k in depths for s in (False, True)}
    first = configs[(depths[0], False)]
    print(f"{NAME}: {common.mode(args)}, K = {depths}, {first.train.n_seeds} seeds, {first.train.steps} steps", flush=True)
    task = first.task
    eval_batch = task.sample(train.heldout_key(first, 1), first.train.final_eval_tasks)
    tune_batch = task.sample(jax.random.fold_in(jax.random.key(first.train.eval_seed), 4), first.train.final_eval_tasks)
    eta1 = solvers.optimal_gd_lr(task, train.heldout_key(first, 2))

    solver_rows = {}
    for k in depths:
        lr = tune_gd(tune_batch, k, 1.6 * eta1)
        lr_pp, gamma = tune_gd_plus_plus(tune_batch, k, 1.6 * eta1)
        gd_loss = float(compare.loss(solvers.gd(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query, lr=lr, steps=k), eval_batch.y_query))
        pp_loss = float(compare.loss(solvers.gd_plus_plus(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query, lr=lr_pp, gamma=gamma, steps=k), eval_batch.y_query))
        solver_rows[k] = {"gd_lr": lr, "gd_loss": gd_loss, "gd_plus_plus_lr": lr_pp, "gd_plus_plus_gamma": gamma, "gd_plus_plus_loss": pp_loss}
        print(f"  K={k}: GD lr {lr:.3f} loss {gd_loss:.4f};  GD++ lr {lr_pp:.3f} gamma {gamma:.4f} loss {pp_loss:.4f}", flush=True)
    ls_loss = float(compare.loss(solvers.least_squares(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query), eval_batch.y_query))

    results = {"sep": {}, "shared": {}}
    for (k, shared), config in configs.items():
        summary, params, diverged = train_or_last_good(config, args)
        row = solver_rows[k]
        cmp = compare_runs(config, params, eval_batch, {"lr": row["gd_lr"]},
                           {"lr": row["gd_plus_plus_lr"], "gamma": row["gd_plus_plus_gamma"]})
        log = plots.read_log(args.out / "runs" / config.name)
        results["shared" if shared else "sep"][k] = {
            **cmp, "diverged": diverged, "log": log,
            "train_steps_per_s": summary.get("train_steps_per_s"), "train_wall_s": summary.get("wall_s"),
        }
        f = cmp["final"]
        print(f"  {config.name}: loss {np.mean(f['loss']):.4f} (GD {f['gd_loss']:.4f}, GD++ {f['gd_plus_plus_loss']:.4f}); "
              f"cos GD {np.mean(f['model_cos_gd']):.4f}, GD++ {np.mean(f['model_cos_gd_plus_plus']):.4f}"
              + ("  [diverged]" if diverged else ""), flush=True)

    png, _ = common.figure_paths(args, NAME)
    cfg = first.train
    draw(png, results, depths, solver_rows, ls_loss,
         f"K-layer LSA vs K steps of GD / GD++ (paper Figs. 3-4): {cfg.n_seeds} seeds (mean, min-max band), "
         f"{cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")

    def summarise(r):
        out = {key: common.stats(r["final"][key]) for key in r["final"] if isinstance(r["final"][key], list)}
        out.update({key: r["final"][key] for key in ("gd_loss", "gd_plus_plus_loss")})
        per_layer = [{key: (common.stats(v) if isinstance(v, list) else v) for key, v in row.items()} for row in r["layers"]]
        loss = np.asarray(r["final"]["loss"])
        off = loss < PLATEAU_LOSS  # seeds that left the initial loss plateau (~0.39 here)
        off_plateau = {"seeds": np.flatnonzero(off).tolist(), "median_loss": float(np.median(loss))}
        if off.any():
            off_plateau.update({key: float(np.mean(np.asarray(r["final"][key])[off]))
                                for key in ("loss", "model_cos_gd", "model_cos_gd_plus_plus")})
        return {"final": out, "per_layer": per_layer, "diverged": r["diverged"], "off_plateau": off_plateau,
                "train_steps_per_s": r["train_steps_per_s"], "train_wall_s": r["train_wall_s"],
                "final_log_step": r["log"][-1]["step"] if r["log"] else 0}

    numbers = {
        "depths": list(depths), "n_tasks": cfg.final_eval_tasks, "eta_one_step": eta1,
        "least_squares_loss": ls_loss, "solvers": {str(k): v for k, v in solver_rows.items()},
        "trained": {kind: {str(k): summarise(r) for k, r in results[kind].items()} for kind in results},
        "seeds": train.seeds_of(first), "steps": cfg.steps,
        "tuning": "GD lr: 201-point grid on [0, 1.6 eta_1] then golden section; GD++: 41 x 41 grid on 2,000 "
        "tasks (lr in [0, 1.6 eta_1], gamma in [-0.1, 0.7]) then Nelder-Mead on all; on held-out tuning tasks "
        "(fold_in(key(eval_seed), 4)), evaluated on the final-table tasks (heldout_key 1)",
    }
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
