"""Claim 5: order and the critique (Shen et al. 2023, "Do pretrained transformers really learn
in-context by gradient descent?", of von Oswald et al. 2023): (1) one full-batch GD step on
L(w) = 1/(2N) sum_i (w . x_i - y_i)^2 is a symmetric function of the context pairs, while ICL in real
(causal, positional) transformers depends on their order; (2) agreement of predictions does not
imply that the trained weights are the GD construction. The measurements: `icl.analysis.order`
(order sensitivity, slot influence), `icl.analysis.online_sgd` (the order-sensitive reference) and
`icl.analysis.lsa_weights` (weights against the construction).

Task: experiments.paper_1layer (d = N = 10, x ~ U(-0.5, 0.5)^10, w ~ N(0, I), no noise). Models
(Adam 1e-3, b2 0.98, clip 1.0; 5 seeds in full mode):
  lsa        the paper's 1-layer linear LSA, paired tokens [x_i, y_i], init 0.002 (paper_1layer);
  lsa_init1  the same with init_scale 1.0 (for the weight question only: same function class,
             larger initial weights);
  softmax    2 softmax-attention layers with pre-LayerNorm and a residual GELU MLP, paired tokens;
  separate   x_i and y_i in tokens of their own with a positional code (one-hot pair index i and
             type flags; the code is fixed, the attention weights reading it are learned), a softmax
             first layer and a linear second layer (figure 5's model).
The models have no causal mask: with paired tokens every model here is a symmetric function of the
context set by construction, so their order sensitivity is measured as a float32 check; the
separate layout is the one model that can see order. The separate model's full setting is figure
5's committed intermediate one (5,000 steps of batch 256; the same seeds give the same runs), chosen
for time; the softmax model's 3,000 steps of batch 512 are our choice (2 softmax layers with an MLP
are ~6x slower per task than one LSA layer).

  command:  python paper_figures/claim5_order.py [--quick]
            full: lsa, lsa_init1 5,000 steps of batch 2048; softmax 3,000 of 512; separate 5,000 of
            256; 5 seeds. quick: 500-1,500 steps of batch 256-512, 2 seeds
  runtime:  full 35.8 min wall on the 2-core CPU shared with other jobs (load 14-17), 8.9 min of
            CPU; quick 6.0 min wall under that load, 78 s of CPU
  numbers:  paper_figures/claim5_order.json (order sensitivity of every model and of GD / online
            SGD, slot influence, weight cosines with the construction, model_cos)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.paper import PAPER_1LAYER
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim5_order"
OPTIM = OptimConfig(name="adam", lr=1e-3, b1=0.9, b2=0.98, grad_clip=1.0)
MODELS = {  # name -> (model, full steps, full batch, quick steps, quick batch)
    "lsa": (ModelConfig(n_layers=1, attention="linear", init_scale=0.002), 5000, 2048, 1000, 512),
    "lsa_init1": (ModelConfig(n_layers=1, attention="linear", init_scale=1.0), 5000, 2048, 1000, 512),
    "softmax": (ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, init_scale=0.2), 3000, 512, 500, 256),
    "separate": (ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=10, init_scale=0.2),
                 5000, 256, 1500, 256),
}
ORDER_MODELS = ("lsa", "softmax", "separate")  # whose order sensitivity is measured
WEIGHT_MODELS = ("lsa", "lsa_init1")  # whose weights are compared with the construction
ORDER_TASKS = {"full": (2000, 20), "quick": (500, 8)}  # (held-out tasks, context orders per task)
ALPHA_FACTORS = np.geomspace(0.05, 4.0, 23)  # online SGD step alpha = factor * eta / N


def config(name: str) -> ExperimentConfig:
    """Full mode: model `name` of MODELS on paper_1layer's task."""
    model, steps, batch, _, _ = MODELS[name]
    train = TrainConfig(steps=steps, batch_size=batch, n_seeds=5, eval_every=100, ckpt_every=1000,
                        eval_tasks=2048, final_eval_tasks=10000)
    return dataclasses.replace(PAPER_1LAYER, name=f"{STUDY}_{name}", model=model, optim=OPTIM, train=train,
                               compare_against=("gd",))


def quick_train(name: str) -> TrainConfig:
    _, _, _, steps, batch = MODELS[name]
    return TrainConfig(steps=steps, batch_size=batch, n_seeds=2, eval_every=100, ckpt_every=steps - steps % 100,
                       eval_tasks=1024, final_eval_tasks=4000)


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[str, ExperimentConfig]:
    """{model name: config} in `mode` ("full" or "quick"; steps / batch_size: an intermediate full run)."""
    return {name: scaled(config(name), quick_train(name), mode=mode, steps=steps, batch_size=batch_size) for name in MODELS}


for _name in MODELS:
    register(config(_name), quick=quick_train(_name), study=STUDY)
