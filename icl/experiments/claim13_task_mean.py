"""Claim 13: with task vectors of non-zero mean, one linear self-attention layer is stuck at one GD
step from w = 0, while the same layer followed by an MLP does one GD step from a learned
initialisation w0 ~ mu and reaches a much lower loss (Zhang, Wu & Bartlett 2024, "In-context
learning of a linear transformer block: benefits of the MLP component and one-step GD
initialization": the linear transformer block, LSA + linear MLP, implements the GD-beta estimators,
one GD step from a learnable w0; LSA alone has an irreducible approximation error).

claim13_task_mean_<model>_n<N> — d = 5, x ~ N(0, I_5), w ~ N(mu, I) with mu = 1 (every coordinate:
    `linear` task, weight_mean = 1.0, |mu| = sqrt(5) = 2.24), noiseless, N = 10 and 20 context
    points; two models (`MODELS`):
      lsa  one LSA layer (1 head, init 0.02)
      mlp  the same layer followed by the codebase's residual MLP block (`ModelConfig.mlp`, width
           4 x 6 units, GELU; the paper's MLP is linear — a GELU MLP holds a linear one exactly,
           gelu(z) - gelu(-z) = z, so its class contains the paper's)
    Adam 3e-3 (b2 0.98, clip 1) with a cosine decay to 0 (claim 1's recipe); 3 seeds, 3,000 steps
    of batch 512. Compared (icl.analysis.task_mean, closed forms for x ~ N(0, I)) with one GD step
    from 0 and from the true mean mu, each at its optimal rate N / (N + d + 1), least squares
    (0: noiseless, N > d) and the zero predictor; the fitted initialisation w0 of each model.
  command:  python paper_figures/claim13_task_mean.py [--quick]   (`icl train claim13_task_mean_mlp_n10`)
  runtime:  full 83 s of training (4 runs x 3 seeds x 3,000 steps of batch 512: LSA 18 / 16 s,
            LSA + MLP 24 / 26 s at N = 10 / 20), 187 s wall on the 2-core CPU beside other jobs
            (load ~8); quick (800 steps of batch 512, 2 seeds) 46 s of training, 135 s wall under that load
  numbers:  paper_figures/claim13_task_mean.json (3 seeds, 10,000 held-out tasks), N = 10 / 20:
            loss LSA 1.501 / 1.009, LSA + MLP 0.877 / 0.557; one GD step from 0 1.824 / 1.173, from mu
            0.912 / 0.587 (closed forms 1.875 / 1.154, 0.938 / 0.577); gap closed LSA 0.354 / 0.280,
            LSA + MLP 1.038 / 1.051; LSA + MLP fitted |w0| 2.230 / 2.238 (|mu| 2.236), model_cos vs
            one GD step from mu 0.989 / 0.994
"""

from __future__ import annotations

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim13_task_mean"
D, WEIGHT_MEAN = 5, 1.0
N_CTX = (10, 20)
MODELS = {  # name -> ModelConfig fields
    "lsa": dict(),
    "mlp": dict(mlp=True, mlp_width=4),
}
QUICK = TrainConfig(steps=800, batch_size=512, n_seeds=2, eval_every=100, ckpt_every=800,
                    eval_tasks=1024, final_eval_tasks=4000)


def _config(model: str, n_ctx: int) -> ExperimentConfig:
    return ExperimentConfig(
        name=f"{STUDY}_{model}_n{n_ctx}",
        task=tasks.get("linear", d=D, n_ctx=n_ctx, input_dist="gaussian", weight_mean=WEIGHT_MEAN),
        model=ModelConfig(n_layers=1, attention="linear", init_scale=0.02, **MODELS[model]),
        optim=OptimConfig(name="adam", lr=3e-3, b2=0.98, grad_clip=1.0, schedule="cosine"),
        train=TrainConfig(steps=3000, batch_size=512, n_seeds=3, eval_every=100, ckpt_every=1000,
                          eval_tasks=2048, final_eval_tasks=10000, reference="gd"),
        compare_against=("gd", "least_squares"),
    )


CONFIGS = {(m, n): register(_config(m, n), quick=QUICK, study=STUDY) for n in N_CTX for m in MODELS}


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[tuple[str, int], ExperimentConfig]:
    """{(model, N): config} in `mode` (registry.scaled)."""
    return {key: scaled(c, QUICK, mode=mode, steps=steps, batch_size=batch_size) for key, c in CONFIGS.items()}
