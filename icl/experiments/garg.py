"""Garg et al. (2022)'s setting: a GPT-2-style causal transformer trained at every position of
[x_1, y_1, ..., x_T, y_T] (`train.objective="causal"`), then compared per prefix with every
learner (`icl.analysis.prefix_curves`, paper_figures/garg_curves.py).

Two scales of the four tasks of their Figure 2 (x ~ N(0, I_d), noiseless):

  garg_linear, garg_sparse, garg_relu, garg_tree  — as published: d = 20; linear and sparse
      (k = 3) regression with T = 41 pairs, two-layer ReLU networks (100 hidden units) and depth-4
      decision trees with T = 101; `GPT2Config.named("garg")` (12 layers, width 256, 8 heads,
      9,534,977 parameters); Adam 1e-4, batch 64, 500,000 steps, with their curriculum
      (`train.curriculum="garg"`: dimensions 5 -> 20, points 11 -> 41 / 26 -> 101, every 2,000
      steps; `icl.curriculum`). A GPU job (about 316 GFLOP a step at T = 41).
  garg_linear_cpu, garg_sparse_cpu, garg_relu_cpu, garg_tree_cpu  — the CPU scale: d = 5; T =
      2d + 1 = 11 for linear and sparse (k = 2), T = 26 for ReLU nets and trees (Garg's ratio,
      ~5d); `GPT2Config.named("cpu")` (3 layers, width 64, 4 heads); Adam 1e-3 (warm-up 100,
      clip 1), batch 64, 6,000 steps; 61 / 155 ms a step at T = 11 / 26 on a loaded 2-core CPU.
      No curriculum: Garg's would start at min(5, d) = d dimensions and k d + 1 = T points, the
      final task, so it would change nothing at d = 5.

  command:  icl train garg_linear_cpu [--quick]
            python paper_figures/garg_curves.py [--quick] [--published]
  runtime:  CPU scale: the record's wall time (paper_figures/garg_curves.json); quick mode
            (300 steps of batch 64) about a minute a task on a 2-core CPU.
  numbers:  the per-prefix curves in paper_figures/garg_curves.json and paper_figures/README.md.
"""

from __future__ import annotations

from icl import models, tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models.gpt2 import SIZES

STUDY = "garg"
KINDS = ("linear", "sparse", "relu", "tree")
# the learners each task is compared with at every prefix: Garg et al.'s, plus the GD family
LEARNERS = {
    "linear": ("least_squares", "ridge", "gd", "gd_plus_plus", "newton", "online_sgd", "knn", "averaging"),
    "sparse": ("lasso", "least_squares", "gd", "online_sgd", "knn", "averaging"),
    "relu": ("relu_net_gd", "kernel_ridge", "least_squares", "gd", "knn", "averaging"),
    "tree": ("greedy_tree", "greedy_tree_unbounded", "boosted_trees", "knn", "least_squares", "averaging"),
}


def task(kind: str, d: int, short: int, long: int, k: int):
    """The task of `kind` with T = short (linear, sparse) or long (relu, tree) pairs per sequence."""
    if kind == "linear":
        return tasks.get("linear", d=d, n_ctx=short - 1, n_query=1, input_dist="gaussian")
    if kind == "sparse":
        return tasks.get("sparse_linear", d=d, n_ctx=short - 1, n_query=1, k=k)
    if kind == "relu":
        return tasks.get("relu_net", d=d, n_ctx=long - 1, n_query=1, hidden=100)
    if kind == "tree":
        return tasks.get("decision_tree", d=d, n_ctx=long - 1, n_query=1, depth=4)
    raise ValueError(f"garg: kind must be one of {', '.join(KINDS)}, got {kind!r}")


def _train(steps: int, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=steps, batch_size=64, eval_every=250, ckpt_every=1000, eval_tasks=512,
                                 final_eval_tasks=2000, objective="causal"), **kw})


QUICK = _train(300, eval_every=100, ckpt_every=300, eval_tasks=256, final_eval_tasks=500)

PUBLISHED = {
    kind: register(ExperimentConfig(
        name=f"garg_{kind}", task=task(kind, 20, 41, 101, 3),
        model=models.get("gpt2", **SIZES["garg"], n_positions=101),
        optim=OptimConfig(name="adam", lr=1e-4, b2=0.999),
        train=_train(500_000, eval_every=1000, ckpt_every=10_000, curriculum="garg"),
    ), quick=QUICK, study=STUDY)
    for kind in KINDS
}

CPU = {
    kind: register(ExperimentConfig(
        name=f"garg_{kind}_cpu", task=task(kind, 5, 11, 26, 2),
        model=models.get("gpt2", **SIZES["cpu"], n_positions=26),
        optim=OptimConfig(name="adam", lr=1e-3, b2=0.999, warmup_steps=100, grad_clip=1.0),
        train=_train(6000),
    ), quick=QUICK, study=STUDY)
    for kind in KINDS
}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None,
            published: bool = False) -> list[ExperimentConfig]:
    """The study's four runs (CPU scale, or as published) in `mode` (registry.scaled)."""
    chosen = PUBLISHED if published else CPU
    return [scaled(chosen[kind], QUICK, mode=mode, steps=steps, batch_size=batch_size) for kind in KINDS]
