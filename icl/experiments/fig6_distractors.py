"""Figure 6: noisy contexts / distractors. One trained LSA layer vs GD vs ridge when some context
labels are pure noise.

fig6_distractors_k<n>, n in DISTRACT: task family `linear_distractors` (the official code's
`size_distract`), the paper's linear setup (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I)) with n of
the N context labels replaced by N(0, 1) noise independent of x; paper_1layer's model, optimiser and
training (5,000 steps of batch 2048) with 5 seeds. Compared with one GD step at the optimal eta, least
squares, ridge at the lam of LAMS best on validation tasks (`icl.analysis.tuning`) and an oracle
that knows which labels are noise (`icl.analysis.distractors`).

  command:  python paper_figures/fig6_distractors.py [--quick]    (one run: icl train fig6_distractors_k2 [--quick])
  runtime:  full 3 runs x 5 seeds x 5,000 steps ~65 min on the shared 2-core CPU; quick (1,000 steps
            of batch 512, 2 seeds) ~2 min
  numbers:  paper_figures/fig6_distractors.json (full mode, 10,000 held-out tasks): n = 0, 2, 4
            distractors: trained 0.204 / 0.256 / 0.315 ~ GD 0.204 / 0.255 / 0.315 (model_cos 0.999);
            tuned ridge 2e-9 / 0.225 / 0.312; oracle least squares 2e-9 / 0.083 / 0.169.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from icl import tasks
from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled

STUDY = "fig6_distractors"
DISTRACT = (0, 2, 4)  # corrupted context labels out of N = 10
LAMS = np.concatenate([[0.0], np.logspace(-3, 2, 16)])  # ridge grid (lam on the unnormalised X^T X; 0 = least squares)

FULL = dataclasses.replace(PAPER_1LAYER.train, n_seeds=5)
QUICK = TrainConfig(steps=1000, batch_size=512, n_seeds=2, eval_every=100, ckpt_every=1000, eval_tasks=1024,
                    final_eval_tasks=4000)


def full_config(n_distract: int) -> ExperimentConfig:
    """Full mode: one LSA layer on linear tasks with `n_distract` noise labels among the N = 10."""
    task = tasks.get("linear_distractors", d=10, n_ctx=10, input_dist="uniform", input_range=0.5,
                     n_distract=n_distract, distractor_std=1.0)
    return dataclasses.replace(PAPER_1LAYER, name=f"{STUDY}_k{n_distract}", task=task, train=FULL,
                               compare_against=("gd", "least_squares"))


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """One run per n_distract in DISTRACT, in `mode` ("full" or "quick"; steps / batch_size: an
    intermediate full run)."""
    return [scaled(full_config(k), QUICK, mode=mode, steps=steps, batch_size=batch_size) for k in DISTRACT]


def ridge_grid() -> list[dict]:
    """The lam settings of ridge searched on validation tasks."""
    return [{"lam": float(lam)} for lam in LAMS]


for _k in DISTRACT:
    register(full_config(_k), quick=QUICK, study=STUDY)
