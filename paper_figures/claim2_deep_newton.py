"""Claim 2: deeper LSA learns preconditioned / higher-order methods (Ahn et al. 2023; Fu et al. 2023).

Sources and the sub-claims tested:
  (a) Fu et al. 2023 ("Transformers learn higher-order optimization methods for in-context
      learning"): the read-out after layer l best matches Newton-Schulz iteration k_N(l), with
      k_N(l) growing ~linearly in l;
  (b) Fu et al.: the matching GD step count k_GD(l) grows much faster (exponentially) in l, and
      this holds for ill-conditioned inputs (large kappa);
  (c) Ahn et al. 2023 ("Transformers learn to implement preconditioned gradient descent for
      in-context learning"): every layer's preconditioner is proportional to Sigma^-1 for inputs
      x ~ N(0, Sigma).

Setup. Linear tasks y = w . x, w ~ N(0, I_d), no noise, d = 5, N = 20 context points, inputs
x ~ N(0, Sigma) with Sigma = Q diag(lambda) Q^T (Q a fixed random rotation, lambda geometric from
kappa to 1, tr Sigma = d; `tasks.get("linear", covariance="rotated", condition_number=kappa)`), for
kappa in KAPPAS. One pure linear LSA stack per kappa (L = 5 separate layers, 1 head, key size
D = d + 1, init 0.002) trained by icl.train with the recipe that keeps deep stacks stable in
fig2_depth.py: Adam lr 5e-4, b2 0.98, clip 1.0, activations clipped to 10; 5 seeds (n_seeds=5).

Matching (Fu et al.'s "similarity of errors"). On B held-out tasks with M = 16 queries each
(`n_query` raised to 16 for evaluation only), every predictor P gives residuals
r_P[b] = y_hat_P(x_q[b, :]) - y_q[b, :] in R^M. The similarity of two predictors is the mean over
tasks of the per-task cosine over the M queries:
    sim(P, Q) = (1/B) sum_b <r_P[b], r_Q[b]> / (||r_P[b]|| ||r_Q[b]||).
Since all predictors here are linear in x_q, r_P[b] = X_q[b] (w_P[b] - w[b]), so for large M this
is the Sigma-weighted cosine of the weight errors, task by task. P ranges over the read-out after
layer l = 1..L (model.layer_predictions) and Q over
  * Newton-Schulz (solvers.newton), k = 0..K_NEWTON iterations: S = X^T X, M_0 = S / ||S S^T||_F,
    M_{k+1} = M_k (2I - S M_k), w = M_k X^T y (k = 0 is a scaled GD step);
  * GD (solvers.gd) from w = 0 with the per-task step lr_b = N / lambda_max(X_b^T X_b), i.e. step
    1 / L_smooth on L(w) = 1/(2N)||Xw - y||^2 (the textbook monotone step; the best constant step
    2 / (lambda_max + lambda_min) is at most 2x larger, so this costs GD at most a factor ~2 in
    steps, which does not change linear vs exponential growth); k on a log grid GD_STEPS.
The best match of layer l is k*(l) = argmax_k sim(layer l, solver step k), per seed. We fit
k*_N(l) = a + s_N l (least squares; the slope s_N and R^2) and log2 k*_GD(l) = a + g l (the
doubling rate g: k_GD multiplies by 2^g per layer) and also the linear slope of k*_GD(l).
Because of this, we also fit over only the layers whose best similarity is >= SIM_MIN = 0.5
(per seed; a threshold chosen after seeing the data; "reliable_fit": Newton slope, GD log2 slope).
A second, cruder match that does not depend on residual directions: the loss-matched step
k_loss(l), the (interpolated) step count at which the solver's held-out loss first falls to layer
l's loss (`loss_matched_step`); fitted the same way. The argmax match is only meaningful where the
best similarity is high: near convergence every solver's residual concentrates on the slowest
eigendirections of X^T X, the model's need not, and the best similarity drops (reported per layer).
Caveat on the Newton index: M_0 here uses the Frobenius norm (Fu et al.: the spectral norm, with
a factor 2), a constant shift of at most ~log2(2 sqrt d) iterations, which the slope ignores.

Preconditioners (Ahn et al.). In the row convention a 1-head linear layer updates token e_j by
sum_i (e_j A e_i^T) e_i B with A = W_q W_k^T, B = W_v W_o (compare.layer_products). With tokens
e_i = [x_i, r_i] (context) and e_q = [x_q, 0], the change of the read-out (minus the query's label
slot) is
    -sum_i (x_q A_xx x_i + x_q A_xy r_i) (x_i . B_xy + r_i B_yy),
(A_xx = A[:d, :d], A_xy = A[:d, d], B_xy = B[:d, d], B_yy = B[d, d]), whose part linear in the
context labels r is a preconditioned GD step
    delta y_hat(x_q) = x_q^T Gamma_l sum_i x_i r_i,    Gamma_l = -(B_yy A_xx + A_xy B_xy^T).
The GD construction has A_xy = 0 and Gamma = (lr / N) I; the brief's "x-x block of A times the
label-row entry of B" is the first term, and the rank-one second term is the other route by which
a trained layer can carry the same update (a query-x / context-label score times a context-x
value), so we include it. The rest is even in r (r-free or quadratic in r), so for the first layer
Gamma_1 is exact: the odd part in y of its read-out equals solvers.preconditioned_gd(Gamma_1)
(tests/test_claim2_deep_newton.py, for random weights). For a query slot s_q != 0 (layers >= 2)
the A_yx, A_yy terms add updates proportional to the current prediction, not counted in Gamma_l.
We report the Frobenius cosine
cos(Gamma_l, Sigma^-1) and cos(Gamma_l, I) per layer, seed and kappa, with the references
cos(Sigma^-1, I) (what "aligned with I" already implies) and cos(Gamma*, Sigma^-1) for the optimal
one-layer preconditioner Gamma* = ((N+1) Sigma + tr(Sigma) I)^-1 (solvers.gamma_star), which is not
exactly proportional to Sigma^-1 at finite N. The remaining blocks (A_xy, A_yx, A_yy, B_xx, B_xy)
are reported as norms relative to their block: Ahn et al.'s analysis assumes A_xy = A_yx = A_yy = 0.
Note that deeper layers act on tokens whose x part earlier layers may have changed (B_xx != 0),
so Gamma_l is the preconditioner in the coordinates that layer sees.

    python paper_figures/claim2_deep_newton.py           # full: 3 kappas x 5 seeds x 5,000 steps of batch 1024
    python paper_figures/claim2_deep_newton.py --steps 5000 --batch-size 512   # the intermediate run recorded
    python paper_figures/claim2_deep_newton.py --quick   # kappas 1, 50; 600 steps of batch 256, 2 seeds

Measured on the shared 2-core CPU (load ~13-17): --quick from scratch 2.6 min wall (53 s CPU);
the intermediate setting ~45 min of training (two runs at a time, ~3 steps/s each) plus 1.5 min of
evaluation; the full mode, twice the tasks per step, was not run.
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

NAME = "claim2_deep_newton"
D, N_CTX, N_LAYERS, N_QUERY_EVAL = 5, 20, 5, 16
KAPPAS = (1.0, 10.0, 50.0)
QUICK_KAPPAS = (1.0, 50.0)
SIM_MIN = 0.5  # a layer's argmax counts as a match only if its best similarity reaches this (chosen after seeing the data)
K_NEWTON = 24  # Newton-Schulz iterations 0..K_NEWTON
GD_STEPS = tuple(int(k) for k in np.unique(np.round(np.geomspace(1, 2048, 34)).astype(int)))
PUBLISHED = {
    "source_newton": "Fu et al. 2023 (arXiv 2310.17086), Figs. 3-4: 12-layer GPT-2 on d = 20 linear regression; "
    "layer l matches Newton iteration ~3 l (linear in l, 'each middle layer roughly computing 3 iterations'), "
    "while the matching GD step count grows exponentially in l; also for ill-conditioned inputs",
    "source_preconditioner": "Ahn et al. 2023 (arXiv 2306.00297), Thms. 3-4 and Fig. 2: for x ~ N(0, Sigma) the "
    "trained L-layer LSA weights satisfy A_l proportional to Sigma^-1 in every layer (preconditioned GD)",
    "claim_tested": "(a) k_Newton(l) linear in l; (b) k_GD(l) much faster (exponential) in l; (c) Gamma_l ~ Sigma^-1",
}


def make_config(kappa: float, quick: bool, steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """A 5-layer linear LSA stack on rotated-Gaussian linear tasks with condition number kappa."""
    task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=kappa)
    model = ModelConfig(n_layers=N_LAYERS, shared=False, n_heads=1, key_size=0, attention="linear",
                        init_scale=0.002, clip_activations=10.0)
    optim = OptimConfig(name="adam", lr=5e-4, b1=0.9, b2=0.98, grad_clip=1.0)
    if quick:
        cfg = TrainConfig(steps=600, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=600,
                          eval_tasks=512, final_eval_tasks=1000)
    else:
        cfg = TrainConfig(steps=steps or 5000, batch_size=batch_size or 1024, n_seeds=5, eval_every=100,
                          ckpt_every=500, eval_tasks=1024, final_eval_tasks=4000)
    return ExperimentConfig(name=f"{NAME}_kappa{kappa:g}", task=task, model=model, optim=optim, train=cfg,
                            compare_against=("gd", "least_squares"))


# -- numerics (tested in tests/test_claim2_deep_newton.py) -------------------------------------
def unit_residuals(y_hat: jax.Array, y_query: jax.Array) -> jax.Array:
    """(y_hat - y_query) / ||y_hat - y_query|| over the M queries of each task: [..., B, M]
    (0 where the residual is 0)."""
    r = y_hat - y_query
    norm = jnp.linalg.norm(r, axis=-1, keepdims=True)
    return jnp.where(norm > 0, r / jnp.where(norm > 0, norm, 1.0), 0.0)


def similarity_matrix(u_layers: jax.Array, u_steps: jax.Array) -> jax.Array:
    """sim[l, k] = mean over tasks b of <u_layers[l, b], u_steps[k, b]> (unit residuals [L, B, M],
    [K, B, M]): the mean per-task cosine of the residuals. [L, K]."""
    return jnp.einsum("lbm,kbm->lk", u_layers, u_steps) / u_layers.shape[1]


def line_fit(x, y) -> dict:
    """Least-squares line y = intercept + slope x, with R^2 (1 when y is constant and fitted exactly)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - intercept - slope * x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"slope": float(slope), "intercept": float(intercept), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def loss_matched_step(layer_loss: float, steps, solver_loss, log_steps: bool) -> float:
    """The step count at which the solver's loss first falls to `layer_loss`: log(loss) interpolated
    linearly between grid steps (in k, or in log k when `log_steps`). steps[0] if the layer is no
    better than the first step; inf if it beats every step."""
    steps, solver_loss = np.asarray(steps, float), np.asarray(solver_loss, float)
    if layer_loss >= solver_loss[0]:
        return float(steps[0])
    below = np.flatnonzero(solver_loss <= layer_loss)
    if below.size == 0:
        return float("inf")
    i = int(below[0])
    x0, x1 = (np.log(steps[i - 1:i + 1]) if log_steps else steps[i - 1:i + 1])
    y0, y1 = np.log(solver_loss[i - 1]), np.log(max(solver_loss[i], 1e-300))
    x = x0 + (np.log(layer_loss) - y0) * (x1 - x0) / (y1 - y0)
    return float(np.exp(x) if log_steps else x)


