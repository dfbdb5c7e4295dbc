# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # icl-gd in one afternoon
#
# **What this project tests.** von Oswald et al. (ICML 2023) claim that *a transformer trained on
# in-context regression implements gradient descent in its forward pass*. A "task" is a fresh
# regression problem: N context pairs (x_i, y_i) with y_i = w . x_i, and a query x_q whose label the
# model must predict, with no weight update: it learns w *in context*. The paper shows (1) weights
# of a linear self-attention (LSA) layer that **are** one GD step on the context, and (2) that a
# trained LSA layer ends up computing the same function. This notebook checks both, trains a model
# live, and adds a task family of its own.
#
# It runs top to bottom on a laptop CPU in two to three minutes. The source of truth is
# `docs/tutorial.py` (jupytext "percent" format); `docs/tutorial.ipynb` is generated from it and
# `tests/test_tutorial.py` executes it and checks the two agree.

# %%
import dataclasses
import functools
import tempfile
import warnings
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from icl import compare, constructions, experiments, precision, pretrained, runs, solvers, tasks, train, weights

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook without widgets
plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})
WORK = Path(tempfile.mkdtemp(prefix="icl-tutorial-"))  # every run of this notebook goes here
print("jax", jax.__version__, "| devices:", jax.devices(), "| x64:", jax.config.jax_enable_x64)

# %% [markdown]
# ## 1. The GD construction: LSA weights that *are* one step of gradient descent
#
# A task family samples batches of tasks: `x_ctx [B, N, d]`, `y_ctx [B, N]`, `x_query [B, M, d]`,
# `y_query [B, M]`. One GD step from w = 0 on the context's squared loss, at rate eta, predicts
# `y_hat = (eta / N) sum_i y_i x_i . x_q`; `solvers.optimal_gd_lr` gives the eta that minimises the
# expected loss (a closed form, E[a y_q] / E[a^2]).
#
# `constructions.gd_model` builds an LSA transformer whose weights implement exactly that step
# (the paper's Proposition 1). We run both in float64 so that "equal" means "equal to rounding":
# `precision.at_dtype("float64")` switches JAX to 64-bit for this block only (the library never
# flips the process-wide setting).

# %%
with precision.at_dtype("float64"):
    task = tasks.get("linear", d=10, n_ctx=10)  # the paper's setting: x ~ U(-0.5, 0.5)^10, w ~ N(0, I)
    batch = task.sample(jax.random.key(0), 1000)
    eta = solvers.optimal_gd_lr(task, jax.random.key(1))

    lsa = constructions.gd_model(d=10, n_ctx=10, lr=eta, layers=1)  # an nnx module: lsa(batch)
    y_lsa = lsa(batch)
    y_gd = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=eta, steps=1)
    print(f"optimal eta = {eta:.3f}; predictions {y_lsa.shape} {y_lsa.dtype}")
    print(f"max |LSA - one GD step| = {float(jnp.max(jnp.abs(y_lsa - y_gd))):.1e}")

    # K stacked copies of the layer are K GD steps
    for k in (2, 3):
        y_k = constructions.gd_model(d=10, n_ctx=10, lr=eta, layers=k)(batch)
        y_gd_k = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=eta, steps=k)
        print(f"max |{k}-layer LSA - {k} GD steps| = {float(jnp.max(jnp.abs(y_k - y_gd_k))):.1e}")

# %% [markdown]
# An LSA layer's function depends on its weights only through two (d+1) x (d+1) products,
# A = W_Q W_K^T (which token pairs attend) and B = W_V W_O (what they write). For the GD layer
# A reads the x-block of the tokens and B writes (eta / N) times the label into the label slot:

