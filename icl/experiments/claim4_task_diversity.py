"""Claim 4: task diversity (Raventós et al. 2023, "Pretraining task diversity and the emergence of
non-Bayesian in-context learning for regression"). Trained on a finite pool of K tasks, a
transformer behaves like the Bayes-optimal estimator for that pool (dMMSE) when K is small, and like
ridge regression (Bayes-optimal for w ~ N(0, I)) once K passes a threshold K*; it then solves tasks
from outside the pool. The estimators and the threshold: `icl.analysis.task_pool`.

Setup (the paper's): d = 8, N = 16 context examples, x ~ N(0, I_d), y = w . x + eps with
eps ~ N(0, sigma^2), sigma^2 = 0.25. Pretraining prior for pool size K: w_1..w_K ~ N(0, I_d) drawn
once (`linear_pool`, pool_seed 0; pools are nested, the first K rows of one stream, and every seed
of a K shares its pool), each task picks one uniformly. K = "inf" is the plain Gaussian family
(`linear`, w ~ N(0, I_d) fresh for every task).

Models. "softmax" (main): 2 softmax-attention layers, 4 heads of size 8, pre-LayerNorm, GELU MLP
(width 4x), x embedded by a 2-layer MLP into 31 features (tokens [f(x_i), y_i] of width 32): it can
represent a dMMSE-like map. "lsa1" (control): one linear self-attention layer, whose prediction
x_q^T Gamma X^T y is linear in the labels (it can still learn the pool's span). Both train on 8
queries per task, AdamW 3e-3 (LSA: Adam 1e-3), 10% linear warm-up then cosine decay. Run names carry
K, steps and batch, because the cosine schedule depends on the step count (a longer run is a new
run, not an extension): so the quick runs are registered under names of their own.

Our models and training are far smaller than Raventós's (8-layer GPT-2, d_model 256, ~500k steps
of batch 1024, loss on every prefix): the threshold we find need not be theirs (they report
K* ~ 2^13-2^14 for d = 8).

  command:  python paper_figures/claim4_task_diversity.py [--quick]
            full: K = 2, 8, 32, ..., 2048, inf; 1,500 steps of batch 128, 5 seeds;
            quick: K = 2^2, 2^6, inf; 300 steps of batch 64, 2 seeds (smoke test)
  runtime:  full trained in 21 min as two parallel processes on the shared 2-core CPU (load 7-9),
            evaluation 30 s; ~25 min estimated idle, one process; quick ~2 min idle
  numbers:  paper_figures/claim4_task_diversity.json (MSE and Delta PM of each model on pool and
            fresh tasks against dMMSE, LMMSE and ridge; K* per seed)
"""

from __future__ import annotations

import dataclasses

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim4_task_diversity"
D, N_CTX, NOISE_STD, WEIGHT_STD = 8, 16, 0.5, 1.0
LAM = NOISE_STD**2 / WEIGHT_STD**2  # ridge's Bayes-optimal lam for w ~ N(0, I)
POOL_SEED = 0
TRAIN_QUERIES, EVAL_QUERIES = 8, 4
LOG2_K_FULL = (1, 3, 5, 7, 9, 11)  # K = 2, 8, 32, 128, 512, 2048 (and inf)
LOG2_K_QUICK = (2, 6)
FULL_STEPS, FULL_BATCH, FULL_SEEDS = 1500, 128, 5
EVAL_TASKS = {"full": 4000, "quick": 1000}  # held-out tasks of the script's evaluation

MODELS = {
    "softmax": (
        ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, n_heads=4, key_size=8,
                    embed_dim=31, embed_hidden=64, init_scale=1.0),
        OptimConfig(name="adamw", lr=3e-3, grad_clip=1.0, schedule="cosine"),
    ),
    "lsa1": (  # the control: one linear self-attention layer (one preconditioned GD step)
        ModelConfig(n_layers=1, attention="linear", init_scale=0.02),
        OptimConfig(name="adam", lr=1e-3, grad_clip=1.0, schedule="cosine"),
    ),
}
QUICK = TrainConfig(steps=300, batch_size=64, n_seeds=2, eval_every=100, ckpt_every=300, eval_tasks=256, final_eval_tasks=512)


def task_for(log2_k: int | None, n_query: int = TRAIN_QUERIES):
    """The pretraining family for K = 2^log2_k tasks, or the Gaussian family for None (K = inf)."""
    if log2_k is None:
        return tasks.get("linear", d=D, n_ctx=N_CTX, n_query=n_query, input_dist="gaussian",
                         noise_std=NOISE_STD, weight_std=WEIGHT_STD)
    if not isinstance(log2_k, int) or log2_k < 0:
        raise ValueError(f"claim4: log2_k must be an integer >= 0 or None (K = inf), got {log2_k!r}")
    return tasks.get("linear_pool", d=D, n_ctx=N_CTX, n_query=n_query, pool_size=2**log2_k,
                     pool_seed=POOL_SEED, noise_std=NOISE_STD, weight_std=WEIGHT_STD)


def k_label(log2_k: int | None) -> str:
    return "inf" if log2_k is None else str(2**log2_k)


def grid(mode: str = "full") -> list[int | None]:
    """log2 K of the pools trained in `mode`, then None (K = inf)."""
    return list(LOG2_K_QUICK if mode == "quick" else LOG2_K_FULL) + [None]


def _timed(config: ExperimentConfig, model: str, log2_k: int | None, full: bool) -> ExperimentConfig:
    """What follows from the step count: the name (K, steps, batch), 10% warm-up, one checkpoint at
    the end, and in full mode an evaluation every 10% of the run."""
    steps, batch = config.train.steps, config.train.batch_size
    train = dataclasses.replace(config.train, ckpt_every=steps, **({"eval_every": max(steps // 10, 1)} if full else {}))
    return dataclasses.replace(config, name=f"{STUDY}_{model}_k{k_label(log2_k)}_s{steps}_b{batch}", train=train,
                               optim=dataclasses.replace(config.optim, warmup_steps=steps // 10))


def config(model: str, log2_k: int | None, mode: str = "full", steps: int | None = None,
           batch_size: int | None = None) -> ExperimentConfig:
    """The run of `model` ("softmax" or "lsa1") on the pool of 2^log2_k tasks (None: K = inf) in `mode`."""
    if model not in MODELS:
        raise ValueError(f"claim4: model must be one of {', '.join(MODELS)}, got {model!r}")
    model_cfg, optim = MODELS[model]
    train = TrainConfig(steps=FULL_STEPS, batch_size=FULL_BATCH, n_seeds=FULL_SEEDS, eval_tasks=256, final_eval_tasks=512)
    base = ExperimentConfig(name=STUDY, task=task_for(log2_k), model=model_cfg, optim=optim, train=train,
                            compare_against=(f"ridge(lam={LAM})",))
    return _timed(scaled(base, QUICK, mode=mode, steps=steps, batch_size=batch_size), model, log2_k, mode == "full")


def points(mode: str = "full") -> list[tuple[str, int | None]]:
    """(model, log2 K) of every run in `mode`, in the script's order."""
    return [(model, log2_k) for model in MODELS for log2_k in grid(mode)]


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """The script's runs in `mode`, one per `points(mode)` (steps / batch_size: an intermediate full run)."""
    return [config(model, log2_k, mode, steps, batch_size) for model, log2_k in points(mode)]


for _mode in ("full", "quick"):  # the quick runs have names of their own (see the docstring)
    for _config in configs(_mode):
        register(_config, study=STUDY)