def block_norms(a: np.ndarray, b: np.ndarray) -> dict:
    """Norms of the blocks outside the preconditioned-GD structure, relative to the GD blocks:
    A_xy, A_yx, A_yy relative to ||A_xx||; B_xx, B_yx (x-part of the label row), B_xy relative to |B_yy|;
    rank_one_share = ||A_xy B_xy^T|| / (||B_yy A_xx|| + ||A_xy B_xy^T||), the weight of Gamma's second route."""
    d = a.shape[0] - 1
    axx, byy = np.linalg.norm(a[:d, :d]), abs(b[d, d])
    return {
        "A_xy": float(np.linalg.norm(a[:d, d]) / axx), "A_yx": float(np.linalg.norm(a[d, :d]) / axx),
        "A_yy": float(abs(a[d, d]) / axx),
        "B_xx": float(np.linalg.norm(b[:d, :d]) / byy), "B_xy": float(np.linalg.norm(b[:d, d]) / byy),
        "B_yx": float(np.linalg.norm(b[d, :d]) / byy),
        "rank_one_share": float(np.linalg.norm(np.outer(a[:d, d], b[:d, d]))
                                / (np.linalg.norm(b[d, d] * a[:d, :d]) + np.linalg.norm(np.outer(a[:d, d], b[:d, d])))),
    }


