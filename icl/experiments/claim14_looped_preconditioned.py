"""Claim 14: a looped (weight-tied) linear transformer trained on in-context linear regression
with anisotropic inputs implements multi-step preconditioned GD: after l loops its prediction is
l steps of preconditioned GD with ONE preconditioner Gamma (~ a multiple of Sigma^-1 for large N),
and its loss falls with l as K-step preconditioned GD's (Gatmiry, Saunshi, Reddi, Jegelka & Kumar,
ICML 2024).

claim14_looped_preconditioned — one shared LSA layer (1 head, init 0.02) looped L = 3 times on
    linear tasks, d = 5, N = 20, x ~ N(0, Sigma) with Sigma Haar-rotated, condition number 10,
    noiseless; Adam 3e-3 (b2 0.98, clip 1) with a cosine decay to 0; 3 seeds, 6,000 steps of
    batch 2048. Analysis (icl.analysis.looped_preconditioned): the read-out after each loop l
    against l steps of preconditioned GD with one Gamma (read off the shared layer's weights, or
    fitted by least squares to the first loop's predictions), against l steps of plain GD at the
    lr fitted to that loop, and cos(Gamma, Sigma^-1) vs cos(Gamma, I).
  command:  python paper_figures/claim14_looped_preconditioned.py [--quick]
            (`icl train claim14_looped_preconditioned [--quick]`)
  runtime:  full 586 s of training on the 2-core CPU (beside other jobs) + ~1 min of analysis;
            quick (800 steps of batch 256, 2 seeds) ~1.5 min, ~35 s with the run reused
  numbers:  paper_figures/claim14_looped_preconditioned.json: per seed and loop l = 1..L the
            model_cos / preds_diff / loss of the model, of l-step PGD with the read-off and the fitted
            Gamma, and of l-step GD; the matrix cosines of Gamma with Sigma^-1 and I; the best
            one-Gamma 3-step PGD. Full: 2 of 3 seeds converge (loss after 3 loops 0.008 vs 0.116 for
            the best one-Gamma 3-step PGD); their loop 1 is one PGD step with Gamma = 1.96 Sigma^-1 / N
            (model_cos 1.0000, cos(Gamma, Sigma^-1) 1.000 vs I 0.81), but loops 2-3 are not PGD with
            that Gamma (model_cos 0.29-0.61): the layer writes into the x slots (23 % of W_v W_o).
"""

from __future__ import annotations

from icl import tasks
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.experiments.registry import register, scaled
from icl.models import ModelConfig

STUDY = "claim14_looped_preconditioned"
D, N_CTX, LOOPS, KAPPA = 5, 20, 3, 10.0
QUICK = TrainConfig(steps=800, batch_size=256, n_seeds=2, eval_every=100, ckpt_every=400,
                    eval_tasks=512, final_eval_tasks=2000)


def _config() -> ExperimentConfig:
    return ExperimentConfig(
        name=STUDY,
        task=tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance="rotated", condition_number=KAPPA),
        model=ModelConfig(n_layers=LOOPS, shared=True, attention="linear", init_scale=0.02),
        optim=OptimConfig(name="adam", lr=3e-3, b2=0.98, grad_clip=1.0, schedule="cosine"),
        train=TrainConfig(steps=6000, batch_size=2048, n_seeds=3, eval_every=250, ckpt_every=1000,
                          eval_tasks=2048, final_eval_tasks=10000),
        compare_against=("gd", "least_squares"),
    )


CONFIG = register(_config(), quick=QUICK, study=STUDY)


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> list[ExperimentConfig]:
    """The one run, in `mode` (registry.scaled)."""
    return [scaled(CONFIG, QUICK, mode=mode, steps=steps, batch_size=batch_size)]
