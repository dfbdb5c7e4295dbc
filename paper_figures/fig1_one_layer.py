"""Figure 1 (von Oswald et al. 2023, Fig. 2): one trained LSA layer vs one step of gradient descent.

Trains the paper's one-layer LSA (experiments.paper_1layer: d = N = 10, x ~ U(-0.5, 0.5)^10,
w ~ N(0, I), no noise, batch 2048, Adam 1e-3) for 5 seeds and shows, over training,
  * the held-out loss of the trained model, of one GD step at the optimal eta
    (solvers.optimal_gd_lr, closed form) and of the interpolated model (compare.interpolate, halfway
    between the trained model and constructions.gd_model in (W_K^T W_Q, P W_V) product space);
  * model_cos / model_diff / preds_diff between the trained model and GD;
and, for the trained models, the out-of-distribution loss when test inputs are scaled by
alpha in [0.5, 2] (compare.sweep over compare.input_scale_variants), model vs GD vs interpolated.

The interpolated model over training needs the parameters at intermediate steps: the run is
trained in pieces (train.train(..., until_step=s)), and the pieces' results are kept in
<run>/fig1_pieces.json so a rerun reuses them.

    python paper_figures/fig1_one_layer.py            # full: 5,000 steps, 5 seeds (~6 min, 2-core CPU)
    python paper_figures/fig1_one_layer.py --quick    # 1,000 steps of batch 512, 2 seeds (~1 min)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import common
import experiments
from icl import compare, constructions, solvers, train
from icl.config import ExperimentConfig, TrainConfig

NAME = "fig1_one_layer"
ALPHAS = np.linspace(0.5, 2.0, 7)  # input scale of the out-of-distribution sweep
PUBLISHED = {
    "source": "docs/math.md reference numbers: the official code on a 2-core CPU, 5,000 steps, 1 seed, "
    "10,000 held-out tasks (the setup of the paper's Fig. 2)",
    "zero_loss": 0.416,
    "gd_loss": "0.2062-0.2074 (eta 6.06 closed form; 5.90 grid scan)",
    "trained_loss": 0.2079,
    "model_cos": 0.9993,
    "model_diff": 0.097,
    "preds_diff": 0.0225,
    "plateau": "~0.393 until step ~1,500, then drops to GD by ~1,900",
    "interpolated": "paper Fig. 2: the interpolated model reaches the same loss as the trained model and GD",
    "ood": "paper Fig. 2 (right): trained model and GD have the same loss for input scales alpha in [0.5, 2]",
}


def make_config(quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    base = experiments.get("paper_1layer")
    if quick:
        cfg = TrainConfig(steps=1000, batch_size=512, n_seeds=2, eval_every=50, ckpt_every=1000,
                          eval_tasks=1024, final_eval_tasks=2000)
    else:
        cfg = dataclasses.replace(base.train, steps=steps or base.train.steps, batch_size=batch_size or base.train.batch_size, n_seeds=5)
    return dataclasses.replace(base, name=NAME, train=cfg)


def piece_steps(config: ExperimentConfig) -> list[int]:
    """Steps where the interpolated model is evaluated: dense early (the plateau and the drop)."""
    end = config.train.steps
    dense = list(range(0, min(end, 1000) + 1, 100))
    return sorted(set(dense + list(range(1000, end + 1, 500)) + [end]))


def stacked_init(config: ExperimentConfig) -> dict:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[train.init_params(config, s) for s in train.seeds_of(config)])


def interpolated_params(config: ExperimentConfig, params: dict, eta: float) -> dict:
    """Per seed: compare.interpolate(trained, gd_model, 0.5), as parameters of the same config."""
    target = constructions.gd_model(config.task.d, config.task.n_ctx, lr=eta, layers=1)
    mids = []
    for model in train.seed_models(config, params):
        mid = compare.interpolate(model, target, 0.5)
        mids.append(nnx.to_pure_dict(nnx.state(mid, nnx.Param)))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *mids)


def evaluate_pieces(config: ExperimentConfig, args, trainer: train.Trainer, batch, eta: float) -> dict:
    """Train in pieces; at each piece the model and the interpolated model vs GD on `batch`."""

    def measure(step: int, params) -> dict:
        model = trainer.evaluate(params, batch, eta)
        mid = trainer.evaluate(interpolated_params(config, params, eta), batch, eta)
        print(f"  step {step}: model {np.mean(model['loss']):.4f}  interpolated {np.mean(mid['loss']):.4f}  "
              f"GD {float(model['gd_loss'][0]):.4f}", flush=True)
        return {
            "model_loss": model["loss"].tolist(), "gd_loss": float(model["gd_loss"][0]),
            "interp_loss": mid["loss"].tolist(), "interp_model_cos": mid["model_cos"].tolist(),
            "model_cos": model["model_cos"].tolist(),
        }

    pieces = common.train_in_pieces(config, args, piece_steps(config), measure, "fig1_pieces.json",
                                    init=lambda: stacked_init(config))
    steps = sorted(int(s) for s in pieces)
    return {
        "steps": steps,
        **{k: [pieces[str(s)][k] for s in steps] for k in ("model_loss", "interp_loss", "interp_model_cos", "model_cos")},
        "gd_loss": [pieces[str(s)]["gd_loss"] for s in steps],
    }


def ood_sweep(config: ExperimentConfig, params: dict, eta: float, n_tasks: int) -> dict:
    """Loss vs input scale alpha for every seed's model and interpolated model, and for GD."""
    spec = train.model_spec(config)
    mids = interpolated_params(config, params, eta)
    predictors = {"gd": jax.jit(lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta))}
    for i in range(config.train.n_seeds):
        for kind, tree in (("model", params), ("interpolated", mids)):
            p = jax.tree.map(lambda x, i=i: x[i], tree)
            predictors[f"{kind}/{i}"] = jax.jit(lambda xc, yc, xq, p=p: spec.model(p).predict(xc, yc, xq))
    key = jax.random.fold_in(jax.random.key(config.train.eval_seed), 3)  # a held-out path train does not use
    losses = compare.sweep(predictors, compare.input_scale_variants(config.task, ALPHAS), key, n_tasks)
    per_seed = lambda kind: np.array([losses[f"{kind}/{i}"] for i in range(config.train.n_seeds)]).T  # noqa: E731
    return {"alphas": ALPHAS.tolist(), "gd": losses["gd"], "model": common.stats(per_seed("model")),
            "interpolated": common.stats(per_seed("interpolated"))}


