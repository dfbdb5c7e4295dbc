"""Which learner does a trained causal layer match, and from which prefix length on?

Shapes: B tasks, T positions, d input dimension. Position t (0-based) is predicted from the t
pairs before it (`icl.analysis.prefix_curves`).

A causal layer with fixed weights cannot divide by the prefix length, so the learners it can
compute exactly have a fixed output scale c (`icl.models.linear_attention`, "Construction"):

    decayed GD (c, gamma):   y_hat_t = c sum_{j < t} gamma^(t-1-j) y_j (x_j . x_t)
        gamma = 1: one GD step from w = 0 with rate c t on the t pairs ("GD, fixed scale"),
        gamma < 1: exponentially weighted GD (`solvers.weighted_gd`, rate c t);
    online SGD (beta):       y_hat_t = w_t . x_t,  w_j = w_{j-1} - beta (w_{j-1} . x_j - y_j) x_j
        (`solvers.online_sgd`, the delta rule's learner).

`fit_learners` fits each one's free numbers to a model's predictions on half of the tasks (c in
closed form, c* = <m, g> / <g, g> for the unscaled predictions g; gamma and beta on a grid) and
`match` measures every learner against the model on the other half, per position: the mean
squared difference of the predictions (`preds_diff`, half of it as `icl.compare`'s) and their
cosine over tasks (`prefix_curves.position_cosine`). The best match is the learner with the
smallest mean difference past position 0; it "matches from" the first position k after which
the cosine stays >= `threshold`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icl import solvers
from icl.analysis.prefix_curves import learner_predictions, position_cosine

DECAYS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0)
SGD_STEPS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)  # x 1 / d


def decayed_gd(x: jax.Array, y: jax.Array, decay: float) -> jax.Array:
    """[B, T]: sum_{j < t} decay^(t-1-j) y_j (x_j . x_t), decayed GD at c = 1."""
    t = x.shape[1]
    pos = jnp.arange(t)
    lag = pos[:, None] - 1 - pos[None, :]  # [T, T]: t - 1 - j
    weights = jnp.where(lag >= 0, jnp.asarray(decay, x.dtype) ** jnp.maximum(lag, 0), 0.0)  # [T, T]
    gram = jnp.einsum("btd,bjd->btj", x, x)  # [B, T, T]
    return jnp.einsum("btj,tj,bj->bt", gram, weights.astype(x.dtype), y)


def online_sgd(x: jax.Array, y: jax.Array, lr: float) -> jax.Array:
    """[B, T]: position t by one pass of online SGD (step lr) over the t pairs before it; 0 at t = 0."""
    return learner_predictions(lambda xc, yc, xq, mask=None: solvers.online_sgd(xc, yc, xq, lr=lr, mask=mask), x, y)


def best_scale(model: jax.Array, base: jax.Array) -> float:
    """c minimising sum (model - c base)^2 over tasks and positions."""
    den = float(jnp.sum(base * base))
    return float(jnp.sum(model * base)) / den if den > 0 else 0.0


def fit_learners(model: jax.Array, x: jax.Array, y: jax.Array) -> dict[str, dict]:
    """{learner: {hyper-parameters}} fitted to the model's predictions [B, T] (module docstring):
    "gd_fixed_scale" (c), "weighted_gd" (c, gamma on `DECAYS`), "online_sgd" (beta on
    `SGD_STEPS` / d)."""
    d = x.shape[-1]
    fits = {}
    plain = decayed_gd(x, y, 1.0)
    fits["gd_fixed_scale"] = {"scale": best_scale(model, plain), "decay": 1.0}
    best = None
    for decay in DECAYS:
        base = decayed_gd(x, y, decay)
        scale = best_scale(model, base)
        err = float(jnp.mean((model - scale * base) ** 2))
        if best is None or err < best[0]:
            best = (err, {"scale": scale, "decay": decay})
    fits["weighted_gd"] = best[1]
    errs = {lr: float(jnp.mean((model - online_sgd(x, y, lr / d)) ** 2)) for lr in SGD_STEPS}
    fits["online_sgd"] = {"lr": min(errs, key=errs.get) / d}
    return fits


def fitted_predictions(fits: dict[str, dict], x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """The fitted learners' predictions [B, T] on (x, y)."""
    out = {}
    for name, hp in fits.items():
        if name == "online_sgd":
            out[name] = online_sgd(x, y, hp["lr"])
        else:
            out[name] = hp["scale"] * decayed_gd(x, y, hp["decay"])
    return out


def matched_from(cosine: np.ndarray, threshold: float) -> int | None:
    """The first position k >= 1 from which cosine[k:] >= threshold throughout (None if none)."""
    ok = np.asarray(cosine) >= threshold
    for k in range(1, len(ok)):
        if ok[k:].all():
            return k
    return None


def match(model: jax.Array, learners: dict[str, jax.Array], threshold: float = 0.95) -> dict:
    """Per learner: preds_diff and cosine at every position, their means past position 0, the
    position it matches from; and the best match (smallest mean preds_diff)."""
    rows = {}
    for name, pred in learners.items():
        diff = np.asarray(jnp.mean((model - pred) ** 2, axis=0))  # [T]
        cos = position_cosine(model, pred)
        rows[name] = {"preds_diff": diff.tolist(), "cosine": cos.tolist(), "mean_preds_diff": float(diff[1:].mean()),
                      "mean_cosine": float(cos[1:].mean()), "matched_from": matched_from(cos, threshold)}
    best = min(rows, key=lambda n: rows[n]["mean_preds_diff"]) if rows else None
    return {"learners": rows, "best": best, "threshold": threshold}