# %%
a_gd, b_gd = weights.layer_products(lsa.layers[0])
fig, axes = plt.subplots(1, 2, figsize=(6, 2.8))
for ax, mat, title in zip(axes, (a_gd, b_gd), ("A = W_Q W_K^T", "B = W_V W_O"), strict=True):
    lim = np.abs(mat).max()
    ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"GD construction: {title}")
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. A trained one-layer model, shipped with the package
#
# `icl.pretrained` holds finished runs of the paper's figures, so there is nothing to train here.
# `fig1_one_layer` is the paper's Fig. 2 setup: one LSA layer trained with Adam for 5,000 steps
# on the tasks above (5 seeds). `pretrained.run` gives the whole run (config, summary, log,
# parameters of every seed); `run.models()[0]` is seed 0's model.
#
# We compare it with one GD step on the run's own 10,000 held-out tasks
# (`train.heldout_key(config, train.HeldOut.FINAL)`, a stream training never draws from), at the
# eta the run used. `compare.compare(a, b, batch)` reports both losses (0.5 x mean squared error),
# `preds_diff` (mean |y_a - y_b|) and `model_cos`: the cosine between the two learners'
# sensitivities d y_hat / d x_q, i.e. between the linear models they imply at the query.

# %%
run = pretrained.run("fig1_one_layer")
config = run.config
model = run.models()[0]
eta = run.summary["reference"]["hparams"]["lr"]
gd_step = functools.partial(solvers.gd, lr=eta)

heldout = config.task.sample(train.heldout_key(config, train.HeldOut.FINAL), config.train.final_eval_tasks)
metrics = {k: float(v) for k, v in compare.compare(model.predict, gd_step, heldout).items()}
ls_loss = float(compare.loss(solvers.least_squares(heldout.x_ctx, heldout.y_ctx, heldout.x_query), heldout.y_query))
zero_loss = float(compare.loss(jnp.zeros_like(heldout.y_query), heldout.y_query))

print(f"{config.train.steps} steps, {config.train.n_seeds} seeds; seed 0 on {heldout.batch_size} held-out tasks:")
print(f"  predict 0                 {zero_loss:.4f}")
print(f"  one GD step (eta={eta:.2f})  {metrics['loss_other']:.4f}")
print(f"  trained LSA layer         {metrics['loss']:.4f}   (recorded in summary.json: {run.summary['model']['loss'][0]:.4f})")
print(f"  least squares             {ls_loss:.1e}  (N = d and no noise: exact)")
print(f"  trained vs GD: preds_diff {metrics['preds_diff']:.4f}, model_cos {metrics['model_cos']:.5f}")

# %% [markdown]
# The trained layer's loss is within a fraction of a percent of one GD step's, and the linear
# models the two imply at each query point the same direction (cosine ~0.999). Least squares, the best
# learner here, is far better: the trained transformer did not learn *the best* algorithm but the
# one a single attention layer can express.
#
# Its weights say the same. Since (A, B) and (cA, B/c) are the same layer, we rescale the trained
# A by the c that best fits the construction's (`weights.gauge`) before drawing it:

# %%
a_tr, b_tr = weights.layer_products(model.layers[0])
a_gd, b_gd = weights.layer_products(constructions.gd_model(config.task.d, config.task.n_ctx, lr=eta).layers[0])
c = weights.gauge(a_tr, a_gd)
fig, axes = plt.subplots(2, 2, figsize=(6, 5.6))
for row, (name, a, b) in enumerate((("trained", c * a_tr, b_tr / c), ("GD", a_gd, b_gd))):
    for ax, mat, title in zip(axes[row], (a, b), ("A", "B"), strict=True):
        lim = np.abs(mat).max()
        ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{name}: {title}")
        ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# **The interpolation** (paper, Fig. 2). If the trained layer *is* GD up to that rescaling, then
# every model on the straight line between the two in (A, B) space should be as good as both.
# `weights.interpolate(model, target, t)` builds the model at t (t = 0 the trained one, t = 1 the
# construction). And if the model really runs GD, it should also follow GD when the test inputs
# are scaled by alpha, out of the training distribution (`compare.input_scale_variants`).