def draw(path, log, pieces, ood, summary, config):
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    steps = np.array([r["step"] for r in log])
    ax = axes[0]
    common.band(ax, steps, [r["loss"] for r in log], "trained LSA")
    ax.plot(steps, [r["gd_loss"][0] for r in log], "k--", label="1 step GD, optimal eta")
    mid = np.asarray(pieces["interp_loss"])
    ax.errorbar(pieces["steps"], mid.mean(1), yerr=[mid.mean(1) - mid.min(1), mid.max(1) - mid.mean(1)],
                fmt="o", ms=4, color="C1", label="interpolated (trained + GD construction)/2")
    ax.set(xlabel="training step", ylabel="held-out loss", title="loss over training", ylim=(0, 0.5))
    ax.legend(fontsize=8)
    common.band(axes[1], steps, [r["model_cos"] for r in log], "model_cos (trained vs GD)", color="C2")
    axes[1].set(xlabel="training step", ylabel="cosine of d y_hat / d x_q", title="sensitivity alignment", ylim=(-0.05, 1.05))
    axes[1].legend(fontsize=8, loc="lower right")
    common.band(axes[2], steps, [r["model_diff"] for r in log], "model_diff", color="C3")
    common.band(axes[2], steps, [r["preds_diff"] for r in log], "preds_diff", color="C4")
    axes[2].set(xlabel="training step", yscale="log", title="difference to GD")
    axes[2].legend(fontsize=8)
    ax = axes[3]
    common.band(ax, ood["alphas"], np.asarray(ood["model"]["values"]), "trained LSA")
    common.band(ax, ood["alphas"], np.asarray(ood["interpolated"]["values"]), "interpolated", ls=":", marker="o", ms=3)
    ax.plot(ood["alphas"], ood["gd"], "k--", label="1 step GD, eta fitted at alpha = 1")
    ax.axvline(1.0, color="gray", lw=0.5)
    ax.set(xlabel="input scale alpha (x -> alpha x at test time)", ylabel="loss", yscale="log", title="out of distribution")
    ax.legend(fontsize=8)
    cfg = config.train
    common.save(fig, path, f"One LSA layer vs one GD step (paper Fig. 2): {cfg.n_seeds} seeds (mean, min-max band), "
                 f"{cfg.steps} steps of batch {cfg.batch_size}")