def frobenius_cosine(p: np.ndarray, q: np.ndarray) -> float:
    """<P, Q>_F / (||P||_F ||Q||_F)."""
    return float(np.sum(p * q) / (np.linalg.norm(p) * np.linalg.norm(q)))


# -- solvers on the evaluation tasks -----------------------------------------------------------
def smooth_lr(x_ctx: jax.Array) -> jax.Array:
    """Per-task GD step N / lambda_max(X^T X) (paper convention lr, i.e. 1 / lambda_max of the Hessian
    X^T X / N): [B, 1]."""
    s = jnp.einsum("bnd,bne->bde", x_ctx, x_ctx)  # [B, d, d]
    return (x_ctx.shape[1] / jnp.linalg.eigvalsh(s)[:, -1])[:, None]


def solver_steps(batch) -> dict:
    """Predictions [K, B, M] of Newton-Schulz (k = 0..K_NEWTON) and GD (k in GD_STEPS), and least squares [B, M]."""
    xc, yc, xq = batch.x_ctx, batch.y_ctx, batch.x_query
    newton = jax.jit(solvers.newton, static_argnames="steps")
    gd = jax.jit(solvers.gd, static_argnames="steps")
    lr = smooth_lr(xc)
    return {
        "newton": jnp.stack([newton(xc, yc, xq, steps=k) for k in range(K_NEWTON + 1)]),
        "gd": jnp.stack([gd(xc, yc, xq, lr=lr, steps=k) for k in GD_STEPS]),
        "least_squares": solvers.least_squares(xc, yc, xq),
    }