# %%
target = constructions.gd_model(config.task.d, config.task.n_ctx, lr=eta)
ts = np.linspace(0, 1, 5)
along = [compare.compare(weights.interpolate(model, target, t).predict, gd_step, heldout) for t in ts]
halfway = weights.interpolate(model, target, 0.5)

alphas = [0.5, 1.0, 1.5, 2.0, 2.5]
ood = compare.sweep({"trained": model.predict, "interpolated (t = 1/2)": halfway.predict, "one GD step": gd_step},
                    compare.input_scale_variants(config.task, alphas),
                    train.heldout_key(config, train.HeldOut.OOD), n_tasks=2000)

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
excess = [100 * (float(m["loss"]) / float(m["loss_other"]) - 1) for m in along]
axes[0].plot(ts, excess, "o-")
axes[0].axhline(0, color="k", ls="--", label="one GD step")
axes[0].set(xlabel="t (0: trained, 1: GD construction)", ylabel="loss above one GD step (%)",
            title="along the line to GD")
axes[0].legend()
for name, losses in ood.items():
    axes[1].plot(alphas, losses, "o-" if name != "one GD step" else "k--", label=name)
axes[1].set(xlabel="input scale alpha", ylabel="loss", yscale="log", title="out of distribution")
axes[1].legend()
fig.tight_layout()
plt.show()
for t, m in zip(ts, along, strict=True):
    print(f"t = {t:.2f}: loss {float(m['loss']):.5f}, preds_diff {float(m['preds_diff']):.4f}, model_cos {float(m['model_cos']):.5f}")

# %% [markdown]
# The loss falls steadily to GD's as t goes to 1 (every point within a fraction of a percent of
# it), and out of distribution the three curves lie on top of each other, even where the loss is a
# hundred times its value at alpha = 1: the trained layer behaves as GD does, not merely on the
# inputs it was trained on.
#
# ## 3. Train a model live
#
# Experiments are named, frozen configs (`icl list` shows them all); `experiments.get` returns
# one. We take the paper's one-layer run, `paper_1layer`, and train it for 2,000 steps instead of
# 5,000 (`dataclasses.replace` on its `TrainConfig`). `runs.train_run(config, run_dir)` trains
# into a directory (the same one `icl train` writes: `config.json`, `log.jsonl`, `summary.json`,
# checkpoints) and loads it back; run it again and it reuses the finished run. This takes 10 to
# 30 seconds on a 2-core CPU.

# %%
base = experiments.get("paper_1layer")
live_config = dataclasses.replace(base, name="tutorial_1layer",
                                  train=dataclasses.replace(base.train, steps=2000, final_eval_tasks=2000))
summary, live = runs.train_run(live_config, WORK / "tutorial_1layer")
print(f"trained {summary['steps']} steps in {summary['wall_s']:.1f} s ({summary['train_steps_per_s']:.0f} steps/s)")
print(f"held-out loss: model {summary['model']['loss'][0]:.4f}, one GD step {summary['solvers']['gd']['loss']:.4f}, "
      f"least squares {summary['solvers']['least_squares']['loss']:.1e}")

# %% [markdown]
# Every `eval_every` steps the run logs the model's held-out loss, the reference's (one GD step
# at the optimal eta) and how alike the two are; `Run.curve(key)` reads one metric back as
# (steps, values per seed). Most seeds sit on a plateau near the loss of predicting 0 for a few
# hundred steps, then drop to GD's loss while their predictions turn to GD's:

