"""Figure 1's loss plateau over many seeds: how long does one LSA layer sit near the zero
predictor's loss? (The official code's single run: ~0.393 until step ~1,500, GD by ~1,900.)

fig1_plateau_b2048 — paper_1layer exactly, 32 seeds (vmapped in groups of 8), 2,000 steps of the
                     paper's batch 2048, evaluated every 50 steps on 2,048 tasks
fig1_plateau_b512  — the same at batch 512, 3,000 steps, 32 seeds in one vmap
fig1_plateau_b256  — quick mode's run: 4 seeds, 600 steps of batch 256 (~1 min on a 2-core CPU)
Per seed the escape step (first evaluation with loss below 0.3) and the value-path parts of the
final layer (icl.analysis.plateau).
  command:  python paper_figures/fig1_plateau.py [--quick]   (`--steps` sets both full runs' steps)
  runtime:  full ~3 min of training on a 2-core CPU (178 s)
  numbers:  batch 2048: 30/32 seeds escape, median escape step 200, 2 seeds (12, 29) stuck at the
            end, plateau loss 0.359; batch 512: 27/32 escape (median 250, 90 % by 810), 5 stuck
"""

from __future__ import annotations

import dataclasses

from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled

STUDY = "fig1_plateau"


def _train(batch_size: int, steps: int, n_seeds: int, seed_group: int) -> TrainConfig:
    """Evaluation every 50 steps on 2,048 tasks; one checkpoint, at the end."""
    return TrainConfig(steps=steps, batch_size=batch_size, n_seeds=n_seeds, seed_group=seed_group, eval_every=50,
                       ckpt_every=steps, eval_tasks=2048, final_eval_tasks=2000)


def _config(train: TrainConfig) -> ExperimentConfig:
    return dataclasses.replace(PAPER_1LAYER, name=f"{STUDY}_b{train.batch_size}", train=train)


QUICK = _train(256, 600, 4, 0)
FULL = [register(_config(_train(2048, 2000, 32, 8)), quick=QUICK, study=STUDY),
        register(_config(_train(512, 3000, 32, 0)), quick=QUICK, study=STUDY)]
QUICK_RUN = register(_config(QUICK), study=STUDY)  # quick mode's grid point (already CI-sized)


def configs(mode: str = "full", steps: int | None = None) -> list[ExperimentConfig]:
    """The runs of `mode`: quick, the batch-256 run; full, the batch-2048 and batch-512 runs, with
    `steps` (and the one checkpoint) moved when given."""
    if mode == "quick":
        return [scaled(QUICK_RUN, mode=mode, steps=steps)]
    out = [scaled(c, mode=mode, steps=steps) for c in FULL]
    return [dataclasses.replace(c, train=dataclasses.replace(c.train, ckpt_every=c.train.steps)) for c in out]
