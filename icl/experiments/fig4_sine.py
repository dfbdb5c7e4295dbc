"""Figure 4 (von Oswald et al. 2023, Sec. 4 and Fig. 5): sine regression with a learned input
embedding. Does a transformer trained end to end do GD on the features it learns?

Task `sine` with the official code's prior, y = A sin(x + phi), A ~ U(0.1, 0.5), phi ~ U(0, pi),
x ~ U(-5, 5), N = 10 (amplitude and phase independent, unlike the official code; see
icl/tasks/sine.py). Two models, both a 2-layer GELU MLP embedding x -> 40 features (hidden 160)
followed by one linear self-attention layer on tokens [f(x_i), y_i]; Adam 1e-3, batch 2048, 5 seeds:
  fig4_sine_trained_tf    everything trained end to end (attention init VarianceScaling(0.02), ten
                          times the official 0.002, which shortens the loss plateau; docs/math.md);
  fig4_sine_gd_features   attention frozen to the GD construction (ModelConfig.frozen_gd_lr, rate 1;
                          the embedding's scale absorbs the step size), so only the embedding
                          learns: one GD step on meta-learned features, the paper's comparison model.
The measurements: `icl.analysis.features` and kernel ridge tuned by `icl.analysis.tuning`.

  command:  python paper_figures/fig4_sine.py [--quick]     (one run: icl train fig4_sine_trained_tf [--quick])
  runtime:  full 20,000 steps (the official notebook's) of batch 2048, 5 seeds, both models; the
            intermediate --steps 3000 --batch-size 256 ~15 min on the shared 2-core CPU; quick (600
            steps of batch 128, 2 seeds) ~1 min
  numbers:  paper_figures/fig4_sine.json (full mode: trained TF 0.00274 vs GD on learned features
            0.00250, model_cos 0.945), with GD on the TF's own features, least squares on each
            model's features and RBF kernel ridge on x.
"""

from __future__ import annotations

import dataclasses
import math

from icl import tasks
from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "fig4_sine"
INIT_SCALE = 0.02  # attention init; the official 0.002 gives a long plateau (docs/math.md), 0.02 shortens it
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)  # the RBF kernel ridge validation grid
KERNEL_LAMS = (1e-4, 1e-3, 1e-2, 1e-1)

FULL = TrainConfig(steps=20000, batch_size=2048, n_seeds=5, eval_every=100, ckpt_every=500, eval_tasks=2048,
                   final_eval_tasks=10000)
QUICK = TrainConfig(steps=600, batch_size=128, n_seeds=2, eval_every=100, ckpt_every=600, eval_tasks=1024,
                    final_eval_tasks=4000)
TASK = tasks.get("sine", n_ctx=10, amplitude_range=(0.1, 0.5), phase_range=(0.0, math.pi), input_range=5.0)


def full_config(frozen: bool) -> ExperimentConfig:
    """Full mode: the end-to-end trained TF, or (frozen) GD on learned features."""
    model = ModelConfig(n_layers=1, embed_dim=40, embed_hidden=160, init_scale=INIT_SCALE, frozen_gd_lr=1.0 if frozen else 0.0)
    name = f"{STUDY}_{'gd_features' if frozen else 'trained_tf'}"
    return dataclasses.replace(PAPER_1LAYER, name=name, task=TASK, model=model, train=FULL,
                               compare_against=("kernel_ridge", "gd"))


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """[trained TF, GD on learned features] in `mode` ("full" or "quick"; steps / batch_size: an
    intermediate full run)."""
    return [scaled(full_config(frozen), QUICK, mode=mode, steps=steps, batch_size=batch_size) for frozen in (False, True)]


def kernel_grid() -> list[dict]:
    """The (bandwidth, lam) settings of kernel ridge searched on validation tasks."""
    return [{"bandwidth": h, "lam": lam} for h in BANDWIDTHS for lam in KERNEL_LAMS]


for _frozen in (False, True):
    register(full_config(_frozen), quick=QUICK, study=STUDY)