# %%
steps, loss = live.curve("loss")
_, ref_loss = live.curve("ref_loss")
_, cos = live.curve("model_cos")
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].plot(steps, np.asarray(loss)[:, 0], label="trained LSA")
axes[0].plot(steps, np.asarray(ref_loss)[:, 0], "k--", label="one GD step")
axes[0].set(xlabel="training step", ylabel="held-out loss", title="loss")
axes[0].legend()
axes[1].plot(steps, np.asarray(cos)[:, 0])
axes[1].set(xlabel="training step", ylabel="model_cos vs GD", title="alignment with GD", ylim=(0, 1.02))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. A task family of your own, in one cell
#
# A task family is a frozen dataclass with fields `d`, `n_ctx`, `n_query` (plus its prior's
# parameters), a `sample(key, batch_size) -> Batch` that is a pure function of the key, and the
# solvers it is compared against (`baselines`). `@register(name)` makes it available everywhere:
# `tasks.get`, configs, `icl list`, `--set task=name` (in a package, one file under `icl/tasks/`
# and one import line; see docs/architecture.md, "How to add").
#
# Ours: linear regression whose task vectors share a common part, w ~ N(mean * 1, I) instead of
# N(0, I). One GD step from w = 0 does not know about the mean; a trained model might learn it.
# Registering a name twice is an error, so the cell registers only once and can be re-run.

# %%
from icl.tasks.base import Batch, check_non_negative, check_positive_int, register

NAME = "tutorial_shifted_linear"  # a name no shipped family uses
assert NAME not in tasks.names() or tasks.family(NAME).__module__ == __name__, tasks.names()


@dataclasses.dataclass(frozen=True)
class ShiftedLinear:
    """y = w . x + noise, x ~ U(-0.5, 0.5)^d, w ~ N(mean * 1, I)."""

    baselines: ClassVar[tuple[str, ...]] = ("gd", "least_squares")

    d: int = 5
    n_ctx: int = 10
    n_query: int = 1
    mean: float = 1.0
    noise_std: float = 0.0

    def __post_init__(self):
        check_positive_int(NAME, d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative(NAME, noise_std=self.noise_std)

    def sample(self, key, batch_size):
        key_x, key_w, key_noise = jax.random.split(key, 3)
        x = jax.random.uniform(key_x, (batch_size, self.n_ctx + self.n_query, self.d), minval=-0.5, maxval=0.5)
        w = self.mean + jax.random.normal(key_w, (batch_size, self.d), x.dtype)
        y = jnp.einsum("bnd,bd->bn", x, w) + self.noise_std * jax.random.normal(key_noise, x.shape[:2], x.dtype)
        return Batch.split(x, y, self.n_ctx, w=w)


if NAME not in tasks.names():
    register(NAME)(ShiftedLinear)
ShiftedLinear = tasks.family(NAME)  # the registered class (the first definition on a re-run)
shifted = tasks.get(NAME, d=5, n_ctx=10, mean=1.0)
print(shifted)
print("families:", tasks.names())

# %% [markdown]
# Train the paper's one-layer model on it (1,500 steps, batch 1024; 10 to 30 s). The config's
# `compare_against` defaults to the family's baselines, so the summary compares the model with
# one GD step from 0 at its optimal eta and with least squares.

# %%
toy_config = dataclasses.replace(
    base, name="tutorial_shifted", task=shifted, compare_against=None,
    train=dataclasses.replace(base.train, steps=1500, batch_size=1024, final_eval_tasks=4000))
toy_summary, toy_run = runs.train_run(toy_config, WORK / "tutorial_shifted")

toy_eta = toy_summary["solvers"]["gd"]["hparams"]["lr"]
toy_model = toy_run.models()[0]
mean_w = jnp.full((shifted.d,), shifted.mean)
learners = {
    "predict mean . x_q": lambda xc, yc, xq: xq @ mean_w,
    "one GD step from 0": functools.partial(solvers.gd, lr=toy_eta),
    "trained LSA": toy_model.predict,
    "one GD step from the mean": functools.partial(solvers.gd, lr=toy_eta, w0=mean_w),
    "least squares": solvers.least_squares,
}
toy_batch = shifted.sample(train.heldout_key(toy_config, train.HeldOut.FINAL), 4000)
toy_losses = {name: float(compare.loss(f(toy_batch.x_ctx, toy_batch.y_ctx, toy_batch.x_query), toy_batch.y_query))
              for name, f in learners.items()}
for name, value in toy_losses.items():
    print(f"  {name:27s} {value:.4f}")
print(f"  (summary.json: model {toy_summary['model']['loss'][0]:.4f}, gd {toy_summary['solvers']['gd']['loss']:.4f})")

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(toy_losses), list(toy_losses.values()), color=["C7", "C7", "C0", "C7", "C7"])
ax.invert_yaxis()
ax.set(xlabel="held-out loss", title=f"{NAME}, d = {shifted.d}, N = {shifted.n_ctx}")
fig.tight_layout()
plt.show()

