"""Figure 5 (von Oswald et al. 2023, Sec. 4 and Figs. 6-7): "classic" tokens, x_i and y_i in tokens
of their own; a first softmax layer can learn to copy y_i next to x_i, then a linear layer do GD.

fig5_classic_tokens — paper_1layer's task (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I), no noise);
    ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=10,
    init_scale=0.2), Adam 1e-3 (b2 0.98, clip 1); 5 seeds, 20,000 steps of batch 2048; compared
    with one GD step and least squares. The first layer's token sensitivities and copy score:
    icl.analysis.token_copy.
  command:  python paper_figures/fig5_classic_tokens.py [--quick]
            python paper_figures/fig5_classic_tokens.py --steps 5000 --batch-size 256  (an intermediate run)
  runtime:  full ~1.6 h of training on a 2-core CPU (5,745 s, 3.5 steps/s); quick (2,000 steps of
            batch 256, 2 seeds) ~2 min
  numbers:  10,000 held-out tasks: trained 0.171 < one GD step 0.2045 (eta 6.07), zero 0.412;
            model_cos 0.951 vs GD; copy score 0.10 at initialisation (1/N = none) -> 0.41 trained
"""

from __future__ import annotations

import dataclasses

from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "fig5_classic_tokens"
MODEL = ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=10, init_scale=0.2)
OPTIM = OptimConfig(name="adam", lr=1e-3, b1=0.9, b2=0.98, grad_clip=1.0)
QUICK = TrainConfig(steps=2000, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=1500,
                    eval_tasks=1024, final_eval_tasks=4000)

FIG5_CLASSIC_TOKENS = register(
    dataclasses.replace(
        PAPER_1LAYER, name=STUDY, model=MODEL, optim=OPTIM, compare_against=("gd", "least_squares"),
        train=TrainConfig(steps=20000, batch_size=2048, n_seeds=5, eval_every=100, ckpt_every=1000,
                          eval_tasks=2048, final_eval_tasks=10000),
    ),
    quick=QUICK, study=STUDY,
)


def config(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The study's one run in `mode` (registry.scaled)."""
    return scaled(FIG5_CLASSIC_TOKENS, QUICK, mode=mode, steps=steps, batch_size=batch_size)
