"""Experiments of von Oswald et al. (2023), "Transformers learn in-context by gradient descent".

paper_1layer — Fig. 2 setup: one LSA layer (1 head, key size 11) on d = 10, N = 10 linear tasks,
x ~ U(-0.5, 0.5)^10, w ~ N(0, I), no noise; batch 2048, 5,000 Adam steps.
  command:   icl train            (the default experiment)
  runtime:   ~20 s on a 2-core CPU (370 steps/s; measured in the README); seconds on a GPU
  reproduces (official code, 10,000 held-out tasks): GD at the optimal eta (~6.06) 0.207,
             trained model 0.208, model_cos 0.9993, preds_diff 0.0225 against GD.

tiny — a few-second smoke run of the same pipeline (d = 3, N = 5, batch 64, 200 steps), for tests.
"""

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register
from icl.models import ModelConfig

PAPER_1LAYER = ExperimentConfig(
    name="paper_1layer",
    task=tasks.get("linear", d=10, n_ctx=10, input_dist="uniform", input_range=0.5),
    model=ModelConfig(n_layers=1, n_heads=1, key_size=0, attention="linear", init_scale=0.002),
    optim=OptimConfig(name="adam", lr=1e-3, b1=0.9, b2=0.98, grad_clip=1.0),
    train=TrainConfig(steps=5000, batch_size=2048, eval_every=100, ckpt_every=1000, final_eval_tasks=10000),
)

TINY = ExperimentConfig(
    name="tiny",
    task=tasks.get("linear", d=3, n_ctx=5),
    model=ModelConfig(n_layers=1, init_scale=0.02),
    optim=OptimConfig(name="adam", lr=1e-2),
    train=TrainConfig(steps=200, batch_size=64, eval_every=20, ckpt_every=100, eval_tasks=256, final_eval_tasks=1000),
)

for _config in (PAPER_1LAYER, TINY):
    register(_config, study="paper")
