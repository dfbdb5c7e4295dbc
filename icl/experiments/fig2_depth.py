"""Figure 2 (von Oswald et al. 2023, Figs. 3-4): K-layer LSA stacks vs K steps of GD and of GD++.

fig2_L<K>_sep / fig2_L<K>_shared, K = 1..5: paper_1layer's task (d = N = 10, x ~ U(-0.5, 0.5)^10,
w ~ N(0, I), no noise), model (1 head, init 0.002) and optimiser (Adam b2 0.98, clip 1) with K
linear-attention layers, separate weights or one shared layer; batch 2048, 5,000 steps, 5 seeds.
Deep unshared stacks are unstable (docs/math.md): as the official code, K > 3 uses lr 5e-4 and
clips activations to 10. The shared runs are also figure 3's (fig3_recurrence loops them).

  command:  python paper_figures/fig2_depth.py [--quick]    (one run: icl train fig2_L3_sep [--quick])
            the committed record is the intermediate setting --steps 1500 --batch-size 512
  runtime:  full 10 runs x 5 seeds x 5,000 steps ~2 h on a 2-core CPU; quick (K = 1, 2, 4, 500
            steps of batch 256, 2 seeds) ~3 min
  numbers:  paper_figures/fig2_depth.json: per K the held-out loss of each stack, K-step GD (lr
            tuned for K) and K-step GD++ (lr, gamma fitted), model_cos with each, and the read-out
            after every layer of the deepest stacks against GD / GD++ after as many steps.
"""

from __future__ import annotations

import dataclasses

from icl.config import ExperimentConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled

STUDY = "fig2_depth"
DEPTHS = (1, 2, 3, 4, 5)
QUICK_DEPTHS = (1, 2, 4)

FULL = TrainConfig(steps=5000, batch_size=2048, n_seeds=5, eval_every=100, ckpt_every=500, eval_tasks=2048,
                   final_eval_tasks=10000)
QUICK = TrainConfig(steps=500, batch_size=256, n_seeds=2, eval_every=50, ckpt_every=500, eval_tasks=512,
                    final_eval_tasks=2000)


def full_config(n_layers: int, shared: bool) -> ExperimentConfig:
    """Full mode: K = n_layers layers, separate or shared weights; K > 3 uses lr 5e-4 and activation clip 10."""
    deep = n_layers > 3
    model = dataclasses.replace(PAPER_1LAYER.model, n_layers=n_layers, shared=shared, clip_activations=10.0 if deep else 0.0)
    optim = dataclasses.replace(PAPER_1LAYER.optim, lr=5e-4 if deep else 1e-3)
    name = f"fig2_L{n_layers}_{'shared' if shared else 'sep'}"
    return dataclasses.replace(PAPER_1LAYER, name=name, model=model, optim=optim, train=FULL)


def config(n_layers: int, shared: bool, mode: str = "full", steps: int | None = None,
           batch_size: int | None = None) -> ExperimentConfig:
    """The run with K = n_layers in `mode` ("full" or "quick"; steps / batch_size: an intermediate full run)."""
    return scaled(full_config(n_layers, shared), QUICK, mode=mode, steps=steps, batch_size=batch_size)


def depths(mode: str = "full") -> tuple[int, ...]:
    return QUICK_DEPTHS if mode == "quick" else DEPTHS


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[tuple[int, bool], ExperimentConfig]:
    """{(K, shared): config} of the script's runs in `mode`, K ascending, separate before shared."""
    return {(k, shared): config(k, shared, mode, steps, batch_size) for k in depths(mode) for shared in (False, True)}


for _k in DEPTHS:
    for _shared in (False, True):
        register(full_config(_k, _shared), quick=QUICK, study=STUDY)
