"""Claim 15: a transformer trained on a mixture of task families follows the mixture's Bayes-optimal
predictor (Panwar, Ahuja & Goyal 2024, "In-context learning through the Bayesian prism", ICLR,
Sec. 4): trained on dense and sparse linear regression together, its predictions track the posterior
mean that weighs the two priors by their marginal likelihoods given the context: ridge-like on
dense tasks, sparse-Bayes (Lasso-like) on sparse ones. The predictors: `icl.analysis.task_mixture`.

Setup (scaled down): d = 5, N = 5 context examples, x ~ N(0, I_d), y = w . x + eps, sigma = 0.5;
w ~ N(0, I_5) with probability 1/2 (dense), else 1-sparse with a N(0, 1) non-zero on a uniform
coordinate (`linear_mixture`, k = 1). At N = d = 5 the context does not settle which prior made it
(mean posterior P(dense) 0.84 on dense tasks, 0.16 on sparse ones), so the mixture's Bayes
predictor differs from both single-prior ones on both kinds of task (dPM 0.05 to ridge on dense
tasks, 0.07 to sparse-Bayes on sparse ones, against MSEs 1.4 and 0.47).

Model: claim 4's "softmax" transformer: 2 softmax-attention layers, 4 heads of size 8,
pre-LayerNorm, GELU MLP (width 4x), x embedded by a 2-layer MLP into 31 features; 8 queries per
task, AdamW 3e-3, grad clip 1, 10% linear warm-up then cosine decay. Run names carry steps and batch
(the schedule depends on the step count), so the quick run has a name of its own. Panwar et al.
train a 12-layer GPT-2 (d = 20, ~500k steps, loss on every prefix); ours is far smaller.

  command:  python paper_figures/claim15_task_mixture.py [--quick]
            full: 12,000 steps of batch 128, 3 seeds; quick: 1,000 steps of batch 64, 2 seeds
  runtime:  full 5.9 min wall (3.5 CPU-min; load ~10 on the shared 2-core CPU), evaluation 20 s;
            quick 53 s wall (29 s CPU)
  numbers:  paper_figures/claim15_task_mixture.json (on held-out dense, sparse and mixture tasks:
            MSE of the model, the mixture-Bayes, ridge and sparse-Bayes predictors; the model's
            dPM to each; the margin ln min(dPM ridge, dPM sparse) - ln dPM mixture per seed)
"""

from __future__ import annotations

import dataclasses

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim15_task_mixture"
D, K, N_CTX, NOISE_STD, WEIGHT_STD, P_DENSE = 5, 1, 5, 0.5, 1.0, 0.5
LAM = NOISE_STD**2 / WEIGHT_STD**2  # ridge's Bayes-optimal lam for the dense prior
TRAIN_QUERIES, EVAL_QUERIES = 8, 4
FULL_STEPS, FULL_BATCH, FULL_SEEDS = 12000, 128, 3
EVAL_TASKS = {"full": 4000, "quick": 1000}  # held-out tasks of each kind in the script's evaluation

MODEL = ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, n_heads=4, key_size=8,
                    embed_dim=31, embed_hidden=64, init_scale=1.0)
OPTIM = OptimConfig(name="adamw", lr=3e-3, grad_clip=1.0, schedule="cosine")
QUICK = TrainConfig(steps=1000, batch_size=64, n_seeds=2, eval_every=250, ckpt_every=1000, eval_tasks=256, final_eval_tasks=512)


def task_for(p_dense: float = P_DENSE, n_query: int = TRAIN_QUERIES):
    """The mixture family (p_dense = 1: dense tasks only; 0: sparse tasks only)."""
    return tasks.get("linear_mixture", d=D, k=K, n_ctx=N_CTX, n_query=n_query, p_dense=p_dense,
                     noise_std=NOISE_STD, weight_std=WEIGHT_STD)


def config(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The run in `mode`: named by steps and batch, 10% warm-up, one checkpoint at the end, and in
    full mode an evaluation every 10% of the run."""
    train = TrainConfig(steps=FULL_STEPS, batch_size=FULL_BATCH, n_seeds=FULL_SEEDS, eval_tasks=256, final_eval_tasks=512)
    base = ExperimentConfig(name=STUDY, task=task_for(), model=MODEL, optim=OPTIM, train=train,
                            compare_against=(f"ridge(lam={LAM})", "lasso", "least_squares"))
    cfg = scaled(base, QUICK, mode=mode, steps=steps, batch_size=batch_size)
    s, b = cfg.train.steps, cfg.train.batch_size
    tr = dataclasses.replace(cfg.train, ckpt_every=s, **({"eval_every": max(s // 10, 1)} if mode == "full" else {}))
    return dataclasses.replace(cfg, name=f"{STUDY}_s{s}_b{b}", train=tr, optim=dataclasses.replace(cfg.optim, warmup_steps=s // 10))


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """The script's runs in `mode` (one)."""
    return [config(mode, steps, batch_size)]


for _mode in ("full", "quick"):  # the quick run has a name of its own (see the docstring)
    for _config in configs(_mode):
        register(_config, study=STUDY)
