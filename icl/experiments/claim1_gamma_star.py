"""Claim 1: the optimal one-layer LSA is one preconditioned GD step with
Gamma* = ((N + 1) Sigma + (tr Sigma + sigma^2 / tau^2) I)^-1 (Ahn et al. 2023; Mahankali et al. 2023;
Zhang, Frei, Bartlett 2024), and a trained layer converges to it.

claim1_gamma_star_<setting> — one LSA layer (init 0.02) on linear tasks, d = 5, N = 20,
    x ~ N(0, Sigma); Adam 3e-3 (b2 0.98, clip 1) with a cosine decay to 0 (the weights settle at
    the optimum instead of jittering around it); 5 seeds, 20,000 steps of batch 2048; compared with
    GD, preconditioned GD and least squares. Settings (`SETTINGS`): isotropic; diagonal, condition
    number 20; Haar-rotated, condition number 20; rotated with label noise sigma = 2.
    Analysis (distances to Gamma*, rank-one share, the context-length shift to `TEST_LENGTHS`):
    icl.analysis.gamma_star and icl.analysis.length_shift.
  command:  python paper_figures/claim1_gamma_star.py [--quick]   (`icl train claim1_gamma_star_rotated`)
  runtime:  full ~19 min of training on a 2-core CPU (200-470 s a setting); quick (2,000 steps of
            batch 512, 2 seeds) ~2 min
  numbers:  ||Gamma - Gamma*|| / ||Gamma*|| of the converged seeds 0.002-0.008 (all 5 isotropic
            seeds; 2, 3 and 3 of 5 in the others, the rest stalled at ~0.83); loss at N = 20:
            isotropic 0.587 vs Gamma* 0.577 (closed form)
"""

from __future__ import annotations

import numpy as np

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim1_gamma_star"
D, N_CTX = 5, 20
SETTINGS = {
    "isotropic": dict(),
    "diagonal": dict(covariance="diagonal", condition_number=20.0),
    "rotated": dict(covariance="rotated", condition_number=20.0),
    "rotated_noisy": dict(covariance="rotated", condition_number=20.0, noise_std=2.0),
}
TEST_LENGTHS = (5, 10, 20, 40, 80)  # context lengths N' of the length shift
N_PIECES = 8  # points on the Gamma-distance-over-training curve
QUICK = TrainConfig(steps=2000, batch_size=512, n_seeds=2, eval_every=100, ckpt_every=500,
                    eval_tasks=1024, final_eval_tasks=4000)


def _config(setting: str) -> ExperimentConfig:
    return ExperimentConfig(
        name=f"{STUDY}_{setting}",
        task=tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", **SETTINGS[setting]),
        model=ModelConfig(n_layers=1, attention="linear", init_scale=0.02),
        optim=OptimConfig(name="adam", lr=3e-3, b2=0.98, grad_clip=1.0, schedule="cosine"),
        train=TrainConfig(steps=20000, batch_size=2048, n_seeds=5, eval_every=250, ckpt_every=2500,
                          eval_tasks=2048, final_eval_tasks=10000),
        compare_against=("gd", "preconditioned_gd", "least_squares"),
    )


CONFIGS = {setting: register(_config(setting), quick=QUICK, study=STUDY) for setting in SETTINGS}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """One run per setting, in `mode` (registry.scaled)."""
    return [scaled(c, QUICK, mode=mode, steps=steps, batch_size=batch_size) for c in CONFIGS.values()]


def setting_of(config: ExperimentConfig) -> str:
    return config.name.removeprefix(STUDY + "_")


def piece_steps(config: ExperimentConfig) -> list[int]:
    """`N_PIECES` log-spaced points of training, multiples of eval_every (where train.train can stop)."""
    every, total = config.train.eval_every, config.train.steps
    raw = np.geomspace(every, total, N_PIECES)
    return sorted({int(round(s / every)) * every for s in raw} | {total})
