"""Claim 3 (Akyürek et al. 2022, Sec. 4): with depth and label noise, trained in-context learners move
from GD-like to ridge / least squares.

claim3_s<sigma>_L<L>: pure linear-attention (LSA) stacks of L = 1, 2, 4 unshared layers on d = 8,
N = 16 linear tasks, x ~ N(0, I_8), w ~ N(0, I_8), label noise sigma in NOISES; paper_1layer's
model and optimiser (init 0.002, Adam b2 0.98, clip 1), lr 1e-3 and for L = 4 figure 2's deep-stack
lr 5e-4; 5 seeds, 5,000 steps of batch 512. No activation clipping: figure 2's clip of 10 would cut
labels here (y has std sqrt(8) ~ 2.8), and the unclipped stack is exactly linear in the query (so
its implicit weights are exact). sigma = 1 rather than 0.5: at d = 8, N = 16, tau = 1, ridge and
least squares differ by SPD 0.02 at sigma = 0.5 (too close to tell apart from a model's distance to
either), 0.25 at sigma = 1. The measurements: `icl.analysis.algorithm_fits`.

  command:  python paper_figures/claim3_algorithm_transition.py [--quick]
            (one run: icl train claim3_s1_L4 [--quick]; intermediate: --steps 4000 --batch-size 256)
  runtime:  full 6 runs x 5 seeds x 5,000 steps of batch 512: 13.5 min of training per noise level on
            the shared 2-core CPU (load ~15; L = 4: 9.7 steps/s), evaluation 1 min; quick (600 steps
            of batch 256, 2 seeds) 4.3 min from scratch under load ~15 (64 s of CPU time)
  numbers:  paper_figures/claim3_algorithm_transition.json: per noise level and depth, SPD and ILWD
            of every seed to GD (1 step, L steps), ridge at lam = sigma^2 / tau^2 and least squares,
            the closest algorithm, the best-fitting ridge lam; and the algorithms' own distances.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from icl import tasks
from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled

STUDY = "claim3_algorithm_transition"
D, N_CTX = 8, 16
NOISES = (0.0, 1.0)
DEPTHS = (1, 2, 4)
N_PROBE = 64  # probe queries per held-out context (8 x d)
LAM_GRID = np.concatenate([[0.0], np.logspace(-2, 1.5, 36)])  # for each model's best-fitting ridge lam
PLATEAU = 0.75  # a seed whose final loss is above PLATEAU x the zero predictor's never left the initial plateau

FULL = TrainConfig(steps=5000, batch_size=512, n_seeds=5, eval_every=100, ckpt_every=500, eval_tasks=1024,
                   final_eval_tasks=2000)
QUICK = TrainConfig(steps=600, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=600, eval_tasks=512,
                    final_eval_tasks=1000)


def task(noise: float):
    """Linear tasks, d = 8, N = 16, x ~ N(0, I), w ~ N(0, I), label noise std `noise`."""
    return tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", noise_std=noise)


def full_config(noise: float, depth: int) -> ExperimentConfig:
    """Full mode: an unshared LSA stack of `depth` layers on the tasks with label noise `noise`."""
    model = dataclasses.replace(PAPER_1LAYER.model, n_layers=depth, shared=False)
    optim = dataclasses.replace(PAPER_1LAYER.optim, lr=5e-4 if depth > 3 else 1e-3)
    against = ("gd", "least_squares") + (("bayes_ridge",) if noise > 0 else ())
    return dataclasses.replace(PAPER_1LAYER, name=f"claim3_s{noise:g}_L{depth}", task=task(noise), model=model,
                               optim=optim, train=FULL, compare_against=against)


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[float, dict[int, ExperimentConfig]]:
    """{noise: {depth: config}} of the script's runs in `mode` ("full" or "quick"; steps / batch_size:
    an intermediate full run)."""
    return {noise: {depth: scaled(full_config(noise, depth), QUICK, mode=mode, steps=steps, batch_size=batch_size)
                    for depth in DEPTHS} for noise in NOISES}


for _noise in NOISES:
    for _depth in DEPTHS:
        register(full_config(_noise, _depth), quick=QUICK, study=STUDY)
