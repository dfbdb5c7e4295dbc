"""Beyond attention: recurrent and state-space layers trained on in-context regression at every
position (`train.objective="causal"`), then compared per prefix with every learner
(`icl.analysis.recurrent`, paper_figures/beyond_attention.py).

Two parts, x ~ N(0, I_5), T = 21 pairs (n_ctx 20 + 1 query), Adam with warm-up, batch 64:

  rec_<family>_<task>      — one layer on raw tokens [x, y] (no MLP, no LayerNorm; the scale at
      which a layer's algorithm can be read off, as von Oswald et al.'s one-layer LSA), for the
      families linear attention (`la`), gated linear attention (`gla`, gate "input"), the delta
      rule (`deltanet`, unnormalised keys), the selective SSM (`mamba`, as Mamba: silu and output
      gate) and the gated linear RNN (`grnn`), each at its family's defaults otherwise, on
      noiseless (`linear`) and noisy (`noisy`, sigma = 0.5) linear regression. 4,000 steps.
  deep_<family>_<task>     — CPU-sized deep models (2 blocks of width 32 with LayerNorm and MLP;
      the GPT-2 "tiny" size for the transformer) on noiseless linear regression and two-layer
      ReLU networks (`relu`, 100 hidden units): "do they reach transformer-level in-context
      regression?" (Park et al. 2024; Grazzi et al. 2024). 3,000 steps.

  command:  icl train rec_deltanet_linear [--quick]
            python paper_figures/beyond_attention.py [--quick]
  runtime:  the record's wall times (paper_figures/beyond_attention.json); quick mode (150 steps
            each) a few minutes in all on a 2-core CPU.
  numbers:  paper_figures/beyond_attention.json and its README section.
"""

from __future__ import annotations

from icl import models, tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled

STUDY = "recurrent"
D, N_CTX = 5, 20

# name -> (family, fields) of the one-layer models and of the deep ones
SHALLOW = {
    "la": ("linear_attention", {}),
    "gla": ("linear_attention", dict(gate="input")),
    "deltanet": ("deltanet", dict(normalize=False)),  # raw keys: online SGD on x is in its reach (icl.models.deltanet)
    "mamba": ("mamba", {}),
    "grnn": ("gated_rnn", {}),
}
DEEP_FIELDS = dict(n_layers=2, width=32, layernorm=True, mlp=True)
DEEP = {
    "gpt2": ("gpt2", dict(n_layers=2, width=32, n_heads=2, n_positions=N_CTX + 1)),
    "gla": ("linear_attention", dict(DEEP_FIELDS, gate="input", n_heads=2, key_size=16)),
    "deltanet": ("deltanet", dict(DEEP_FIELDS, n_heads=2, key_size=16)),
    "mamba": ("mamba", dict(DEEP_FIELDS)),
    "grnn": ("gated_rnn", dict(DEEP_FIELDS, state_size=128)),
}
TASKS = {
    "linear": tasks.get("linear", d=D, n_ctx=N_CTX, n_query=1, input_dist="gaussian"),
    "noisy": tasks.get("linear", d=D, n_ctx=N_CTX, n_query=1, input_dist="gaussian", noise_std=0.5),
    "relu": tasks.get("relu_net", d=D, n_ctx=N_CTX, n_query=1, hidden=100),
}
SHALLOW_TASKS, DEEP_TASKS = ("linear", "noisy"), ("linear", "relu")
OPTIM = OptimConfig(name="adam", lr=1e-3, b2=0.999, warmup_steps=100, grad_clip=1.0)


def _train(steps: int, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=steps, batch_size=64, eval_every=500, ckpt_every=1000, eval_tasks=512,
                                 final_eval_tasks=2000, objective="causal"), **kw})


QUICK = _train(150, eval_every=50, ckpt_every=150, eval_tasks=128, final_eval_tasks=256)


def _register(prefix: str, name: str, family: str, fields: dict, task: str, steps: int) -> ExperimentConfig:
    return register(ExperimentConfig(name=f"{prefix}_{name}_{task}", task=TASKS[task], model=models.get(family, **fields),
                                     optim=OPTIM, train=_train(steps)), quick=QUICK, study=STUDY)


RUNS = {
    **{("rec", name, task): _register("rec", name, family, fields, task, 4000)
       for name, (family, fields) in SHALLOW.items() for task in SHALLOW_TASKS},
    **{("deep", name, task): _register("deep", name, family, fields, task, 3000)
       for name, (family, fields) in DEEP.items() for task in DEEP_TASKS},
}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None,
            part: str | None = None) -> list[ExperimentConfig]:
    """The study's runs in `mode` (registry.scaled); `part` "rec" or "deep" for one part."""
    return [scaled(config, QUICK, mode=mode, steps=steps, batch_size=batch_size)
            for (prefix, _, _), config in RUNS.items() if part in (None, prefix)]