# %% [markdown]
# On the paper's tasks the trained layer *was* one GD step from 0. Here it beats that step: it has
# learned something about the prior. It stays well short of one step started from the mean,
# though, and least squares is exact again (N >= d, no noise). Why? A linear attention layer
# cannot add a fixed `w0 . x_q`: the query's label slot starts at 0 and every update multiplies
# context statistics with x_q. `weights.preconditioner` splits its prediction into
# `x_q^T Gamma X^T y` (a GD step with preconditioner Gamma) and two terms linear in x_q but not in
# the labels, `- x_q^T A_xx X^T X b_x - (x_q . a_xy) (y^T y) b_y`. Averaged over tasks these are a
# fixed linear model `u . x_q`, the layer's estimate of the prior mean, built from the size of
# the context (X^T X, y^T y):

# %%
parts = weights.preconditioner(toy_model.layers[0], shifted.d)
stats = shifted.sample(jax.random.key(7), 20000)
xtx = np.mean(np.einsum("bnd,bne->bde", stats.x_ctx, stats.x_ctx), axis=0)  # E[X^T X]
yty = float(np.mean(np.sum(stats.y_ctx**2, axis=-1)))  # E[y^T y]
u = -parts["a_xx"][0] @ xtx @ parts["b_x"][0] - parts["a_xy"][0] * parts["b_y"][0] * yty
print("u       =", np.round(u, 3), f" (prior mean: {shifted.mean} in every coordinate)")
print(f"cos(u, mean) = {np.dot(u, mean_w) / np.linalg.norm(u) / np.linalg.norm(mean_w):.3f}, "
      f"|u| / |mean| = {np.linalg.norm(u) / np.linalg.norm(mean_w):.2f}")
print("Gamma's diagonal:", np.round(np.diag(parts["gamma"]), 3), f" (one GD step: eta / N = {toy_eta / shifted.n_ctx:.3f})")

# %% [markdown]
# In this run u points along the prior mean but is shorter than it: a term of the form
# `(y^T y) x_q` cannot tell the shared part of w from each task's own, so the layer hedges.
# Train longer, or give the model more layers or an MLP, and see how far it gets.
#
# ## 5. Where to go next
#
# * **The command line.** `icl train` (the default `paper_1layer` run, ~10 s), `icl list` (every
#   experiment by study, the task families, the model families: `lsa`, `gpt2`, linear attention,
#   recurrent and state-space layers, and the solvers), `icl compare RUN_DIR --against
#   gd,least_squares,ridge`, `icl verify` (every construction vs its learner in float64).
#   `icl compare pretrained:fig1_one_layer --against gd` works on the shipped model.
# * **The paper's figures and the follow-up claims.** `paper_figures/` has one script per figure
#   and claim, each with a `--quick` mode; `paper_figures/README.md` has the claims table (what
#   reproduces, with which numbers, and what does not).
# * **Extending it.** `docs/architecture.md`, "How to add": a task family (as above, as a file),
#   a solver, a model family, a recurrent layer, an experiment, a figure script;
#   `tests/test_extension_recipe.py` runs that recipe end to end.
# * **The maths.** `docs/math.md`: the constructions, the optimal eta, Gamma*, the causal
#   objective, and the reference numbers of the official code.

# %%
print("this notebook's runs are in", WORK)
