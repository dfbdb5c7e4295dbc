"""Claim 20: one unnormalised kernel-attention layer as one step of functional gradient descent, and
the matched non-linearity on Gaussian-process data (Cheng, Chen & Sra, ICML 2024, "Transformers
Implement Functional Gradient Descent to Learn Non-Linear Functions In Context").

Setting (`icl.tasks.kernel_gp`): x uniform on the unit sphere S^{d-1}, labels an exact GP draw with a
dot-product kernel k(x, x') = h_data(c x . x') plus noise; one LSA layer whose attention applies an
unnormalised h to q . k (`ModelConfig.attention` in "linear", "relu", "exp"). Losses are the repo's
1/2 (y_hat - y_q)^2.

**Functional GD** (the paper's Sec. 3). For the kernel K(x, x') = h(x^T A x') and the in-context loss
L(f) = 1/2 sum_i (f(x_i) - y_i)^2 over f in the RKHS of K, one functional-gradient step from f = 0 at
rate eta is f_1 = eta sum_i y_i K(x_i, .), so

    y_hat(x_q) = eta sum_i h(x_q^T A x_i) y_i                                   (`functional_gd`)

which one attention layer computes exactly (`construction`: W_Q W_K^T = [[A, 0], [0, 0]] so that
q . k_i = x_q^T A x_i, and a value-output path that writes -eta y_i into the query's label slot;
the model reads minus that slot). Here A = a I (x is isotropic on the sphere); for the homogeneous
h ("linear", "relu") a is absorbed into eta (a = 1), for "exp" a is a bandwidth, fitted.

**The best eta in closed form** (`optimal_eta`): the loss is quadratic in eta; with the direction
g = sum_i h(.) y_i, eta* = sum g y_q / sum g^2 over the tasks (least squares in eta).
`fit_functional_gd` adds a 1-D search over log10 a for "exp" (`LOG10_SCALE_RANGE`), eta closed-form
at every a.

**The Bayes-optimal predictor** (`bayes_prediction`): the GP posterior mean with the true kernel,
k_q^T (K + s^2 I)^{-1} y with s^2 = noise_std^2 + jitter (`gp_posterior_mean`: kernel ridge with the
true kernel and the noise as ridge). No learner beats it in expectation. ReLU(x . x') is not a PSD
kernel (`icl.tasks.kernel_gp`): its labels are drawn, as in the paper's code, with covariance |K|
(the Gram matrix's matrix absolute value on the task's N + M points), and the Bayes prediction is
the Gaussian conditional mean under that covariance (`conditional_mean`). So for "relu" the
"RKHS" of the functional-GD step is only formal: the step is still eta sum_i relu(x_q^T A x_i) y_i.

**Comparisons** (`cosine`, `summarise`): the cosine between two predictors' predictions over all
held-out tasks (uncentred: both are zero-mean by the symmetry y -> -y of the prior), and the weight
structure of a trained layer against the construction (`weight_alignment`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare
from icl.analysis import tuning
from icl.precision import highest
from icl.tasks.base import Batch, check_inputs
from icl.tasks.kernel_gp import KERNELS, dot_product_kernel

LOG10_SCALE_RANGE = (-2.0, 1.0)  # exp functional GD: its bandwidth a in [0.01, 10]
COSINE_HELD = 0.95  # "the trained layer implements functional GD": prediction cosine >= this (verdict)


def _check_kind(kind: str) -> None:
    if kind not in KERNELS:
        raise ValueError(f"kernel_attention: kind must be one of {KERNELS}, got {kind!r}")


def _check_task(task) -> None:
    if getattr(task, "family", None) != "kernel_gp":
        raise ValueError(f"kernel_attention: needs a kernel_gp task, got {getattr(task, 'family', type(task).__name__)!r}")


@highest
def functional_gd_direction(x_ctx, y_ctx, x_query, kind: str, scale: float = 1.0) -> jax.Array:
    """g(x_q) = sum_i h(scale x_q . x_i) y_i for h = `kind`: [B, M] (one functional-GD step at rate 1)."""
    _check_kind(kind)
    x_ctx, y_ctx, x_query, _ = check_inputs(x_ctx, y_ctx, x_query)
    return jnp.einsum("bmn,bn->bm", dot_product_kernel(kind, x_query, x_ctx, scale), y_ctx)


def functional_gd(x_ctx, y_ctx, x_query, kind: str, scale: float = 1.0, eta: float = 1.0) -> jax.Array:
    """One functional-GD step in the RKHS of h(scale x . x'), from f = 0 at rate eta: [B, M]."""
    return eta * functional_gd_direction(x_ctx, y_ctx, x_query, kind, scale)


def optimal_eta(direction, y_query) -> float:
    """The eta minimising sum (eta g - y_q)^2 over all tasks and queries: sum g y / sum g^2."""
    g, y = np.asarray(direction, np.float64), np.asarray(y_query, np.float64)
    if g.shape != y.shape:
        raise ValueError(f"optimal_eta: direction {g.shape} and y_query {y.shape} must have the same shape")
    denom = float(np.sum(g * g))
    return float(np.sum(g * y) / denom) if denom > 0 else 0.0


def fit_functional_gd(batch: Batch, kind: str) -> tuple[float, float]:
    """(scale a, eta) of the functional-GD step of `kind` with the least loss on `batch`: eta in
    closed form (`optimal_eta`); a = 1 for the homogeneous "linear" and "relu" (a only rescales eta),
    for "exp" the a in 10^LOG10_SCALE_RANGE minimising the loss (`tuning.minimise_1d` over log10 a)."""
    _check_kind(kind)
    if kind != "exp":
        return 1.0, optimal_eta(functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, kind), batch.y_query)

    @jax.jit
    def loss(t, b):
        g = functional_gd_direction(b.x_ctx, b.y_ctx, b.x_query, kind, 10.0**t)
        eta = jnp.sum(g * b.y_query) / jnp.sum(g * g)
        return tuning.finite_or_inf(compare.loss(eta * g, b.y_query))

    t = tuning.minimise_1d(lambda t: loss(t, batch), *LOG10_SCALE_RANGE, n_grid=61)
    scale = float(10.0**t)
    return scale, optimal_eta(functional_gd_direction(batch.x_ctx, batch.y_ctx, batch.x_query, kind, scale), batch.y_query)