# -- evaluation of one kappa -------------------------------------------------------------------
def evaluate(config: ExperimentConfig, params: dict, n_tasks: int) -> dict:
    """Layer-vs-step similarities, best matches and their fits, losses, and preconditioner alignment."""
    eval_task = dataclasses.replace(config.task, n_query=N_QUERY_EVAL)
    batch = eval_task.sample(train.heldout_key(config, 1), n_tasks)  # x_ctx [B, N, d], y_query [B, M]
    spec = train.model_spec(config)
    layer_preds = jax.jit(jax.vmap(lambda p: spec.model(p).layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query)))
    model_y = layer_preds(params)  # [S, L, B, M]
    sol = solver_steps(batch)
    u_model = unit_residuals(model_y, batch.y_query[None, None])  # [S, L, B, M]
    out = {"kappa": config.task.condition_number, "n_tasks": n_tasks, "n_query": N_QUERY_EVAL}
    layers = np.arange(1, N_LAYERS + 1)
    for name, steps in (("newton", np.arange(K_NEWTON + 1)), ("gd", np.asarray(GD_STEPS))):
        u_sol = unit_residuals(sol[name], batch.y_query[None])  # [K, B, M]
        sim = np.asarray(jax.vmap(similarity_matrix, (0, None))(u_model, u_sol))  # [S, L, K]
        best = steps[sim.argmax(-1)]  # [S, L]
        fits = [line_fit(layers, b) for b in best]
        entry = {
            "steps": steps.tolist(), "similarity": sim.tolist(), "best_step": best.tolist(),
            "best_similarity": sim.max(-1).tolist(), "fit_linear": fits,
            "slope": common.stats([f["slope"] for f in fits]), "r2": common.stats([f["r2"] for f in fits]),
            "loss": [float(compare.loss(y, batch.y_query)) for y in sol[name]],
        }
        reliable = [(layers[m], b[m]) for b, m in zip(best, sim.max(-1) >= SIM_MIN)]  # per seed: (layers, k*) with a real match
        fits_reliable = [line_fit(x, np.log2(k) if name == "gd" else k) for x, k in reliable if len(x) >= 2]
        entry["reliable_layers"] = [x.tolist() for x, _ in reliable]
        entry["reliable_fit"] = common.stats([f["slope"] for f in fits_reliable]) if fits_reliable else None
        model_loss = np.asarray(jax.vmap(jax.vmap(lambda y: compare.loss(y, batch.y_query)))(model_y))  # [S, L]
        matched = np.asarray([[loss_matched_step(v, steps, entry["loss"], log_steps=name == "gd") for v in seed]
                              for seed in model_loss])  # [S, L]
        entry["loss_matched_step"] = matched.tolist()
        finite = np.all(np.isfinite(matched), axis=1)
        entry["loss_matched_slope"] = common.stats([line_fit(layers, m)["slope"] for m in matched[finite]]) if finite.any() else None
        if name == "gd":
            log_fits = [line_fit(layers, np.log2(b)) for b in best]
            entry["fit_log2"] = log_fits
            entry["doubling_per_layer"] = common.stats([f["slope"] for f in log_fits])
            entry["loss_matched_doubling_per_layer"] = (
                common.stats([line_fit(layers, np.log2(m))["slope"] for m in matched[finite]]) if finite.any() else None)
        out[name] = entry
    out["model_loss"] = model_loss.T.tolist()  # [L, S]
    out["least_squares_loss"] = float(compare.loss(sol["least_squares"], batch.y_query))
    out["zero_loss"] = float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))
    out["preconditioners"] = preconditioner_alignment(config, params)
    return out


