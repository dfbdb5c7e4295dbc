"""Figure 3 (von Oswald et al. 2023, Sec. 4, recurrent transformers): a trained shared (looped) LSA
layer applied for more steps than it was trained for, with damping, vs GD with more steps.

No runs of its own: the study loops figure 2's shared-weight stacks fig2_L<K>_shared (registered
by `icl.experiments.fig2_depth`, so the same run directories: a run finished by fig2_depth is
reused, else the script trains it), for K_train in K_TRAINS, applied for K' = 1..K_MAX layers, undamped and with the damping lambda*
fitted per seed (`icl.analysis.looping`: grid, then golden section, on the loss after K_MAX layers
on held-out tuning tasks). Against: GD for K' steps at the lr tuned for K_train steps (the same step
repeated), GD with the lr re-tuned for each K' in BEST_KS (the best GD can do), and GD++ with the
(lr, gamma) fitted for K_train steps, repeated.

  command:  python paper_figures/fig3_recurrence.py [--quick]
            the committed record is the intermediate setting --steps 1500 --batch-size 512
  runtime:  full: fig2's shared runs K = 2, 3, 5, then minutes of evaluation; quick (K = 2, 4 of
            fig2 --quick, K' <= 12) ~1 min after fig2_depth --quick
  numbers:  paper_figures/fig3_recurrence.json: per K_train the loss after every K' undamped and
            damped (lambda* per seed), GD with the K_train-step lr repeated, GD++ repeated, and GD
            with the lr re-tuned per K'.
"""

from __future__ import annotations

from icl.config import ExperimentConfig
from icl.experiments import fig2_depth

STUDY = "fig3_recurrence"
K_TRAINS = (2, 3, 5)
QUICK_K_TRAINS = (2, 4)
K_MAX, QUICK_K_MAX = 20, 12  # the largest K' (layer applications / GD steps)
BEST_KS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20)  # the K' where GD's lr is re-tuned (each compiles: a subset)
LAMBDA_MAX, LAMBDA_GRID = 1.5, 31  # damping lambda in [0, LAMBDA_MAX]: grid points before the golden section
LAMBDA_TASKS = 2000  # lambda* is fitted on the first 2,000 held-out tuning tasks


def k_trains(mode: str = "full") -> tuple[int, ...]:
    return QUICK_K_TRAINS if mode == "quick" else K_TRAINS


def k_max(mode: str = "full") -> int:
    return QUICK_K_MAX if mode == "quick" else K_MAX


def configs(mode: str = "full", steps: int | None = None, batch_size: int | None = None) -> dict[int, ExperimentConfig]:
    """{K_train: fig2's shared-weight run with K_train layers} in `mode`."""
    return {k: fig2_depth.config(k, True, mode, steps, batch_size) for k in k_trains(mode)}