@highest
def gp_posterior_mean(x_ctx, y_ctx, x_query, kind: str, scale: float, ridge: float) -> jax.Array:
    """The GP posterior mean k_q^T (K + ridge I)^{-1} y with k = h(scale x . x') for h = `kind`: [B, M]
    (`ridge` = the label noise variance; the Bayes-optimal prediction for the kernel_gp prior)."""
    _check_kind(kind)
    x_ctx, y_ctx, x_query, _ = check_inputs(x_ctx, y_ctx, x_query)
    gram = dot_product_kernel(kind, x_ctx, x_ctx, scale) + ridge * jnp.eye(x_ctx.shape[1], dtype=x_ctx.dtype)[None]
    alpha = jnp.linalg.solve(gram, y_ctx[..., None])[..., 0]  # [B, N]
    return jnp.einsum("bmn,bn->bm", dot_product_kernel(kind, x_query, x_ctx, scale), alpha)


@highest
def conditional_mean(cov, y_ctx, noise_var: float) -> jax.Array:
    """E[y_q | y_ctx] for zero-mean Gaussian labels whose noiseless part has covariance `cov`
    [B, N + M, N + M] over (context, queries) and whose context labels carry noise of variance
    `noise_var`: C_qc (C_cc + noise_var I)^{-1} y_ctx, [B, M]."""
    n = y_ctx.shape[1]
    c_cc = cov[:, :n, :n] + noise_var * jnp.eye(n, dtype=cov.dtype)[None]
    alpha = jnp.linalg.solve(c_cc, y_ctx[..., None])[..., 0]  # [B, N]
    return jnp.einsum("bmn,bn->bm", cov[:, n:, :n], alpha)


def bayes_prediction(task, batch: Batch) -> jax.Array:
    """The Bayes-optimal prediction for a kernel_gp task: the conditional mean under the task's
    `label_covariance` of the N + M points (for "linear" and "exp" = `gp_posterior_mean` with the
    true kernel and ridge noise_std^2 + jitter; for "relu" under |K|, the paper's): [B, M]."""
    _check_task(task)
    x_all = jnp.concatenate([batch.x_ctx, batch.x_query], axis=1)
    return conditional_mean(task.label_covariance(x_all), batch.y_ctx, task.noise_std**2)