def preconditioner_alignment(config: ExperimentConfig, params: dict) -> dict:
    """Per layer and seed: cos(Gamma_l, Sigma^-1), cos(Gamma_l, I), cos(Gamma_l, Gamma*), the other blocks."""
    sigma = config.task.input_covariance
    sigma_inv = np.linalg.inv(sigma)
    g_star = solvers.gamma_star(sigma, config.task.n_ctx)
    eye = np.eye(sigma.shape[0])
    rows = {"cos_sigma_inv": [], "cos_identity": [], "cos_gamma_star": [], "blocks": [], "gamma": []}
    for model in train.seed_models(config, params):
        per = {key: [] for key in rows}
        for layer in model.layers:
            a, b = compare.layer_products(layer)
            gamma = compare.preconditioner(layer, a.shape[0] - 1)["gamma"]
            per["cos_sigma_inv"].append(frobenius_cosine(gamma, sigma_inv))
            per["cos_identity"].append(frobenius_cosine(gamma, eye))
            per["cos_gamma_star"].append(frobenius_cosine(gamma, g_star))
            per["blocks"].append(block_norms(a, b))
            per["gamma"].append(gamma.tolist())
        for key in rows:
            rows[key].append(per[key])
    out = {key: np.asarray(rows[key]).T.tolist() for key in ("cos_sigma_inv", "cos_identity", "cos_gamma_star")}  # [L, S]
    out["blocks"], out["gamma"] = rows["blocks"], rows["gamma"]  # [S][L]
    out["reference"] = {"cos_sigma_inv_identity": frobenius_cosine(sigma_inv, eye),
                        "cos_gamma_star_sigma_inv": frobenius_cosine(g_star, sigma_inv),
                        "cos_gamma_star_identity": frobenius_cosine(g_star, eye)}
    return out


