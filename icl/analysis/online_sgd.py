"""One-pass online SGD on the context: the order-sensitive counterpart of one full-batch GD step.

From w_0 = 0, one example at a time in the given order,
    w_i = w_{i-1} - alpha (w_{i-1} . x_i - y_i) x_i,   i = 1..N,      y_hat = w_N . x_q.
Expanding in alpha, w_N = alpha sum_i y_i x_i + O(alpha^2): at the matched step alpha = eta / N the
first-order term is one GD step with rate eta on L(w) = 1/(2N) sum_i (w . x_i - y_i)^2 (paper
convention), which is symmetric in the context pairs; the O(alpha^2) terms
-alpha^2 sum_{j<i} (x_j . x_i) y_j x_i depend on the order, and later examples are overwritten
less (recency).

The learner is the solver `icl.solvers.online.online_sgd` (registered as "online_sgd", with a mask
for every-prefix evaluation); this module re-exports it and adds the predictors at a given step.
"""

from __future__ import annotations

from icl.compare import Predictor
from icl.solvers.online import online_sgd  # the learner itself (also the registered solver "online_sgd")

__all__ = ["at_step", "matched_online_sgd", "online_sgd"]


def at_step(lr: float) -> Predictor:
    """`online_sgd` with step `lr`, as a predictor (x_ctx, y_ctx, x_query) -> [B, M]."""
    return lambda xc, yc, xq: online_sgd(xc, yc, xq, lr)


def matched_online_sgd(eta: float, n_ctx: int) -> Predictor:
    """Online SGD at the step matched to one GD step with rate eta: alpha = eta / N."""
    return at_step(eta / n_ctx)