def cosine(a, b) -> float:
    """sum a b / sqrt(sum a^2 sum b^2) over all entries (uncentred), in float64."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cosine: shapes {a.shape} and {b.shape} differ")
    denom = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / denom) if denom > 0 else 0.0


def construction(d: int, kind: str, scale: float, eta: float) -> dict:
    """Weights of one 1-head LSA layer (key size = token width D = d + 1, the row-vector convention
    of `icl.models.lsa.AttentionLayer`) that computes `functional_gd(kind, scale, eta)`:
    query = [[scale I, 0], [0, 0]], key = [[I, 0], [0, 0]] (q . k_i = scale x_q . x_i),
    value = -eta e_D e_D^T (v_i = -eta y_i in the label slot), out = e_D e_D^T. {name: [1, D, D]}.
    (The layer's attention must be `kind`: the weights give the scores, the model applies h.)"""
    _check_kind(kind)
    dim = d + 1
    feature = np.zeros(dim)
    feature[:d] = 1.0
    label = np.zeros(dim)
    label[-1] = 1.0
    return {"query": (scale * np.diag(feature))[None], "key": np.diag(feature)[None],
            "value": (-eta * np.diag(label))[None], "out": np.diag(label)[None]}


def weight_alignment(layer: dict, d: int) -> dict:
    """How far a trained 1-layer LSA's weights {query, key, value, out} [H, D, k] are from the
    construction's structure, head-summed maps S = sum_h W_Q^h W_K^h^T and c = sum_h W_V^h W_O^h[:, -1]:
      score_cos   <S[:d, :], [I_d | 0]> / (|S[:d, :]| sqrt(d)): 1 iff the query's x block scores the
                  keys by a x_q . x_i with a > 0 only (S_xx = a I, no y_i in the score); -1 at a < 0
      score_a     trace(S_xx) / d, the bandwidth a
      value_cos   -c_D / |c|: 1 iff the value path writes -eta y_i (eta > 0) into the label slot and
                  nothing from x_i; -1 at eta < 0
      eta_a       -c_D * a: the step's eta times a (for a homogeneous h, the eta of functional_gd at scale 1)."""
    q, k, v, o = (np.asarray(layer[n], np.float64) for n in ("query", "key", "value", "out"))
    s = np.einsum("hdk,hek->de", q, k)  # [D, D]: q . k = e_q S e_i^T
    c = np.einsum("hdk,hk->d", v, o[:, :, -1])  # [D]: label-slot update per unit attention weight
    target = np.zeros((d, s.shape[1]))
    target[:, :d] = np.eye(d)
    rows = s[:d]
    norm_s, norm_c = float(np.linalg.norm(rows)), float(np.linalg.norm(c))
    a = float(np.trace(s[:d, :d]) / d)
    return {
        "score_cos": float(np.sum(rows * target) / (norm_s * np.sqrt(d))) if norm_s > 0 else 0.0,
        "score_a": a,
        "value_cos": float(-c[-1] / norm_c) if norm_c > 0 else 0.0,
        "eta_a": float(-c[-1] * a),
    }


def loss(y_hat, y_query) -> float:
    """1/2 mean (y_hat - y_q)^2 (the repo's loss), in float64."""
    y_hat, y = np.asarray(y_hat, np.float64), np.asarray(y_query, np.float64)
    return float(0.5 * np.mean((y_hat - y) ** 2))


def predictors(task, validation: Batch, batch: Batch) -> tuple[dict, dict]:
    """({name: predictions [B, M] on `batch`}, {kind: {"scale", "eta"}}): the functional-GD step of
    every h in KERNELS (fitted on `validation`: "fgd_<h>"), the step with the data's own kernel and
    bandwidth ("fgd_data", eta fitted: for the homogeneous kernels the same as fgd_<kernel>), the GP
    posterior mean ("bayes") and zero."""
    _check_task(task)
    fitted, out = {}, {}
    for kind in KERNELS:
        scale, eta = fit_functional_gd(validation, kind)
        fitted[kind] = {"scale": scale, "eta": eta}
        out[f"fgd_{kind}"] = functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, kind, scale, eta)
    # the step in the RKHS of the data's own kernel (its bandwidth, not a fitted one; eta closed-form)
    g = functional_gd_direction(validation.x_ctx, validation.y_ctx, validation.x_query, task.kernel, task.kernel_scale)
    fitted["data"] = {"kind": task.kernel, "scale": float(task.kernel_scale), "eta": optimal_eta(g, validation.y_query)}
    out["fgd_data"] = functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, task.kernel, task.kernel_scale, fitted["data"]["eta"])
    out["bayes"] = bayes_prediction(task, batch)
    out["zero"] = jnp.zeros_like(batch.y_query)
    return out, fitted


def matched_wins(losses: dict, kinds=KERNELS) -> dict:
    """For one data kernel: {h: [loss per seed]} -> {"best": the h of least seed-mean loss,
    "separated": {h': the matched model's worst seed below every seed of h'} for h' != the data kernel}.
    `losses` also carries "data" (the data kernel)."""
    data = losses["data"]
    means = {h: float(np.mean(losses[h])) for h in kinds}
    best = min(means, key=means.get)
    separated = {h: bool(max(losses[data]) < min(losses[h])) for h in kinds if h != data}
    return {"best": best, "means": means, "separated": separated}