def main() -> None:
    from icl import plots  # noqa: PLC0415

    args = common.parse_args(__doc__.splitlines()[0])
    config = make_config(args.quick, args.steps, args.batch_size)
    run_dir = args.out / "runs" / config.name
    trainer = train.Trainer(config)
    eta = solvers.optimal_gd_lr(config.task, train.heldout_key(config, 2))
    batch = config.task.sample(train.heldout_key(config, 1), config.train.final_eval_tasks)
    print(f"{NAME}: {common.mode(args)}, {config.train.n_seeds} seeds, {config.train.steps} steps, eta {eta:.3f}", flush=True)
    pieces = evaluate_pieces(config, args, trainer, batch, eta)
    summary, params = common.run(config, args)
    ood = ood_sweep(config, params, eta, config.train.final_eval_tasks)
    log = plots.read_log(run_dir)
    png, _ = common.figure_paths(args, NAME)
    draw(png, log, pieces, ood, summary, config)

    gd = summary["solvers"]["gd"]
    final = {
        "n_tasks": summary["n_tasks"], "eta": eta, "zero_loss": summary["zero_loss"],
        "trained_loss": common.stats(summary["model"]["loss"]), "gd_loss": gd["loss"],
        "least_squares_loss": summary["solvers"].get("least_squares", {}).get("loss"),
        "interpolated_loss": common.stats(pieces["interp_loss"][-1]),
        **{k: common.stats(gd[k]) for k in ("model_cos", "model_diff", "preds_diff")},
        "train_steps_per_s": summary["train_steps_per_s"],
    }
    losses = np.asarray([r["loss"] for r in log])  # [T, S]
    near_gd = [int(steps_) for steps_ in
               [next((r["step"] for r in log if r["loss"][i] < 1.05 * r["gd_loss"][0]), -1) for i in range(losses.shape[1])]]
    numbers = {
        "final": final,
        "first_step_within_5pct_of_gd": near_gd,
        "over_training": {
            "steps": [r["step"] for r in log],
            **{k: common.stats([r[k] for r in log]) for k in ("loss", "model_cos", "model_diff", "preds_diff")},
            "gd_loss": [r["gd_loss"][0] for r in log],
            "n_tasks": config.train.eval_tasks,
        },
        "pieces": {**pieces, "n_tasks": config.train.final_eval_tasks},
        "ood": ood,
        "seeds": summary["seeds"],
        "steps": config.train.steps,
    }
    path = common.write_numbers(args, NAME, numbers, [config], PUBLISHED)
    print(f"trained {np.mean(final['trained_loss']['values']):.4f}  GD {gd['loss']:.4f}  interpolated "
          f"{np.mean(final['interpolated_loss']['values']):.4f}  model_cos {np.mean(gd['model_cos']):.4f}  "
          f"preds_diff {np.mean(gd['preds_diff']):.4f}\nwrote {png} and {path}")


if __name__ == "__main__":
    main()
