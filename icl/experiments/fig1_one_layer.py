"""Figure 1 (von Oswald et al. 2023, Fig. 2): one trained LSA layer vs one step of gradient descent.

fig1_one_layer — paper_1layer (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I), no noise, Adam 1e-3,
b2 0.98) for 5 seeds, 5,000 steps of batch 2048; trained in pieces (`piece_steps`) to evaluate the
model interpolated halfway to the GD construction over training, then swept over test input scales
alpha in `ALPHAS` (icl.analysis.interpolation).
  command:  python paper_figures/fig1_one_layer.py [--quick]   (or `icl train fig1_one_layer [--quick]`)
  runtime:  full ~31 min on a 2-core CPU (1,862 s, incl. the pieces); quick (1,000 steps of batch
            512, 2 seeds) ~1 min
  numbers:  10,000 held-out tasks: GD at the optimal eta (6.07) 0.2045, trained 0.2048,
            interpolated 0.2046, zero 0.412; model_cos 0.9993, model_diff 0.084, preds_diff 0.0196;
            every seed within 5 % of GD at step 400; trained = GD for alpha in [0.5, 2]
            (8.41 vs 8.53 at alpha = 2)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled

STUDY = "fig1_one_layer"
ALPHAS = np.linspace(0.5, 2.0, 7)  # input scale of the out-of-distribution sweep

QUICK = TrainConfig(steps=1000, batch_size=512, n_seeds=2, eval_every=50, ckpt_every=1000,
                    eval_tasks=1024, final_eval_tasks=2000)
FIG1_ONE_LAYER = register(
    dataclasses.replace(PAPER_1LAYER, name=STUDY, train=dataclasses.replace(PAPER_1LAYER.train, n_seeds=5)),
    quick=QUICK, study=STUDY,
)


def config(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The study's one run in `mode` (registry.scaled)."""
    return scaled(FIG1_ONE_LAYER, QUICK, mode=mode, steps=steps, batch_size=batch_size)


def piece_steps(config: ExperimentConfig) -> list[int]:
    """Steps where the interpolated model is evaluated: every 100 up to 1,000 (the plateau and the
    drop), then every 500, and the last step."""
    end = config.train.steps
    dense = list(range(0, min(end, 1000) + 1, 100))
    return sorted(set(dense + list(range(1000, end + 1, 500)) + [end]))
