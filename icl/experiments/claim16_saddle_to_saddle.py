"""Claim 16: multi-head linear attention with separate rank-one keys and queries learns in-context
regression in saddle-to-saddle dynamics — one loss drop per principal component of the input
covariance, in order of decreasing eigenvalue (in-context principal component regression with a
growing number of components) — while the merged key-query parametrisation drops once (Zhang,
Singh, Latham & Saxe, ICML 2025, "Training dynamics of in-context learning in linear attention",
arXiv 2501.16265: ATTN_S with rank-one key and query per head against ATTN_M with one W_KQ per head).

claim16_saddle_to_saddle_<model> — d = 4, N = 20 context points, x ~ N(0, Sigma) with Sigma's
    eigenvalues proportional to 4 : 3 : 2 : 1 (the paper's default spectrum, lambda_i proportional
    to i), scaled to tr Sigma = d (1.6, 1.2, 0.8, 0.4) and rotated by a fixed random orthogonal
    matrix (numpy seed 0; the paper draws one too), w ~ N(0, I), noiseless; one linear attention
    layer, init_scale 2e-3 (entries ~ N(0, 2e-3 / 5), std 0.02; the paper's 1e-2), plain SGD
    (no clipping, no momentum: the paper trains by full-batch gradient descent) at lr 0.02 on fresh
    tasks every step; two models (`MODELS`):
      sep     ATTN_S: 5 heads (the paper's --head 5 for d = 4) of key size 1 (rank-one W_K, W_Q
              per head; the codebase's value and output of size 1 as well: only W_O W_V's label
              row reaches the prediction, and a size-1 value / output still spans it)
      merged  the codebase's stand-in for ATTN_M: 1 head of key size D = d + 1. The codebase has
              no merged W_KQ: this is W_Q W_K^T, a product of two full-rank D x D matrices (the
              paper's ATTN_S with R = D) — see icl.analysis.saddle_to_saddle for what that changes
    5 seeds, 24,000 steps of batch 512; every eval_every = 25 steps the analysis records the
    weights and the loss on 4,096 held-out tasks (icl.analysis.saddle_to_saddle.trajectory, which
    trains with icl.trainer.Trainer exactly as icl.train does, keeping the weights along the way).
  command:  python paper_figures/claim16_saddle_to_saddle.py [--quick]
  runtime:  full (both models x 5 seeds x 24,000 steps of batch 512, a record every 25 steps) 206 s of
            training (ATTN_S 143 s, merged 63 s), 212 s wall on the 2-core CPU beside two other
            training jobs (load 6-7); quick (6,000 steps, 2 seeds) 30 s of training, 41 s wall
  numbers:  paper_figures/claim16_saddle_to_saddle.json: ATTN_S learns the components in eigenvalue order
            in 5 / 5 seeds (4 / 5 all four within 24,000 steps), 4 / 3 / 4 / 4 / 2 loss drops, plateaus at
            the in-context PCR losses (1.284-1.289, 0.824-0.827, 0.517-0.521, 0.389 vs L_1..L_4 = 1.319,
            0.826, 0.518, 0.389); the merged stand-in drops once in 4 / 5 seeds; verdict "held"
"""

from __future__ import annotations

import numpy as np

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim16_saddle_to_saddle"
D, N_CTX = 4, 20
SPECTRUM = (4.0, 3.0, 2.0, 1.0)  # relative eigenvalues (the paper's lambda_i proportional to i)
ROTATION_SEED = 0
MODELS = {  # name -> ModelConfig fields
    "sep": dict(n_heads=5, key_size=1),
    "merged": dict(n_heads=1, key_size=0),
}
QUICK = TrainConfig(steps=6000, batch_size=512, n_seeds=2, eval_every=25, ckpt_every=6000,
                    eval_tasks=4096, final_eval_tasks=4096)


def covariance() -> tuple[tuple[float, ...], ...]:
    """Sigma = Q diag(lambda) Q^T, lambda = SPECTRUM scaled to tr Sigma = D, Q a fixed Haar rotation."""
    eig = np.asarray(SPECTRUM) * D / sum(SPECTRUM)
    q, r = np.linalg.qr(np.random.default_rng(ROTATION_SEED).standard_normal((D, D)))
    q = q * np.sign(np.diag(r))
    sigma = q @ np.diag(eig) @ q.T
    sigma = (sigma + sigma.T) / 2
    return tuple(tuple(float(v) for v in row) for row in sigma)


def _config(model: str) -> ExperimentConfig:
    return ExperimentConfig(
        name=f"{STUDY}_{model}",
        task=tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance=covariance()),
        model=ModelConfig(n_layers=1, attention="linear", init_scale=2e-3, **MODELS[model]),
        optim=OptimConfig(name="sgd", lr=0.02, grad_clip=0.0),
        train=TrainConfig(steps=24000, batch_size=512, n_seeds=5, eval_every=25, ckpt_every=24000,
                          eval_tasks=4096, final_eval_tasks=4096, reference="gd"),
        compare_against=("gd", "least_squares"),
    )


CONFIGS = {m: register(_config(m), quick=QUICK, study=STUDY) for m in MODELS}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[str, ExperimentConfig]:
    """{model: config} in `mode` (registry.scaled)."""
    return {key: scaled(c, QUICK, mode=mode, steps=steps, batch_size=batch_size) for key, c in CONFIGS.items()}