def paired_difference(a, b) -> dict:
    """{"mean", "se"} of the per-task difference a - b [tasks] (the same tasks): its mean and standard error."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return {"mean": float(diff.mean()), "se": float(diff.std() / np.sqrt(diff.size))}


def verdict(rows: dict, cosines: dict) -> str:
    """The rule, fixed before the full run. `rows`: {data kernel: `matched_wins` result};
    `cosines`: {data kernel: [per seed: prediction cosine of the matched trained layer with the
    fitted functional-GD step of its own h]}, on the same held-out tasks:
      "held"          in every row of the 3 x 3 grid the matched h has the least seed-mean loss AND
                      its worst seed is below every seed of both mismatched h ("separated"), AND
                      every matched layer's seed-mean prediction cosine with its own functional-GD
                      construction is >= COSINE_HELD;
      "did not hold"  the matched h has the least seed-mean loss in at most one of the three rows;
      "held in part"  otherwise."""
    wins = [r["best"] == data for data, r in rows.items()]
    if sum(wins) <= 1:
        return "did not hold"
    clean = all(w and all(rows[data]["separated"].values()) for w, data in zip(wins, rows, strict=True))
    if clean and all(float(np.mean(c)) >= COSINE_HELD for c in cosines.values()):
        return "held"
    return "held in part"


_PREDICTORS: dict = {}  # summarise's last (test batch, predictions, fitted) per task and held-out sets


def summarise(config, summary: dict, params: dict, n_validation: int = 20000) -> dict:
    """One run's numbers on its final held-out tasks (the count of summary.json): every functional-GD
    step fitted on `n_validation` validation tasks (`HeldOut.TUNE`), the GP posterior mean, and per
    seed the model's loss, its prediction cosine with each predictor and its weight alignment."""
    from icl import runs, train
    from icl.distributed import to_host

    task = config.task
    _check_task(task)
    memo = (task, config.train.eval_seed, n_validation, config.train.final_eval_tasks, bool(jax.config.jax_enable_x64))
    if memo not in _PREDICTORS:  # the runs of one data kernel share their held-out tasks and predictors
        validation = task.sample(train.heldout_key(config, train.HeldOut.TUNE), n_validation)
        batch = task.sample(train.heldout_key(config, train.HeldOut.FINAL), config.train.final_eval_tasks)
        _PREDICTORS.clear()
        _PREDICTORS[memo] = (batch, *predictors(task, validation, batch))
    batch, preds, fitted = _PREDICTORS[memo]
    base_loss = {name: loss(p, batch.y_query) for name, p in preds.items()}
    spec = train.model_spec(config)
    predict = jax.jit(highest(lambda p, b: spec.predictor(p)(b.x_ctx, b.y_ctx, b.x_query)))
    seeds, per_task = [], []
    for p in runs.unstack_seeds(params, config.train.n_seeds):
        y_hat = to_host(predict(p, batch))
        layer = {n: to_host(p["layers"][0][n]) for n in ("query", "key", "value", "out")}
        per_task.append(np.mean((np.asarray(y_hat, np.float64) - np.asarray(batch.y_query, np.float64)) ** 2, axis=-1) / 2)
        seeds.append({"loss": loss(y_hat, batch.y_query),
                      "cos": {name: cosine(y_hat, pr) for name, pr in preds.items() if name != "zero"},
                      "weights": weight_alignment(layer, task.d)})
    h = config.model.attention
    return {
        "data": task.kernel, "attention": h, "n_tasks": int(batch.batch_size), "n_validation": n_validation,
        "fitted": fitted,
        "baselines": {"loss": base_loss,
                      "cos_to_bayes": {name: cosine(p, preds["bayes"]) for name, p in preds.items() if name.startswith("fgd_")}},
        "model": {
            "loss": runs.stats([s["loss"] for s in seeds]),
            "cos_own_fgd": runs.stats([s["cos"][f"fgd_{h}"] for s in seeds]),
            "cos": {name: runs.stats([s["cos"][name] for s in seeds]) for name in seeds[0]["cos"]},
            "over_own_fgd": runs.stats([s["loss"] / base_loss[f"fgd_{h}"] for s in seeds]),
            "over_bayes": runs.stats([s["loss"] / base_loss["bayes"] for s in seeds]),
            "weights": {k: runs.stats([s["weights"][k] for s in seeds]) for k in seeds[0]["weights"]},
        },
        "train_wall_s": summary.get("wall_s"),
        # per-task losses [tasks] (not JSON: the driver pops them): the model's seed mean, each predictor's
        "_per_task": {"model": np.mean(per_task, axis=0),
                      **{name: np.mean((np.asarray(p, np.float64) - np.asarray(batch.y_query, np.float64)) ** 2, axis=-1) / 2
                         for name, p in preds.items()}},
    }
