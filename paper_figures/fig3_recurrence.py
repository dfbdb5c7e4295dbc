"""Figure 3: a trained shared (looped) LSA layer run for more steps than it was trained for, with
damping, vs gradient descent with more steps (von Oswald et al. 2023, Sec. 4, recurrent transformers).

The shared-weight K-layer models of fig2_depth (same configs, so the same run directories: a run
finished by fig2_depth is reused, else it is trained here) are applied for K' = 1..K'_max layers
(`model.layer_predictions(..., n_layers=K')`). Damping multiplies the layer's `out` weights by
lambda, which scales every residual update by exactly lambda (the update is linear in W_O).
lambda = 1 is the trained model; lambda* is fitted per seed (grid, then golden section) to the loss
after K'_max layers on held-out tuning tasks. Against: GD for K' steps with the lr tuned for K_train
steps (the same step repeated), GD with the lr re-tuned for each K' (the best GD can do), and GD++
with the (lr, gamma) fitted for K_train steps, repeated. All on the 10,000 final-table tasks.

    python paper_figures/fig3_recurrence.py               # full: reuses fig2's shared runs (K = 2, 3, 5)
    python paper_figures/fig3_recurrence.py --steps 1500 --batch-size 512  # the intermediate setting committed here
    python paper_figures/fig3_recurrence.py --quick       # K = 2, 4 of fig2 --quick, K' <= 12 (~1 min)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import common
import fig2_depth
from icl import compare, solvers, train

NAME = "fig3_recurrence"
PUBLISHED = {
    "source": "von Oswald et al. 2023, Sec. 4 (recurrent transformers, Figs. 3-4 curves); docs/math.md gives no "
    "reference numbers for this experiment",
    "claim": "a looped (shared) trained layer keeps implementing an iterative (GD++-like) learner when run "
    "for more steps; with a damped update it keeps improving like GD with more steps",
}


def scale_out(params: dict, lam) -> dict:
    """The parameters with every layer's `out` weights times lam: each residual update times lam."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x * lam if getattr(path[-1], "key", None) == "out" else x, params)


def layer_loss_fn(config, n_layers: int):
    """jitted (params [one seed], lam, batch) -> loss after each of n_layers applications: [n_layers]."""
    spec = train.model_spec(config)

    def losses(p, lam, b):
        preds = spec.model(scale_out(p, lam)).layer_predictions(b.x_ctx, b.y_ctx, b.x_query, n_layers=n_layers)
        return 0.5 * jnp.mean((preds - b.y_query[None]) ** 2, axis=(1, 2))

    return jax.jit(losses)


@jax.jit
def _gd_losses(batch, lr, k_max_marker):
    """Loss after each of K' = 1..len(k_max_marker) GD steps at rate lr: chained
    solvers.gd_weights(steps=1, w0=w), one compilation for the whole curve."""
    def step(w, _):
        w = solvers.gd_weights(batch.x_ctx, batch.y_ctx, lr, steps=1, w0=w)  # [B, d]
        y_hat = jnp.einsum("bmd,bd->bm", batch.x_query, w)
        return w, compare.loss(y_hat, batch.y_query)

    w0 = jnp.zeros(batch.x_ctx.shape[::2], batch.x_ctx.dtype)  # [B, d]
    return jax.lax.scan(step, w0, k_max_marker)[1]


