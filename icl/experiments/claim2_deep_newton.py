"""Claim 2: deeper LSA learns preconditioned / higher-order methods (Ahn et al. 2023; Fu et al. 2023).

Sub-claims: (a) Fu et al. 2023: the read-out after layer l best matches Newton-Schulz iteration
k_N(l), linear in l; (b) Fu et al.: the matching GD step count k_GD(l) grows much faster
(exponentially) in l, also for ill-conditioned inputs; (c) Ahn et al. 2023: every layer's
preconditioner is proportional to Sigma^-1 for inputs x ~ N(0, Sigma). The measurements are
`icl.analysis.layer_matching` (residual similarity of layers and solver steps, the fits) and
`icl.analysis.lsa_weights` (the layers' preconditioners Gamma_l).

Setup. Linear tasks y = w . x, w ~ N(0, I_d), no noise, d = 5, N = 20 context points, inputs
x ~ N(0, Sigma) with Sigma = Q diag(lambda) Q^T (Q a fixed random rotation, lambda geometric from
kappa to 1, tr Sigma = d), for kappa in KAPPAS. One pure linear LSA stack per kappa (L = 5 separate
layers, 1 head, key size D = d + 1, init 0.002) with the recipe that keeps deep stacks stable in
fig2_depth: Adam lr 5e-4, b2 0.98, clip 1.0, activations clipped to 10; 5 seeds. Evaluation on
held-out tasks with 16 queries each (n_query raised for evaluation only); Newton-Schulz iterations
0..K_NEWTON, GD (per-task step N / lambda_max(X^T X)) on the log grid GD_STEPS; a layer's argmax
match counts in the "reliable" fit only where its best similarity reaches SIM_MIN = 0.5 (a
threshold chosen after seeing the data).

  command:  python paper_figures/claim2_deep_newton.py [--quick]
            (full: 3 kappas x 5 seeds x 5,000 steps of batch 1024; the intermediate run recorded:
            --steps 5000 --batch-size 512; quick: kappas 1, 50, 600 steps of batch 256, 2 seeds)
  runtime:  on the shared 2-core CPU (load ~13-17): --quick from scratch 2.6 min wall (53 s CPU);
            the intermediate setting ~45 min of training (two runs at a time, ~3 steps/s each)
            plus 1.5 min of evaluation; the full mode, twice the tasks per step, was not run.
  numbers:  paper_figures/claim2_deep_newton.json (per kappa: the similarity matrices, k*(l) and
            their slopes, the loss-matched steps, cos(Gamma_l, Sigma^-1) and cos(Gamma_l, I)).
"""

from __future__ import annotations

import numpy as np

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim2_deep_newton"
D, N_CTX, N_LAYERS, N_QUERY_EVAL = 5, 20, 5, 16
KAPPAS = (1.0, 10.0, 50.0)
QUICK_KAPPAS = (1.0, 50.0)
SIM_MIN = 0.5  # a layer's argmax counts as a match only if its best similarity reaches this (chosen after seeing the data)
K_NEWTON = 24  # Newton-Schulz iterations 0..K_NEWTON
GD_STEPS = tuple(int(k) for k in np.unique(np.round(np.geomspace(1, 2048, 34)).astype(int)))

QUICK = TrainConfig(steps=600, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=600,
                    eval_tasks=512, final_eval_tasks=1000)


def config(kappa: float) -> ExperimentConfig:
    """Full mode: a 5-layer linear LSA stack on rotated-Gaussian linear tasks with condition number kappa."""
    task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=kappa)
    model = ModelConfig(n_layers=N_LAYERS, shared=False, n_heads=1, key_size=0, attention="linear",
                        init_scale=0.002, clip_activations=10.0)
    optim = OptimConfig(name="adam", lr=5e-4, b1=0.9, b2=0.98, grad_clip=1.0)
    train = TrainConfig(steps=5000, batch_size=1024, n_seeds=5, eval_every=100, ckpt_every=500,
                        eval_tasks=1024, final_eval_tasks=4000)
    return ExperimentConfig(name=f"{STUDY}_kappa{kappa:g}", task=task, model=model, optim=optim, train=train,
                            compare_against=("gd", "least_squares"))


def kappas(mode: str = "full") -> tuple[float, ...]:
    return QUICK_KAPPAS if mode == "quick" else KAPPAS


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """The script's runs in `mode` ("full" or "quick"; steps / batch_size: an intermediate full run)."""
    return [scaled(config(k), QUICK, mode=mode, steps=steps, batch_size=batch_size) for k in kappas(mode)]


for _kappa in KAPPAS:
    register(config(_kappa), quick=QUICK, study=STUDY)
