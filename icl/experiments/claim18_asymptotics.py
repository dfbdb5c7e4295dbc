"""Claim 18: the asymptotic theory of in-context learning by linear attention (Lu, Letey,
Zavatone-Veth, Maiti & Pehlevan, PNAS 2025, arXiv 2405.11751): with n = tau d^2 pretraining
sequences, k = kappa d pretraining tasks and context length l = alpha d, the ICL error of a reduced
linear-attention model y_hat = x_q^T Gamma (d/l) sum_i y_i x_i shows double descent in tau (peak at
the interpolation threshold tau = 1 for a small ridge) and a transition with task diversity kappa
from memorising the pool to in-context learning of new tasks.

The reduced model is linear in Gamma and is solved in closed form by the figure script
(`icl.analysis.linear_attention_asymptotics`). The runs registered here are the trained-layer
check: one layer of the codebase's linear self-attention trained online (fresh sequences every
step, i.e. tau = infinity, no weight decay) on a pool of k tasks, against the reduced model's
tau = infinity solution Gamma_inf for the same pool.

claim18_asymptotics_k<k> — `linear_pool`, d = 16, N = 32 (alpha = 2), x ~ N(0, I) (the codebase's
    scale: the paper's tokens are x / sqrt(d), its labels y / sqrt(d)), noise_std = sqrt(d rho) =
    1.265 (rho = 0.1 in the paper's units), pool_seed 0, k = 8 (kappa = 0.5) and k = 64 (kappa = 4);
    one LSA layer (1 head, init 0.02), Adam 1e-3 (clip 1) with a cosine decay; 2 seeds x 10,000 steps
    of batch 512 (full), 2 seeds x 800 steps of batch 256 (quick).
  command:  python paper_figures/claim18_asymptotics.py [--quick]   (`icl train claim18_asymptotics_k64`)
  runtime:  full 65 s of training for the two runs (2 seeds x 10,000 steps of batch 512 each); the script
            4 min 38 s wall from scratch on the shared 2-core CPU (load ~5; closed-form scans 2.5 min of it),
            3 min 5 s with the runs reused; quick 27 s wall (6 s of training)
  numbers:  paper_figures/claim18_asymptotics.json (errors in the paper's units, MSE / d), k = 8 / 64:
            trained LSA fresh 1.052 / 0.510, pool 0.262 / 0.431; the reduced model's Gamma_inf
            fresh 0.812 / 0.492, pool 0.293 / 0.430; cos(N Gamma_LSA, Gamma_inf) 0.891 / 0.999
"""

from __future__ import annotations

import math

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim18_asymptotics"
D, N_CTX, RHO = 16, 32, 0.1  # RHO: label-noise variance in the paper's units (tokens of variance 1/d)
NOISE_STD = math.sqrt(D * RHO)  # the same noise in the codebase's units (x ~ N(0, I))
POOL_SEED = 0
POOL_SIZES = (8, 64)  # kappa = 0.5 and 4
QUICK = TrainConfig(steps=800, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=800, eval_tasks=512, final_eval_tasks=1000)


def task_for(k: int | None):
    """The pool of k tasks (None: fresh Gaussian tasks, the same x, noise and N)."""
    if k is None:
        return tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", noise_std=NOISE_STD)
    return tasks.get("linear_pool", d=D, n_ctx=N_CTX, pool_size=k, pool_seed=POOL_SEED, noise_std=NOISE_STD)


def _config(k: int) -> ExperimentConfig:
    return ExperimentConfig(
        name=f"{STUDY}_k{k}",
        task=task_for(k),
        model=ModelConfig(n_layers=1, attention="linear", init_scale=0.02),
        optim=OptimConfig(name="adam", lr=1e-3, grad_clip=1.0, schedule="cosine"),
        train=TrainConfig(steps=10000, batch_size=512, n_seeds=2, eval_every=200, ckpt_every=4000,
                          eval_tasks=1024, final_eval_tasks=2000),
        compare_against=(f"ridge(lam={NOISE_STD**2})",),
    )


CONFIGS = {k: register(_config(k), quick=QUICK, study=STUDY) for k in POOL_SIZES}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[int, ExperimentConfig]:
    """{k: config} in `mode` (registry.scaled)."""
    return {k: scaled(c, QUICK, mode=mode, steps=steps, batch_size=batch_size) for k, c in CONFIGS.items()}