def gd_curve(batch, lr: float, k_max: int, gamma: float | None = None) -> list[float]:
    """Loss after K' = 1..k_max steps of GD at rate lr, or of GD++ with (lr, gamma)."""
    if gamma is None:
        return np.asarray(_gd_losses(batch, lr, jnp.zeros(k_max))).tolist()
    return [float(compare.loss(solvers.gd_plus_plus(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, gamma=gamma, steps=k),
                               batch.y_query)) for k in range(1, k_max + 1)]


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    k_trains = (2, 4) if args.quick else (2, 3, 5)
    k_max = 12 if args.quick else 20
    configs = {k: fig2_depth.depth_config(k, True, args.quick, args.steps, args.batch_size) for k in k_trains}
    first = configs[k_trains[0]]
    print(f"{NAME}: {common.mode(args)}, K_train = {k_trains}, K' <= {k_max}, {first.train.n_seeds} seeds, "
          f"{first.train.steps} steps", flush=True)
    task = first.task
    eval_batch = task.sample(train.heldout_key(first, 1), first.train.final_eval_tasks)
    tune_batch = task.sample(jax.random.fold_in(jax.random.key(first.train.eval_seed), 4), first.train.final_eval_tasks)
    tune_small = jax.tree.map(lambda x: x[:2000], tune_batch)
    eta1 = solvers.optimal_gd_lr(task, train.heldout_key(first, 2))
    ks = list(range(1, k_max + 1))

    best_ks = [k for k in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20) if k <= k_max]  # each K' compiles: a subset
    lr_per_k = [fig2_depth.tune_gd(tune_batch, k, 1.6 * eta1) for k in best_ks]
    gd_best = [gd_curve(eval_batch, lr, k)[-1] for k, lr in zip(best_ks, lr_per_k)]
    ls_loss = float(compare.loss(solvers.least_squares(eval_batch.x_ctx, eval_batch.y_ctx, eval_batch.x_query), eval_batch.y_query))
    print(f"  GD, lr re-tuned per K': K'=1 {gd_best[0]:.4f}, K'={k_max} {gd_best[-1]:.4f}; least squares {ls_loss:.2e}", flush=True)

    results = {}
    for k, config in configs.items():
        summary, params, diverged = fig2_depth.train_or_last_good(config, args)
        f = layer_loss_fn(config, k_max)
        seeds = train.seeds_of(config)
        lams = []
        for i in range(len(seeds)):
            p = jax.tree.map(lambda x, i=i: x[i], params)
            lams.append(fig2_depth.minimise_1d(lambda lam, p=p: f(p, lam, tune_small)[-1], 0.0, 1.5, n_grid=31))
        lams = np.array(lams)
        per_seed = jax.vmap(f, in_axes=(0, 0, None))
        undamped = np.asarray(per_seed(params, jnp.ones(len(seeds)), eval_batch)).T  # [K', S]
        damped = np.asarray(per_seed(params, jnp.asarray(lams), eval_batch)).T
        lam_grid = np.linspace(0.0, 1.5, 31)
        lam_curve = np.asarray(jax.vmap(lambda p: jax.vmap(lambda lam: f(p, lam, eval_batch)[-1])(jnp.asarray(lam_grid)))(params)).T  # [31, S]
        row = fig2_depth.tune_gd(tune_batch, k, 1.6 * eta1)
        lr_pp, gamma = fig2_depth.tune_gd_plus_plus(tune_batch, k, 1.6 * eta1)
        results[k] = {
            "undamped": undamped, "damped": damped, "lambda": lams, "lam_grid": lam_grid, "lam_curve": lam_curve,
            "gd_fixed_lr": row, "gd_fixed": gd_curve(eval_batch, row, k_max),
            "gd_plus_plus_lr": lr_pp, "gd_plus_plus_gamma": gamma, "gd_plus_plus": gd_curve(eval_batch, lr_pp, k_max, gamma),
            "diverged": diverged,
        }
        r = results[k]
        print(f"  K_train={k}: at K'={k} loss {undamped[k - 1].mean():.4f}; at K'={k_max}: undamped {undamped[-1].mean():.3g}, "
              f"damped (lambda {lams.mean():.3f}) {damped[-1].mean():.4f}; GD fixed lr {r['gd_fixed'][-1]:.4f}, "
              f"GD++ {r['gd_plus_plus'][-1]:.4f}, GD best {gd_best[-1]:.4f}", flush=True)

    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(k_trains) + 1, figsize=(6 * (len(k_trains) + 1), 4.6))
    for ax, (k, r) in zip(axes, results.items()):
        common.band(ax, ks, r["undamped"], "trained shared layer, lambda = 1", color="C0", marker="o", ms=3)
        common.band(ax, ks, r["damped"], f"damped, lambda* = {r['lambda'].mean():.2f} (fitted at K' = {k_max})", color="C1", marker="s", ms=3)
        ax.plot(ks, r["gd_fixed"], "k--", label=f"GD, lr {r['gd_fixed_lr']:.2f} (tuned for {k} steps)")
        ax.plot(ks, r["gd_plus_plus"], "g-.", label=f"GD++, fitted for {k} steps")
        ax.plot(best_ks, gd_best, "k:", marker=".", label="GD, lr re-tuned for each K'")
        ax.axvline(k, color="gray", lw=0.5)
        ax.set(xlabel="K' (layer applications / steps)", ylabel="held-out loss", yscale="log",
               title=f"shared layer trained for K = {k}" + (" [diverged]" if r["diverged"] else ""))
        low = np.nanmin(np.concatenate([r["damped"].ravel(), r["undamped"].ravel(), r["gd_plus_plus"], gd_best]))
        ax.set_ylim(0.5 * low, 1.0)
        ax.legend(fontsize=7)
    ax = axes[-1]
    for j, (k, r) in enumerate(results.items()):
        common.band(ax, r["lam_grid"], r["lam_curve"], f"K_train = {k}", color=f"C{j}")
    ax.set(xlabel="damping lambda (out weights x lambda)", ylabel=f"loss after K' = {k_max} applications", yscale="log",
           title="damping", ylim=(None, 10))
    ax.legend(fontsize=7)
    cfg = first.train
    png, _ = common.figure_paths(args, NAME)
    common.save(fig, png, f"Looping a trained shared layer beyond its training depth (paper Sec. 4): {cfg.n_seeds} seeds, "
                f"{cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")

    numbers = {
        "k_prime": ks, "n_tasks": cfg.final_eval_tasks, "least_squares_loss": ls_loss,
        "gd_best_k_prime": best_ks, "gd_lr_per_k_prime": lr_per_k, "gd_best_per_k_prime": gd_best,
        "trained": {str(k): {
            "undamped": common.stats(r["undamped"]), "damped": common.stats(r["damped"]),
            "lambda_star": common.stats(r["lambda"]), "loss_vs_lambda": {"lambda": r["lam_grid"].tolist(), **common.stats(r["lam_curve"])},
            "gd_fixed_lr": r["gd_fixed_lr"], "gd_fixed": r["gd_fixed"], "gd_plus_plus_lr": r["gd_plus_plus_lr"],
            "gd_plus_plus_gamma": r["gd_plus_plus_gamma"], "gd_plus_plus": r["gd_plus_plus"], "diverged": r["diverged"],
        } for k, r in results.items()},
        "seeds": train.seeds_of(first), "steps": cfg.steps,
        "method": "lambda* per seed: 31-point grid on [0, 1.5] then golden section, loss after K'_max layers on 2,000 "
        "held-out tuning tasks; curves on the final-table tasks",
    }
    path = common.write_numbers(args, NAME, numbers, list(configs.values()), PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