# -- figure ------------------------------------------------------------------------------------
def draw(path, results: list[dict], title: str) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    top = results[-1]  # the largest kappa
    layers = np.arange(1, N_LAYERS + 1)
    for ax, name, label in ((axes[0, 0], "newton", "Newton-Schulz iteration k"), (axes[0, 1], "gd", "GD step k (lr 1/lambda_max)")):
        sim = np.mean(top[name]["similarity"], axis=0)  # [L, K]
        steps = np.asarray(top[name]["steps"])
        image = ax.imshow(sim, aspect="auto", origin="lower", cmap="viridis", vmin=min(0.0, sim.min()), vmax=1.0,
                          extent=(-0.5, len(steps) - 0.5, 0.5, N_LAYERS + 0.5))
        ticks = np.linspace(0, len(steps) - 1, min(len(steps), 9)).round().astype(int)
        ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
        best = np.asarray(top[name]["best_step"])  # [S, L]
        index = {int(s): i for i, s in enumerate(steps)}
        for seed_best in best:
            ax.plot([index[int(b)] for b in seed_best], layers, "w.", ms=6)
        ax.set(xlabel=label, ylabel="layer l", title=f"{name}: mean residual cosine, kappa = {top['kappa']:g} (dots: argmax per seed)")
        ax.set_yticks(layers, [f"{l}\nmax {v:.2f}" for l, v in zip(layers, np.mean(top[name]["best_similarity"], axis=0))])
        fig.colorbar(image, ax=ax)
    ax = axes[0, 2]
    for i, r in enumerate(results):
        common.band(ax, layers, np.asarray(r["newton"]["best_step"]).T, f"kappa {r['kappa']:g}: slope "
                    f"{r['newton']['slope']['mean']:.2f} (R2 {r['newton']['r2']['mean']:.2f})", color=f"C{i}", marker="o")
        ax.plot(layers, np.mean(r["newton"]["loss_matched_step"], axis=0), "--", color=f"C{i}", lw=1,
                label="loss-matched k (mean)" if i == 0 else None)
    ax.set(xlabel="layer l", ylabel="best-matching Newton-Schulz iteration k_N(l)",
           title="Newton match vs layer (argmax cosine: mean, min-max; dashed: loss-matched)", xticks=layers)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for i, r in enumerate(results):
        common.band(ax, layers, np.asarray(r["gd"]["best_step"]).T, f"kappa {r['kappa']:g}: x{2 ** r['gd']['doubling_per_layer']['mean']:.2f} "
                    f"per layer", color=f"C{i}", marker="s")
        ax.plot(layers, np.exp(np.mean(np.log(r["gd"]["loss_matched_step"]), axis=0)), "--", color=f"C{i}", lw=1,
                label="loss-matched k (geometric mean)" if i == 0 else None)
    ax.set(xlabel="layer l", ylabel="best-matching GD step k_GD(l)", yscale="log", title="GD match vs layer (log scale; dashed: loss-matched)", xticks=layers)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    shown = []
    for i, r in enumerate(results):
        loss = np.asarray(r["model_loss"])  # [L, S]
        common.band(ax, layers, loss, f"LSA layer l, kappa {r['kappa']:g}", color=f"C{i}", marker="o")
        shown += [loss.min(), loss.max()]
        for name, ls, marker in (("newton", "--", "x"), ("gd", ":", "+")):
            steps = list(r[name]["steps"])
            matched = np.asarray([[r[name]["loss"][steps.index(int(k))] for k in seed] for seed in r[name]["best_step"]])  # [S, L]
            ax.plot(layers, matched.mean(0), ls, color=f"C{i}", marker=marker, lw=1,
                    label=f"{'Newton' if name == 'newton' else 'GD'} at the matched k" if i == 0 else None)
            shown += [matched.mean(0).min(), matched.mean(0).max()]
    ls_loss = max(r["least_squares_loss"] for r in results)
    ax.plot([], [], " ", label=f"(least squares: <= {ls_loss:.0e}, noiseless tasks)")
    ax.set(xlabel="layer l", ylabel="held-out loss", yscale="log", title="loss per layer vs the matched solver steps",
           xticks=layers, ylim=(0.5 * min(shown), 2 * max(shown)))
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    for i, r in enumerate(results):
        p = r["preconditioners"]
        common.band(ax, layers, p["cos_sigma_inv"], f"cos(Gamma_l, Sigma^-1), kappa {r['kappa']:g}", color=f"C{i}", marker="o")
        common.band(ax, layers, p["cos_identity"], f"cos(Gamma_l, I), kappa {r['kappa']:g}", color=f"C{i}", marker="s", ls="--")
        ax.axhline(p["reference"]["cos_sigma_inv_identity"], color=f"C{i}", lw=0.6, ls=":")
    ax.set(xlabel="layer l", ylabel="Frobenius cosine", title="Gamma_l = -(B_yy A_xx + A_xy B_xy^T) vs Sigma^-1 and I\n(dotted: cos(Sigma^-1, I) per kappa)",
           xticks=layers, ylim=(-1.05, 1.05))
    ax.legend(fontsize=7)
    common.save(fig, path, title)


