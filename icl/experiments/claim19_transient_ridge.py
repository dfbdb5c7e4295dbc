"""Claim 19: the transient ridge (Carroll, Hoogland, Farrugia-Roberts & Murfet 2025, "Dynamics of
transient structure in in-context linear regression transformers", arXiv 2501.17745). Trained on
a finite pool of K tasks at intermediate task diversity, a transformer first behaves like ridge
regression (which solves new tasks) and later specialises to dMMSE over the pool (which memorises
it): the out-of-distribution loss falls, then rises, and the function moves from ridge to dMMSE.

Setup: claim 4's task and model (`icl.experiments.claim4_task_diversity`): d = 8, N = 16, x ~ N(0,
I), y = w . x + eps, sigma^2 = 0.25, pool w_1..w_K ~ N(0, I) (`linear_pool`, pool_seed 0, nested
pools: the first K rows of one stream), 8 queries per task; 2 softmax-attention layers (4 heads of
size 8, pre-LayerNorm, GELU MLP, width 32), AdamW 3e-3, batch 128, 10% linear warm-up. One change
from claim 4: a **constant** learning rate after the warm-up instead of cosine decay. The
transient is a late-training phenomenon (the move to dMMSE comes after the ridge phase); in probe
runs of 3,000 cosine-decayed steps every pool size froze where it stood (K = 16 between the two
predictors, K = 32 and 64 near ridge, no rise), while at a constant rate the K = 16 model moved
towards dMMSE after step ~1,500. Pool sizes (`ROLES`): K = 4 (small: a control expected to
memorise directly), K = 16 and 24 (intermediate: claim 4's threshold after 1,500 steps is
K* ~ 12; K = 32 stayed near ridge for 4,000 steps in a probe), K = 1024 (large: a control expected
to stay ridge-like).

The distances along training come from `icl.analysis.transient_ridge.trajectory`, which trains
each run with `icl.trainer.Trainer` exactly as `icl.train.train` does and evaluates every
EVAL_EVERY steps on 1,000 fresh and 1,000 pool held-out tasks. Run names carry K, steps and batch.

  command:  python paper_figures/claim19_transient_ridge.py [--quick]
            full: K = 4, 16, 24, 1024; 3 seeds x 5,000 steps of batch 128, a record every 100 steps
            quick: K = 16, 1024; 2 seeds x 1,000 steps of batch 128, a record every 50 steps
  runtime:  full 591 s of training (148 s per K, 3 seeds vmapped), 600 s wall on the 2-core CPU beside
            another training job (load ~7); quick 56 s of training, 63 s wall
  numbers:  paper_figures/claim19_transient_ridge.json: no seed transient by the rule (verdict "did not
            hold"). At K = 16 and 24 the fresh-task loss falls to a minimum (steps 1,500-2,200) and rises
            again (x1.3-1.6 by step 5,000) in 6 / 6 seeds, the distance to ridge rises x1.3-1.8, and on
            pool tasks the K = 16 model moves to dMMSE; but K = 16 is never ridge-like (distance to
            ridge >= 2.9 of E[ridge^2] = 8.0) and on fresh tasks the distance to dMMSE falls only
            x0.82-1.03
"""

from __future__ import annotations

import dataclasses

from icl import tasks
from icl.config import ExperimentConfig, TrainConfig
from icl.experiments import claim4_task_diversity as claim4
from icl.experiments.registry import register, scaled

STUDY = "claim19_transient_ridge"
D, N_CTX, NOISE_STD, LAM = claim4.D, claim4.N_CTX, claim4.NOISE_STD, claim4.LAM
ROLES = {4: "small", 16: "intermediate", 24: "intermediate", 1024: "large"}  # K -> role
QUICK_K = (16, 1024)
FULL_STEPS, FULL_BATCH, FULL_SEEDS = 5000, 128, 3
EVAL_EVERY = {"full": 100, "quick": 50}
EVAL_TASKS = 1000  # fresh and pool held-out tasks, each
QUICK = TrainConfig(steps=1000, batch_size=128, n_seeds=2, eval_every=EVAL_EVERY["quick"], ckpt_every=1000,
                    eval_tasks=256, final_eval_tasks=512)


def grid(mode: str = "full") -> list[int]:
    """The pool sizes K trained in `mode`."""
    return list(QUICK_K if mode == "quick" else ROLES)


def pool_task(k: int, n_query: int = claim4.TRAIN_QUERIES):
    """Claim 4's pretraining family with a pool of K tasks (any K, not only powers of 2)."""
    return tasks.get("linear_pool", d=D, n_ctx=N_CTX, n_query=n_query, pool_size=k, pool_seed=claim4.POOL_SEED,
                     noise_std=NOISE_STD, weight_std=claim4.WEIGHT_STD)


def fresh_task():
    """Tasks w ~ N(0, I) outside any pool (claim 4's K = inf family)."""
    return claim4.task_for(None)


def config(k: int, mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> ExperimentConfig:
    """The run on the pool of K tasks in `mode` (steps / batch_size: an intermediate full run)."""
    if k not in ROLES:
        raise ValueError(f"claim19: K must be one of {sorted(ROLES)}, got {k!r}")
    model, optim = claim4.MODELS["softmax"]
    optim = dataclasses.replace(optim, schedule="constant")
    train = TrainConfig(steps=FULL_STEPS, batch_size=FULL_BATCH, n_seeds=FULL_SEEDS, eval_every=EVAL_EVERY["full"],
                        eval_tasks=256, final_eval_tasks=512)
    base = ExperimentConfig(name=STUDY, task=pool_task(k), model=model, optim=optim, train=train,
                            compare_against=(f"ridge(lam={LAM})",))
    c = scaled(base, QUICK, mode=mode, steps=steps, batch_size=batch_size)
    n, b = c.train.steps, c.train.batch_size
    every = EVAL_EVERY["quick" if mode == "quick" else "full"]
    return dataclasses.replace(c, name=f"{STUDY}_k{k}_s{n}_b{b}",
                               train=dataclasses.replace(c.train, eval_every=every, ckpt_every=n),
                               optim=dataclasses.replace(c.optim, warmup_steps=n // 10))


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[int, ExperimentConfig]:
    """{K: config} in `mode`."""
    return {k: config(k, mode, steps, batch_size) for k in grid(mode)}


for _mode in ("full", "quick"):
    for _config in configs(_mode).values():
        register(_config, study=STUDY)