def summary_line(r: dict) -> str:
    p = r["preconditioners"]
    return (f"  kappa {r['kappa']:g}: layer loss {np.round(np.mean(r['model_loss'], 1), 4).tolist()} (LS {r['least_squares_loss']:.2e}); "
            f"k_N(l) {np.round(np.mean(r['newton']['best_step'], 0), 1).tolist()} slope {r['newton']['slope']['mean']:.2f}; "
            f"k_GD(l) {np.round(np.mean(r['gd']['best_step'], 0), 1).tolist()} x{2 ** r['gd']['doubling_per_layer']['mean']:.2f}/layer; "
            f"cos(Gamma, Sigma^-1) {np.round(np.mean(p['cos_sigma_inv'], 1), 3).tolist()}, cos(Gamma, I) {np.round(np.mean(p['cos_identity'], 1), 3).tolist()}; "
            f"best sim Newton {np.round(np.mean(r['newton']['best_similarity'], 0), 2).tolist()} GD {np.round(np.mean(r['gd']['best_similarity'], 0), 2).tolist()}; "
            f"reliable-layer fit: Newton slope {r['newton']['reliable_fit']['mean'] if r['newton']['reliable_fit'] else float('nan'):.2f}, "
            f"GD x{2 ** r['gd']['reliable_fit']['mean'] if r['gd']['reliable_fit'] else float('nan'):.2f}/layer; "
            f"loss-matched k_N {np.round(np.mean(r['newton']['loss_matched_step'], 0), 1).tolist()} "
            f"k_GD {np.round(np.exp(np.mean(np.log(r['gd']['loss_matched_step']), 0)), 1).tolist()}")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    kappas = QUICK_KAPPAS if args.quick else KAPPAS
    configs = [make_config(k, args.quick, args.steps, args.batch_size) for k in kappas]
    cfg = configs[0].train
    print(f"{NAME}: {common.mode(args)}, kappa {kappas}, {cfg.n_seeds} seeds, {cfg.steps} steps of batch {cfg.batch_size}", flush=True)
    results = []
    for config in configs:
        summary, params = common.run(config, args)
        result = evaluate(config, params, config.train.final_eval_tasks)
        result["train_wall_s"], result["train_steps_per_s"] = summary.get("wall_s"), summary.get("train_steps_per_s")
        result["final_table_loss"] = summary["model"]["loss"]
        results.append(result)
        print(summary_line(result), flush=True)
    png, _ = common.figure_paths(args, NAME)
    draw(png, results, f"Deep LSA ({N_LAYERS} layers, d = {D}, N = {N_CTX}) vs Newton-Schulz and GD: {cfg.n_seeds} seeds, "
         f"{cfg.steps} steps of batch {cfg.batch_size} [{common.mode(args)}]")
    numbers = {"kappas": list(kappas), "seeds": train.seeds_of(configs[0]), "steps": cfg.steps,
               "gd_steps_grid": list(GD_STEPS), "k_newton_max": K_NEWTON, "by_kappa": results,
               "similarity": "mean over held-out tasks of the cosine, over the task's 16 queries, of the residuals y_hat - y_query",
               "gd_lr": "per task N / lambda_max(X^T X)"}
    path = common.write_numbers(args, NAME, numbers, configs, PUBLISHED)
    print(f"wrote {png} and {path}")


if __name__ == "__main__":
    main()
