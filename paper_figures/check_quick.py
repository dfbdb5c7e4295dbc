"""Check the headline numbers of every figure's and claim's quick mode (CI, after run_quick.sh).

    python paper_figures/check_quick.py [--out DIR]     # DIR: what run_quick.sh wrote (default paper_figures/quick/)

run_quick.sh only fails when a script crashes; a script that runs to the end with a model that did
not learn, a solver that is wrong or a metric that is broken passes it. This reads each script's
numbers file (`<out>/<script>.json`, `common.write_numbers`, mode "quick") and holds each headline
number inside a band. Every band is set from a quick run on the 2-core CPU (jax 0.10.2, float32,
the quick configs as of 2026-12-07; the measured value is in `measured`) with room for the runs'
float32 rounding on another CPU or XLA version (training on the same tasks, so only the reduction
order differs: a converged run moves by well under 1 %, a plateau escape by a chart interval or
two), and each says what a broken run would give (`broken`): a band that a broken model passes
is no check. Most numbers are ratios, to the reference solver's loss on the same tasks or to the
zero predictor's (loss ratio 1 = predicting 0, what an untrained model of init scale ~0 does).

Exit status 1 when a number is outside its band, a numbers file is missing or not a quick run's,
or a script (fig*.py, claim*.py) has no checks here: a new script must add its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def mean(x) -> float:
    """The mean over seeds of a `runs.stats` record, a list, or a number."""
    if isinstance(x, dict):
        return float(x["mean"])
    if isinstance(x, list):
        return sum(map(float, x)) / len(x)
    return float(x)


def curve(x) -> list[float]:
    """The seed-mean curve of a `runs.stats` record over a grid (or the curve itself)."""
    return x["mean"] if isinstance(x, dict) else x


def seeds(x) -> list[float]:
    return [float(v) for v in (x["values"] if isinstance(x, dict) else x)]


@dataclasses.dataclass(frozen=True)
class Check:
    what: str
    value: Callable[[dict], float]  # numbers -> the headline number
    low: float
    high: float
    measured: float  # the quick run the band was set from
    broken: str  # what a broken run gives, outside the band
    why: str = ""  # the band's reasoning, where not obvious


CHECKS: dict[str, list[Check]] = {}

# -- figure 1: one LSA layer vs one GD step (1,000 steps of batch 512, 2 seeds) -------------------
CHECKS["fig1_one_layer"] = [
    Check("optimal one-step GD rate eta* (closed form, 65,536 tasks)", lambda n: n["final"]["eta"], 5.95, 6.2, 6.0687,
          "a wrong solver or task prior moves it (d = N = 10, x ~ U[-0.5, 0.5]: the paper's 6.06)",
          "deterministic up to float32 sums: the band is the reference code's 6.06 to 6.07 with room"),
    Check("trained 1-layer loss / one-step GD loss (2,000 tasks, mean of 2 seeds)",
          lambda n: mean(n["final"]["trained_loss"]) / n["final"]["gd_loss"], 0.98, 1.03, 1.0022,
          "zero predictor 1.99, the plateau ~1.9, a model halfway off it ~1.1",
          "the full run reaches 1.002; the quick run is already there (seeds 0.9988 and 1.0058)"),
    Check("model_cos vs GD (sensitivities' cosine, mean of 2 seeds)", lambda n: mean(n["final"]["model_cos"]), 0.99, 1.0, 0.9979,
          "untrained ~0.00, the plateau 0.14, a model halfway off it ~0.8 (full run's curve)"),
]

# -- figure 1, the plateau: 4 seeds x 600 steps of batch 256 --------------------------------------
CHECKS["fig1_plateau"] = [
    Check("seeds that leave the plateau (of 4)", lambda n: n["settings"][0]["n_escaped"], 2, 4, 3,
          "a model that never learns: 0",
          "seed 0 escapes late at this batch size (full mode: 29/32 escape by step 3,000 at batch 512)"),
    Check("best seed's final loss / one-step GD loss", lambda n: min(seeds(n["settings"][0]["final_loss"])) / n["settings"][0]["gd_loss"],
          0.98, 1.10, 1.0404, "zero predictor 1.99, stuck on the plateau 1.79 (seed 0)"),
    Check("median escape step", lambda n: n["settings"][0]["escape_quantiles"]["50"], 150, 450, 250,
          "never escaping: no median (null, fails); the full mode's median at batch 512 is 250"),
]

# -- claim 1: one LSA layer converges to preconditioned GD with Gamma* (2,000 steps of batch 512) --
CHECKS["claim1_gamma_star"] = [
    Check("isotropic: ||Gamma - Gamma*|| / ||Gamma*|| (mean of 2 seeds)", lambda n: mean(n["settings"][0]["distances"]["gamma_star"]),
          0.0, 0.05, 0.0094, "untrained (Gamma ~ 0): 1.0; the analysis' 'converged' threshold is 0.1"),
    Check("isotropic: trained loss at the training N / closed-form loss of Gamma*",
          lambda n: mean(n["settings"][0]["loss"]["model_at_train_n"]) / n["settings"][0]["loss"]["closed_form_gamma_star"],
          0.98, 1.05, 1.0118, "zero predictor 4.2; Gamma* is the optimum, so < 1 only by sampling error (1,000 tasks)"),
    Check("diagonal (kappa 20): best seed's ||Gamma - Gamma*|| / ||Gamma*||",
          lambda n: min(seeds(n["settings"][1]["distances"]["gamma_star"])), 0.0, 0.1, 0.0125,
          "plain GD (best c I): 0.53; untrained: 1.0", "seed 0 is still on its way (0.89); seed 1 has converged"),
]

# -- claim 2: deeper LSA vs Newton and GD (5 layers, kappa 1 and 50, 600 steps) -------------------
CHECKS["claim2_deep_newton"] = [
    Check("kappa 1: 5-layer loss / zero predictor's (mean of 2 seeds)",
          lambda n: mean(n["by_kappa"][0]["final_table_loss"]) / n["by_kappa"][0]["zero_loss"], 0.0, 0.25, 0.0955,
          "untrained: 1.0", "seeds 0.136 and 0.055: the quick run is far from converged, the band leaves room"),
    Check("kappa 1: last layer's loss / first layer's (the stack refines layer by layer)",
          lambda n: mean(n["by_kappa"][0]["model_loss"][-1]) / mean(n["by_kappa"][0]["model_loss"][0]), 0.0, 0.5, 0.176,
          "layers that do not compose: ~1"),
    Check("kappa 50: 5-layer loss / zero predictor's (mean of 2 seeds)",
          lambda n: mean(n["by_kappa"][1]["final_table_loss"]) / n["by_kappa"][1]["zero_loss"], 0.0, 0.3, 0.145,
          "untrained: 1.0"),
]

# -- claim 3: the algorithm with depth and noise (depths 1, 2, 4; 600 steps of batch 256) ---------
CHECKS["claim3_algorithm_transition"] = [
    Check("noiseless, depth 4: loss / one GD step's loss (mean of 2 seeds)",
          lambda n: mean(n["by_noise"]["0"]["models"]["4"]["loss"]) / n["by_noise"]["0"]["algorithm_loss"]["gd1"], 0.75, 1.25, 0.9967,
          "zero predictor 2.80; depths 1 and 2, still on the plateau at this length, 2.55 and 2.30",
          "seeds 1.108 and 0.885: the depth-4 stack has just left the plateau"),
    Check("noisy (sigma 1), depth 4: loss / one GD step's loss (mean of 2 seeds)",
          lambda n: mean(n["by_noise"]["1"]["models"]["4"]["loss"]) / n["by_noise"]["1"]["algorithm_loss"]["gd1"], 0.8, 1.25, 1.0087,
          "zero predictor 2.21; depth 1 on the plateau 2.05"),
]

# -- claim 4: task diversity (softmax and 1-layer LSA, pools of K = 4, 64, inf) -------------------
CHECKS["claim4_task_diversity"] = [
    Check("softmax, K = 4, on pool tasks: model MSE / zero predictor's",
          lambda n: mean(n["by_model"]["softmax"][0]["pool"]["model_mse"]) / n["by_model"]["softmax"][0]["pool"]["zero_mse"],
          0.04, 0.2, 0.0851, "untrained: 1.0; the pool's Bayes-optimal dMMSE 0.048 is the floor (below it: leakage)"),
    Check("softmax, K = 4, on fresh tasks: model MSE / zero predictor's (memorised the pool)",
          lambda n: mean(n["by_model"]["softmax"][0]["fresh"]["model_mse"]) / n["by_model"]["softmax"][0]["fresh"]["zero_mse"],
          0.85, 1.2, 0.9875, "a model that generalises like ridge: 0.064; a pool that leaks fresh tasks in would do that"),
    Check("softmax, K = inf, on fresh tasks: model MSE / zero predictor's",
          lambda n: mean(n["by_model"]["softmax"][2]["fresh"]["model_mse"]) / n["by_model"]["softmax"][2]["fresh"]["zero_mse"],
          0.064, 0.55, 0.364, "untrained: 1.0; ridge (Bayes-optimal) 0.064 is the floor"),
]

# -- claim 5: order (1-layer LSA paired tokens vs separate tokens with positions) ----------------
CHECKS["claim5_order"] = [
    Check("paired-token LSA: order sensitivity (exactly invariant: float32 rounding)",
          lambda n: mean(n["models"]["lsa"]["order"]["sensitivity"]), 0.0, 1e-5, 4.1e-8,
          "an order-dependent model: the separate-token one's 0.24"),
    Check("separate tokens + positions: order sensitivity",
          lambda n: mean(n["models"]["separate"]["order"]["sensitivity"]), 0.05, 1.0, 0.239,
          "a permutation that does nothing (or an order-blind model): ~1e-7"),
    Check("paired-token LSA: loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["models"]["lsa"]["final_loss"]) / n["models"]["lsa"]["gd_loss"], 0.98, 1.05, 1.0035,
          "zero predictor ~2.0"),
    Check("paired-token LSA: cosine of its A = W_q W_k^T to the GD construction's (seed 0)",
          lambda n: n["weights"]["lsa"][0]["cos_A"], 0.98, 1.0, 0.9978, "untrained (random init): ~0"),
]

# -- figure 4: sine regression with a learned embedding (600 steps of batch 128, 2 seeds) ---------
CHECKS["fig4_sine"] = [
    Check("GD on learned features (attention frozen to one GD step): loss / zero predictor's",
          lambda n: mean(n["gd_on_learned_features_loss"]) / n["zero_loss"], 0.05, 0.4, 0.204,
          "untrained embedding: ~1 (linear GD on raw x: 0.99)", "seeds 0.218 and 0.190"),
    Check("trained Transformer: loss / zero predictor's", lambda n: mean(n["trained_tf_loss"]) / n["zero_loss"], 0.3, 0.85, 0.661,
          "untrained: ~1 (linear GD on raw x: 0.99)", "seeds 0.616 and 0.706: the quick run stops early in training"),
    Check("RBF kernel ridge, tuned on validation tasks: loss / zero predictor's",
          lambda n: n["kernel_ridge_tuned"]["loss"] / n["zero_loss"], 0.005, 0.06, 0.0241,
          "untuned defaults (bandwidth 1, lam 1e-3): 0.079; a broken kernel: ~1"),
]

# -- figure 2: K layers vs K steps of GD and GD++ (K = 1, 2, 4; 500 steps of batch 256, 2 seeds) --
# The task is figure 1's (d = N = 10): the zero predictor's loss is ~0.41, 1.99 x one GD step's.
CHECKS["fig2_depth"] = [
    Check("2 layers (separate weights): loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["trained"]["sep"]["2"]["final"]["loss"]) / n["solvers"]["1"]["gd_loss"], 0.5, 1.1, 0.986,
          "zero predictor ~1.99, the plateau ~1.85; two GD++ steps (0.54) are the floor of a 2-layer stack here",
          "seeds 1.020 and 0.952: at 500 steps the 2-layer stacks are just past one GD step"),
    Check("2 layers (separate weights): model_cos vs 2 steps of GD (mean of 2 seeds)",
          lambda n: mean(n["trained"]["sep"]["2"]["final"]["model_cos_gd"]), 0.8, 1.0, 0.912,
          "untrained ~0; a 1-layer seed still on the plateau 0.34"),
    Check("4 layers (separate weights): loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["trained"]["sep"]["4"]["final"]["loss"]) / n["solvers"]["1"]["gd_loss"], 0.5, 1.6, 1.335,
          "zero predictor ~1.99, the plateau ~1.85", "seeds 1.419 and 1.251: the deep stacks are far from converged at 500 steps"),
]

# -- figure 6: distractor labels in the context (0, 2, 4 distractors; 1,000 steps of batch 512) ---
CHECKS["fig6_distractors"] = [
    Check("no distractors: model loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["by_n_distract"][0]["model_loss"]) / n["by_n_distract"][0]["gd_loss"], 0.98, 1.15, 1.049,
          "zero predictor 2.07", "seeds 1.095 and 1.004"),
    Check("2 distractors: model loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["by_n_distract"][1]["model_loss"]) / n["by_n_distract"][1]["gd_loss"], 0.97, 1.05, 0.9989,
          "zero predictor 1.64"),
    Check("4 distractors: model loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["by_n_distract"][2]["model_loss"]) / n["by_n_distract"][2]["gd_loss"], 0.97, 1.08, 1.0108,
          "zero predictor 1.32"),
    Check("2 distractors: least squares loss / zero predictor's (interpolating the distractors fails)",
          lambda n: n["by_n_distract"][1]["least_squares_loss"] / n["by_n_distract"][1]["zero_loss"], 10.0, math.inf, 6.13e4,
          "distractors that are not injected: least squares is exact, ~1e-9"),
]

# -- figure 5: classic tokens, a softmax layer learns to copy, then linear attention does GD -------
# (2,000 steps of batch 256, 2 seeds: seed 1 has formed the copy, seed 0 is half way)
CHECKS["fig5_classic_tokens"] = [
    Check("copy score of the trained softmax layer (mean of 2 seeds)", lambda n: mean(n["copy_score_trained"]), 0.2, 1.0, 0.396,
          "untrained: uniform attention over the 10 context positions, 0.100 (copy_score_init)", "seeds 0.198 and 0.594"),
    Check("best seed: model loss / one-step GD loss", lambda n: min(seeds(n["model_loss"])) / n["gd_loss"], 0.98, 1.2, 1.052,
          "zero predictor 2.04; seed 0, still forming the copy, 1.74"),
    Check("best seed: model_cos vs one GD step", lambda n: max(seeds(n["model_cos"])), 0.9, 1.0, 0.985,
          "untrained ~0; seed 0, still forming the copy, 0.62"),
]

# -- figure 3: figure 2's shared layers looped past their training depth (K_train = 2, 4; K' <= 12) --
# loss_vs_lambda[0] is damping 0: the model predicts 0, so it is the zero predictor's loss (0.41).
CHECKS["fig3_recurrence"] = [
    Check("K_train 4, looped to K' = 12: damped loss / undamped loss",
          lambda n: curve(n["trained"]["4"]["damped"])[-1] / curve(n["trained"]["4"]["undamped"])[-1], 0.0, 0.5, 0.125,
          "damping that does nothing: 1.0"),
    Check("K_train 4, looped to K' = 12 with damping: loss / zero predictor's",
          lambda n: curve(n["trained"]["4"]["damped"])[-1] / curve(n["trained"]["4"]["loss_vs_lambda"])[0], 0.0, 0.95, 0.824,
          "the undamped loop 6.6; a model no better than predicting 0: 1.0",
          "the quick shared stacks are barely off the plateau (fig2_depth), so the damped loop only just beats 0"),
    Check("12 GD steps at their own tuned rate: loss / one step's (the solver reference the loop is drawn against)",
          lambda n: n["gd_best_per_k_prime"][-1] / n["gd_best_per_k_prime"][0], 0.33, 0.45, 0.388,
          "12 steps at the 4-step fixed rate: 2.41 (gd_fixed); a rate search that returns one step's rate diverges"),
]


# (insert with the other CHECKS, before `def scripts()`: text after the `if __name__ == "__main__"` block is never read)
# -- claim 7: distribution shift (one 2-head LSA layer, rotated kappa 10, sigma 0.5; 1,500 steps of batch 512) --
CHECKS["claim7_distribution_shift"] = [
    Check("||Gamma - Gamma*|| / ||Gamma*|| (mean of 2 seeds)", lambda n: mean(n["distance_to_gamma_star"]), 0.0, 0.05, 0.0112,
          "untrained (Gamma ~ 0): 1.0; a one-head seed stalled in claim 1's sign trap ~0.7",
          "seeds 0.013 and 0.009; the full run reaches 0.003-0.006"),
    Check("worst |model / Gamma*-GD - 1| over the 12 shifts and the seeds (same tasks)",
          lambda n: n["verdict"]["max_tracking_gap"], 0.0, 0.06, 0.0245,
          "an untrained layer (the zero predictor) 0.7 and more; a layer that is not preconditioned GD moves under shift",
          "largest at Lambda' = 2 Lambda (heavy-tailed errors) for the less converged quick seeds; full run 0.008"),
    Check("task shift: worst model / best one-layer LSA for the shifted tasks", lambda n: n["verdict"]["max_task_over_best"],
          0.97, 1.15, 1.0822, "the zero predictor 1.9 and more; the closed form of Gamma* gives 1.00-1.10 (mean of w of norm 2: 1.09)"),
    Check("covariate shift: least model / best one-layer LSA for the shifted inputs", lambda n: n["verdict"]["min_covariate_over_best"],
          1.4, 2.5, 1.6841, "a learner that adapts to the input covariance ~1; the zero predictor at Lambda' = 0.5 Lambda 3.4",
          "the mildest shift is Lambda' = 0.5 Lambda (closed form of Gamma*: 1.59); full run 1.65"),
]


# Insert with the other CHECKS entries, i.e. before `def scripts()` (appended after the
# `if __name__ == "__main__"` block it would run after main() and count as missing).

# -- claim 6: one LSA layer on non-linear targets vs one GD step (800 steps of batch 512, 2 seeds) -
CHECKS["claim6_nonlinear_one_step"] = [
    Check("ReLU-net targets: trained loss / one-step GD loss at the optimal rate (mean of 2 seeds)",
          lambda n: mean(n["families"]["relu"]["loss"]["model_over_gd"]), 0.98, 1.03, 1.0008,
          "zero predictor 1.29; kernel ridge's loss would give 0.41 (a learner that is not one GD step)",
          "the full run reaches 1.0000; the quick seeds are 0.9999 and 1.0018"),
    Check("ReLU-net targets: model_cos vs one GD step (mean of 2 seeds)",
          lambda n: mean(n["families"]["relu"]["vs_gd"]["model_cos"]), 0.99, 1.0, 0.99927,
          "untrained ~0.0; least squares 0.80, tuned kernel ridge 0.74 (the full run's cosines against the model)"),
    Check("sign targets: model_cos vs one GD step (mean of 2 seeds)",
          lambda n: mean(n["families"]["sign"]["vs_gd"]["model_cos"]), 0.99, 1.0, 0.99975,
          "untrained ~0.0; logistic regression 0.955, least squares 0.80"),
    Check("ReLU-net targets: the layer's rate N tr(Gamma) / d over the closed-form N c* = N / (N + 2d + 3)",
          lambda n: mean(n["families"]["relu"]["step"]["lr_effective"]) / n["families"]["relu"]["step"]["lr_closed_form"],
          0.95, 1.05, 0.9968,
          "untrained ~0; the linear family's rate N / (N + d + 1) in the closed form (a wrong G or F) gives 0.70",
          "the full run's seeds are 0.6-1.3 % above the closed form; the estimated rate is 0.9 % above it"),
]



# -- claim 8: optimiser quirks of a 3-layer linear LSA (Adam vs SGD, gradient noise; 1,000 steps of batch 128) --
CHECKS["claim8_optimizer_quirks"] = [
    Check("Adam (tuned lr, clip 1): final held-out loss / one-step GD loss (mean of 2 seeds)",
          lambda n: mean(n["runs"]["clipped"]["adam"]["final_loss"]) / n["references"]["gd_loss"], 0.0, 0.05, 0.0039,
          "untrained (zero predictor) 4.6; a 3-layer stack stuck at one GD step's level 1.0; the SGD runs 0.3",
          "seeds 0.0013 and 0.0065: a 3-layer stack goes far below one GD step; spikes of a seed move it, not past 0.05"),
    Check("Adam: first step at 0.1 x one-step GD loss (mean of 2 seeds; evaluations every 25 steps)",
          lambda n: mean(n["speed"]["clipped"]["0.1x_gd"]["steps"]["adam"]), 75, 450, 175,
          "a run that never gets there: null (not readable, fails); the SGD runs: 600 or never",
          "seeds 150 and 200; the full run's three 250-350"),
    Check("gradient noise at Adam's middle checkpoint, minibatches of 128: Hill tail index of the norms (mean of 2 seeds)",
          lambda n: mean(n["noise_summary"]["adam_mid"]["minibatch_noise_hill_index"]), 0.5, 3.5, 1.95,
          "Gaussian noise of the same covariance: 6-15 (the record's reference); the noise at the initial weights: 6.9-7.7",
          "seeds 1.52 and 2.37 from 500 minibatches (k = 25: sampling sd ~20 %)"),
    Check("linear control model (y_hat = theta . x_q), minibatches of 128: kurtosis of the noise norms",
          lambda n: n["noise_summary"]["linear_control"]["minibatch_noise_kurtosis"], 2.5, 4.5, 3.34,
          "the LSA's noise: 25-380; a statistic that is not the Pearson kurtosis (e.g. excess): ~0.3",
          "a sum of 128 products of Gaussians: nearly Gaussian (3); 500 samples give sd ~0.3"),
]





# -- claim 9: Mamba vs GPT-2 on in-context regression (d = 5, T = 21, causal; GPT-2 200 steps, Mamba 100 steps of batch 64, 2 seeds)
# (block for paper_figures/check_quick.py, after claim 8's; uses its Check and mean)
CHECKS["claim9_ssm_vs_transformer"] = [
    Check("linear: one GD step (tuned rate), error past k = 7 (the analysis, no model)",
          lambda n: n["learners"]["linear"]["error_past_d_plus_2"]["gd"], 0.29, 0.40, 0.3417,
          "GD fitted on more pairs than precede each position: lower (GD on 20 pairs: 0.23); the error not divided by "
          "d (Garg et al.'s units) 1.71; the zero predictor ~1",
          "no training: 200 sequences; the full run's 2,000 give 0.342"),
    Check("relu: kernel ridge, error past k = 7 (the analysis, no model)",
          lambda n: n["learners"]["relu"]["error_past_d_plus_2"]["kernel_ridge"], 0.27, 0.41, 0.3375,
          "a kernel ridge that sees the label it predicts ~0; the zero predictor ~1.1; least squares 1.10",
          "no training: 200 sequences; the full run's 2,000 give 0.313"),
    Check("linear: Mamba's error past k = 7 after 100 steps (mean of 2 seeds)",
          lambda n: n["comparisons"]["linear"]["last_step"]["mamba"]["mean"], 0.2, 0.85, 0.4713,
          "untrained or stuck: 0.98 (its own curve to step 60); a causal leak (a position that reads its own label) ~0",
          "seeds 0.489 and 0.454, mid-descent (0.98 at step 60, 0.80 at 80): wide band; the full run reaches 0.080"),
    Check("relu: Mamba's error past k = 7 after 100 steps (mean of 2 seeds)",
          lambda n: n["comparisons"]["relu"]["last_step"]["mamba"]["mean"], 0.5, 0.95, 0.7239,
          "untrained ~1.1 (1.13-1.10 over its first 60 steps); a causal leak ~0", "seeds 0.686 and 0.762; the full run reaches 0.323"),
    Check("linear: GPT-2's error past k = 7 after 200 steps (mean of 2 seeds; still on its plateau)",
          lambda n: n["comparisons"]["linear"]["last_step"]["gpt2"]["mean"], 0.85, 1.05, 0.9670,
          "a causal mask that lets a position see its own label: ~0; a diverged model >> 1",
          "seeds 0.966 and 0.968: the full run leaves the plateau between steps 1,500 and 4,000"),
    Check("relu: GPT-2's error past k = 7 after 200 steps (mean of 2 seeds)",
          lambda n: n["comparisons"]["relu"]["last_step"]["gpt2"]["mean"], 0.65, 0.95, 0.7874,
          "a causal leak ~0; untrained 1.04 (step 40)", "seeds 0.781 and 0.794 (full run: 0.340 after 10,000 steps)"),
]

# -- claim 13: task vectors of non-zero mean, LSA vs LSA + MLP (800 steps of batch 512, 2 seeds) ---
CHECKS["claim13_task_mean"] = [
    Check("N = 10: one GD step from mu / one GD step from 0, each at its optimal rate (4,000 held-out tasks)",
          lambda n: n["runs"]["lsa_n10"]["on_tasks"]["gd_from_mean"] / n["runs"]["lsa_n10"]["on_tasks"]["gd_from_zero"],
          0.46, 0.55, 0.5052,
          "a task without the mean (weight_mean ignored) gives 1.0; the closed form d / (|mu|^2 + d) = 0.5",
          "no training: the sampler and the solvers only (sample noise of 4,000 tasks ~2 %)"),
    Check("N = 10: share of the gap between one GD step from 0 and from mu closed by LSA + MLP (mean of 2 seeds)",
          lambda n: mean(n["runs"]["mlp_n10"]["gap_closed"]), 0.8, 1.15, 1.006,
          "the LSA alone 0.33; an MLP that does not learn the mean 0.3 or less; an untrained model -3.5 (zero predictor)",
          "seeds 0.994 and 1.017 (a GELU MLP may go slightly past GD-beta); the full run is in the README"),
    Check("N = 10: share of that gap closed by the LSA alone (mean of 2 seeds)",
          lambda n: mean(n["runs"]["lsa_n10"]["gap_closed"]), 0.15, 0.5, 0.3315,
          "an LSA that could learn the mean (the claim broken) ~1; a layer that is exactly one GD step from 0: 0; "
          "untrained -3.5",
          "the label-label route sum y_i^2 (a . x_q) gives the LSA a noisy estimate of mu . x_q (icl.analysis.task_mean)"),
    Check("N = 10: LSA + MLP's fitted initialisation |w0| / |mu| (mean of 2 seeds)",
          lambda n: mean(n["runs"]["mlp_n10"]["init_fit"]["w0_norm"]) / n["runs"]["mlp_n10"]["closed_form"]["mu_norm"],
          0.85, 1.1, 0.9925,
          "the LSA alone 0.34; a model with no initialisation (one GD step from 0) 0"),
]



# -- claim 14: a looped LSA vs multi-step preconditioned GD (800 steps of batch 256, 2 seeds) -----
CHECKS["claim14_looped_preconditioned"] = [
    Check("loop 1 vs one PGD step with the read-off Gamma: best seed's model_cos",
          lambda n: max(s["loops"][0]["pgd_read_off"]["model_cos"] for s in n["seeds"]), 0.99, 1.0001, 0.99997,
          "a wrong read-out of Gamma (sign, transpose, missing head) or a broken PGD recursion: far below 0.99; plain GD 0.92",
          "the converged quick seed; the full run's converged seeds 1.0000 (the stalled seed 0.92-0.94)"),
    Check("best one-Gamma 3-step PGD (theory's optimum): cos(Gamma, Sigma^-1)",
          lambda n: n["optimal_loop_pgd"]["cos_sigma_inverse"], 0.95, 1.0, 0.97646,
          "an optimiser that does not move from its start: Gamma*(N) of one step; plain GD's c I: 0.83",
          "deterministic up to float32 sums (fixed test tasks, L-BFGS); the full record has the same 0.976"),
    Check("best one-Gamma 3-step PGD loss after 3 steps", lambda n: n["optimal_loop_pgd"]["loss_per_loop"][-1], 0.10, 0.135, 0.11645,
          "one step of it (a recursion that stops at l = 1) 0.80; the zero predictor ~2.4", "deterministic as the cosine"),
    Check("least loss of the trained looped model after 3 loops (over 2 seeds)",
          lambda n: min(s["loops"][-1]["model_loss"] for s in n["seeds"]), 0.0, 0.05, 0.01408,
          "a stalled seed 0.58-0.67, plain GD (matched lr) 0.35, the best one-Gamma 3-step PGD 0.116",
          "the loop beats any one-Gamma PGD by writing into the x slots; full run 0.008 (2 of 3 seeds)"),
]



CHECKS["claim15_task_mixture"] = [
    Check("mixture tasks: model MSE / mixture-Bayes MSE (mean of 2 seeds)",
          lambda n: mean(n["by_kind"]["mixture"]["model_mse"]) / n["by_kind"]["mixture"]["mixture_mse"],
          1.15, 2.4, 1.612, "untrained: ~3.6 (the zero predictor's 3.56 / 0.96); 1.0 is the Bayes floor (below it: leakage)"),
    Check("sparse tasks: model MSE / zero predictor's (mean of 2 seeds)",
          lambda n: mean(n["by_kind"]["sparse"]["model_mse"]) / n["by_kind"]["sparse"]["zero_mse"],
          0.3, 0.85, 0.618, "untrained: ~1.0; the sparse prior's Bayes predictor 0.32 is the floor"),
    Check("sparse tasks: mixture-Bayes MSE / ridge MSE (the analysis, no model)",
          lambda n: n["by_kind"]["sparse"]["mixture_mse"] / n["by_kind"]["sparse"]["ridge_mse"],
          0.5, 0.7, 0.590, "a mixture predictor that ignores the sparse prior (or swaps the weights): >= 1.0"),
    Check("dense tasks: mean posterior P(dense | context)",
          lambda n: n["by_kind"]["dense"]["p_dense_posterior"], 0.75, 0.9, 0.828,
          "the prior 0.5 (marginal likelihoods ignored), or 1 - 0.83 = 0.17 (components swapped)"),
]


# -- claim 16: saddle-to-saddle, ATTN_S (5 heads of key size 1) vs the merged stand-in (6,000 steps of batch 512, 2 seeds)
CHECKS["claim16_saddle_to_saddle"] = [
    Check("ATTN_S: drops of the held-out loss (mean of 2 seeds)",
          lambda n: mean([s["n_drops"] for s in n["sep"]["seeds"]]), 2, 3.5, 2.5,
          "a model that never leaves the zero plateau 0; every component at once (the merged model's way) 1",
          "seeds 3 and 2: seed 0's third drop (step 5,100) is near the end of the 6,000 steps, seed 1's comes later; "
          "the fourth needs 7,000-16,000 steps (full run)"),
    Check("ATTN_S: seeds whose learned components are the top ones, learned at strictly increasing steps (of 2)",
          lambda n: n["counts"]["sep_in_order_so_far"], 2, 2, 2,
          "components learned together (a tie at the 25-step resolution) or out of eigenvalue order: 0 or 1"),
    Check("ATTN_S: plateau after the first drop / in-context PCR loss L_1 on the same held-out tasks (mean of 2 seeds)",
          lambda n: mean([s["plateaus"][1]["level"] / n["sep"]["pcr_losses_on_tasks"][1] for s in n["sep"]["seeds"]]),
          0.98, 1.05, 1.0043,
          "no drop: not readable; two components in one drop 0.64 (L_2 / L_1); a PCR predictor or Gamma* that is wrong moves "
          "L_1 (the zero plateau would be 1.58)",
          "seeds 1.003 and 1.006: SGD noise in the weights keeps a plateau just above the exact PCR predictor on the same "
          "4,096 tasks (1.281; the closed form 1.319 is the expectation)"),
    Check("merged stand-in: final loss / the one-layer optimum L_d (mean of 2 seeds)",
          lambda n: mean([s["final_loss_over_optimum"] for s in n["merged"]["seeds"]]), 0.95, 1.1, 0.9946,
          "untrained 5.19 (L_0 / L_d); one component only 3.39 (L_1 / L_d, what the full run's seed 3 sits on for "
          "17,000 steps); an unstable lr > 1.1"),
    Check("merged stand-in: seeds with exactly one loss drop (of 2)", lambda n: n["counts"]["merged_drops_once"], 2, 2, 2,
          "components learned one drop at a time (ATTN_S's way) or a seed stalled after the first: 0 or 1"),
]


# -- claim 17: mixed noise levels, 4 LSA layers vs one-lambda ridge / oracle (800 steps of batch 512, 2 seeds) --
CHECKS["claim17_mixed_noise"] = [
    Check("choice: oracle ridge / one-lambda ridge (the analysis, no model)",
          lambda n: n["runs"]["choice"]["baselines"]["loss"]["oracle_ridge"] / n["runs"]["choice"]["baselines"]["loss"]["ridge_one_lambda"],
          0.92, 0.97, 0.9457,
          "an oracle that ignores sigma_t (or uses sigma_t for sigma_t^2), or a sampler with one noise level: >= 1.0",
          "no training: 4,000 tasks; the full run's 10,000 give 0.939"),
    Check("choice: the one tuned lam", lambda n: n["runs"]["choice"]["tuned"]["ridge_lam"], 4.0, 7.0, 5.408,
          "a sampler that ignores the mixture (sigma = 1 everywhere) ~1; the linear-MMSE value is E[sigma^2] = 5"),
    Check("choice: model / one-lambda ridge (mean of 2 seeds)",
          lambda n: mean(n["runs"]["choice"]["model"]["over_ridge_one_lambda"]), 0.92, 1.07, 1.0028,
          "untrained (zero predictor) 1.94; a diverged model >> 1",
          "seeds 1.019 and 0.987: not converged at 800 steps (full run 0.947)"),
    Check("uniform: model / one-lambda ridge (mean of 2 seeds)",
          lambda n: mean(n["runs"]["uniform"]["model"]["over_ridge_one_lambda"]), 0.92, 1.06, 0.9886,
          "untrained 2.54; any learner linear in the labels (GD, GD++, one layer) >= 1.0 in expectation (GD++ 1.02)",
          "seeds 0.999 and 0.978 (full run 0.946)"),
    Check("uniform: the model's effective lam, top sigma bin / bottom bin (seed means)",
          lambda n: (lambda lam: curve(lam[-1]) / curve(lam[0]))(n["runs"]["uniform"]["model"]["effective_lambda"]),
          1.5, 8.0, 2.365,
          "a learner that does not adapt to the noise: one-lambda ridge 1.0, GD++ 1.17; untrained ~1 (both at the 1e3 edge)",
          "the full run's 11.7 (0.51 -> 5.96); the oracle's is 121"),
]


# -- claim 18: reduced linear attention at finite d, double descent and task diversity (closed forms; LSA 800 steps of batch 256, 2 seeds)
CHECKS["claim18_asymptotics"] = [
    Check("double descent, d = 16, lam = 1e-4: peak location tau = n / d^2 (3 seeds, exact errors)",
          lambda n: n["double_descent"]["d16"]["peaks"][0]["x"], 0.93, 1.05, 0.990,
          "features of the wrong size (d (d + 1), an extra y^2 column) 1.06; a solver with no ridgeless limit "
          "(lam scaled up): no interior peak (tau = 0.1, the grid's edge)",
          "no training: the ridge Gamma along nested training sets; full run 0.991 (d = 16), 0.983 (d = 32)"),
    Check("double descent, d = 16, lam = 0.01: peak height / zero predictor's error",
          lambda n: n["double_descent"]["d16"]["peak_over_zero"][1], 2.3, 4.5, 3.070,
          "lam ignored (ridgeless) ~34; the penalty n lam instead of (n / d) lam (16x stronger) ~1.2; no peak ~1",
          "seed sd 0.28 of 3 seeds; full run 3.21 (8 seeds)"),
    Check("double descent, d = 16, lam = 1: largest error over tau / zero predictor's (the peak is gone)",
          lambda n: n["double_descent"]["d16"]["peak_over_zero"][3], 0.9, 1.02, 0.967,
          "a ridge that is not applied: ~34 (the ridgeless peak)"),
    Check("task diversity, tau = inf, d = 32: kappa where (e_fresh - e_pool) / e_fresh falls below 0.5",
          lambda n: n["task_diversity"]["tau_inf"]["d32"]["kappa_gap_half"], 0.65, 0.85, 0.742,
          "pool error measured on fresh tasks, or Gamma_inf without the pool (W2 = I): gap ~0 everywhere, 0.125 (the "
          "grid's start); fresh and pool swapped: never (fails)",
          "closed form, 3 pools; full run 0.757 (d = 32), 0.756 (d = 128)"),
    Check("task diversity, tau = inf, d = 32: memorisation gap at kappa = 1/8",
          lambda n: n["task_diversity"]["tau_inf"]["d32"]["gap"][0], 0.75, 0.9, 0.831,
          "a pool that is not used (tasks fresh every sequence) ~0.02; pool error on fresh tasks 0"),
    Check("task diversity, tau = 4, d = 16, lam = 0.01: memorisation gap at kappa = 1/8",
          lambda n: n["task_diversity"]["tau4"]["d16"]["gap"][0], 0.7, 0.88, 0.803,
          "training sequences that ignore the pool ~0; pool error on fresh tasks 0",
          "ridge fit on 1,024 sequences, 2 seeds; full run 0.794 (d = 16), 0.803 (d = 32)"),
    Check("LSA, k = 64 (kappa 4): cos(N Gamma_LSA, Gamma_inf) (mean of 2 seeds)",
          lambda n: mean(n["lsa"]["k64"]["cos_gamma"]), 0.95, 1.0001, 0.9799,
          "untrained (init 0.02) ~0; a transposed read-off of Gamma below 0.95 for this pool",
          "seeds 0.977 and 0.982 (full run 0.999)"),
    Check("LSA, k = 64: fresh error of the read-off N Gamma_LSA / Gamma_inf's (exact, mean of 2 seeds)",
          lambda n: n["lsa"]["k64"]["read_off_exact"]["fresh"]["mean"] / n["lsa"]["k64"]["gamma_inf"]["fresh"], 0.98, 1.2, 1.101,
          "a read-off without the factor N: the zero predictor, 2.25; untrained 2.25",
          "not converged at 800 steps (full run 1.003)"),
    Check("LSA, k = 8 (kappa 0.5): pool error / zero predictor's (mean of 2 seeds)",
          lambda n: mean(n["lsa"]["k8"]["pool"]["lsa"]) / n["lsa"]["k8"]["pool"]["zero"], 0.25, 0.55, 0.384,
          "untrained 1.0; a layer trained on fresh tasks instead of the pool ~0.5 (it cannot memorise)",
          "seeds 0.27 and 0.50: one seed is slow at 800 steps (full run 0.260)"),
    Check("LSA, k = 8: fresh error / the reduced model's Gamma_inf's (mean of 2 seeds)",
          lambda n: mean(n["lsa"]["k8"]["fresh"]["lsa"]) / n["lsa"]["k8"]["gamma_inf"]["fresh"], 1.1, 1.7, 1.414,
          "a layer that is exactly the reduced model 1.0 (its extra terms memorise the pool's mean); untrained 1.36 "
          "is inside, so read this with the pool check above",
          "full run 1.295"),
]


# -- claim 19: the transient ridge (K = 16, 1024; 2 seeds x 1,000 steps of batch 128, constant lr) ----
CHECKS["claim19_transient_ridge"] = [
    Check("K = 16: dPM(ridge, dMMSE) on the 1,000 fresh held-out tasks (no training)",
          lambda n: n["by_K"]["k16"]["fresh_ridge_dmmse"], 7.3, 7.65, 7.4697,
          "ridge in place of dMMSE 0; dMMSE over the wrong pool size: K = 4 gives 8.94, K = 1024 2.60; a dMMSE at the "
          "wrong noise level moves it by more than the band",
          "the sampler and the solvers only: deterministic up to float32 sums"),
    Check("K = 1024: distance to ridge on fresh tasks at step 1,000 / E[ridge^2] (mean of 2 seeds)",
          lambda n: mean([c[-1] for c in n["by_K"]["k1024"]["curves"]["fresh_d_ridge"]]) / n["by_K"]["k1024"]["fresh_ridge_sq"],
          0.05, 0.10, 0.0713,
          "untrained 1.27-1.51 (step 0); the zero predictor 1.0; a model that does not learn in context ~1; "
          "K = 16's model 0.35-0.39",
          "seeds 0.5733 and 0.5732 of 8.04; the full run reaches 0.042-0.047 by step 5,000"),
    Check("K = 16: distance to ridge / distance to dMMSE on fresh tasks at step 1,000 (mean of 2 seeds)",
          lambda n: mean([r[-1] / d[-1] for r, d in zip(n["by_K"]["k16"]["curves"]["fresh_d_ridge"],
                                                          n["by_K"]["k16"]["curves"]["fresh_d_dmmse"], strict=True)]),
          0.6, 0.9, 0.7434,
          "untrained 1.20-1.25 (step 0); a ridge-like model (K = 1024's) 0.23-0.25; a model that memorised the pool >1 "
          "(the full run's K = 16 at step 5,000: 1.30-1.35)",
          "seeds 0.696 and 0.790: the K = 16 model sits between the two predictors at this point"),
    Check("K = 16: distance to dMMSE on pool tasks at step 1,000 (mean of 2 seeds)",
          lambda n: mean([c[-1] for c in n["by_K"]["k16"]["curves"]["pool_d_dmmse"]]), 0.35, 0.6, 0.4557,
          "untrained ~10 (step 0); the zero predictor ~7 (E[dMMSE^2] on pool tasks); dMMSE over a different pool: "
          "several units",
          "seeds 0.460 and 0.451; still falling (the full run: 0.14-0.15 at step 5,000)"),
    Check("K = 1024: MSE on fresh tasks at step 1,000 / ridge's MSE on the same tasks (mean of 2 seeds)",
          lambda n: mean(n["by_K"]["k1024"]["fresh_mse_end"]) / n["by_K"]["k1024"]["fresh_ridge_mse"], 1.7, 2.5, 2.078,
          "untrained 20-24 (step 0); the zero predictor ~15.7; ridge itself 1",
          "seeds 2.091 and 2.065; the full run reaches 1.63-1.75 by step 5,000"),
]


# -- claim 20: kernel attention on GP data, one layer (the N = 20 grid only; 300 steps of batch 128, 2 seeds) --
# Bands from two quick runs on the 2-core CPU (jax as installed, float32, 2026-12-07; identical to every digit: the
# held-out tasks and training keys are fixed, so only another CPU's float32 rounding moves them), each band checked
# against the full run's value too; the quick layers are not converged (full: every matched layer at cosine 1.0000).
CHECKS["claim20_kernel_attention"] = [
    Check("linear data: the linear functional-GD step / zero (the analysis, no model)",
          lambda n: n["runs"]["linear_linear"]["baselines"]["loss"]["fgd_linear"] / n["runs"]["linear_linear"]["baselines"]["loss"]["zero"],
          0.15, 0.19, 0.1698,
          "labels that are not GP draws on the points (e.g. independent of x) ~1.0; eta off by 2x: 0.38 (half) or 1.02 "
          "(double), measured on other tasks",
          "no training: 2,000 tasks; the full run's 10,000 give 0.175"),
    Check("exp data: the Bayes prediction (GP posterior mean) / zero (the analysis, no model)",
          lambda n: n["runs"]["exp_exp"]["baselines"]["loss"]["bayes"] / n["runs"]["exp_exp"]["baselines"]["loss"]["zero"],
          0.049, 0.054, 0.0516,
          "measured on other tasks (correct 0.0541 there): bandwidth 1 instead of 0.5 +7 % (0.058), the noise left out "
          "of the ridge +16 % (0.063), the linear kernel 0.89, the relu kernel (ill-conditioned) 174",
          "no training, fixed tasks (2,000): only float rounding moves it; the full run's 10,000 tasks give 0.0549"),
    Check("exp data: the fitted bandwidth a of the exp functional-GD step (the analysis)",
          lambda n: n["runs"]["exp_exp"]["fitted"]["exp"]["scale"], 2.3, 3.2, 2.769,
          "a fit stuck at a range edge (0.01 or 10), or the data kernel's own 0.5 taken instead of fitted",
          "full run 2.68 (and the trained exp layer's own a: 2.65-2.66)"),
    Check("exp data: relu functional-GD step / exp step (the N = 20 headline, no model)",
          lambda n: n["runs"]["exp_exp"]["baselines"]["loss"]["fgd_relu"] / n["runs"]["exp_exp"]["baselines"]["loss"]["fgd_exp"],
          0.95, 0.99, 0.9727,
          "kernels swapped between the sampler and the steps: > 1 (the matched step would win); a wrong bandwidth fit > 1",
          "full run 0.970 (0.1935 / 0.1995); at N = 8 it is 1.10 (the matched exp step wins there)"),
    Check("relu data, relu layer: loss / its own functional-GD step (mean of 2 seeds)",
          lambda n: mean(n["runs"]["relu_relu"]["model"]["over_own_fgd"]), 0.98, 1.08, 1.0129,
          "untrained 1.95 (zero's loss / the step's); a layer computing the linear step 1.40",
          "seeds 1.020 and 1.006 (full run 1.0000)"),
    Check("relu data, relu layer: prediction cosine with its own functional-GD step (mean of 2 seeds)",
          lambda n: mean(n["runs"]["relu_relu"]["model"]["cos_own_fgd"]), 0.98, 1.0, 0.9938,
          "untrained ~0; a layer computing the linear step 0.66; one computing the exp step 0.969 (what the full run's "
          "exp layer on relu data has)",
          "seeds 0.990 and 0.998 (full run 0.9999)"),
    Check("exp data, exp layer: prediction cosine with its own functional-GD step (mean of 2 seeds)",
          lambda n: mean(n["runs"]["exp_exp"]["model"]["cos_own_fgd"]), 0.93, 1.0, 0.9624,
          "untrained ~0; a layer computing the linear step 0.2-0.6 (the quick linear layers: 0.42, 0.78)",
          "seeds 0.974 and 0.951: not converged at 300 steps (full run 1.0000)"),
    Check("linear data, linear layer: loss / zero (mean of 2 seeds)",
          lambda n: mean(n["runs"]["linear_linear"]["model"]["loss"]) / n["runs"]["linear_linear"]["baselines"]["loss"]["zero"],
          0.15, 0.65, 0.3391,
          "untrained ~1.0; a diverged model >> 1",
          "seeds 0.464 and 0.214: far from converged at 300 steps of batch 128 (the step itself 0.170; full run 0.175)"),
]


# -- claim 21: chain of thought on in-context weight prediction, one LSA layer (main setting only: d = 5, n = 30, K = 8,
# eta = 0.6; 800 steps of batch 256, 2 seeds) -- to paste into paper_figures/check_quick.py after the claim 19 block
def _claim21(n):
    return n["settings"]["main"]


CHECKS["claim21_chain_of_thought"] = [
    Check("GD's relative error at step K = 8, eta = 0.6 (the analysis, no model; 4,000 held-out tasks)",
          lambda n: _claim21(n)["summary"]["gd_error_at_K"], 0.0019, 0.0029, 0.002344,
          "a GD path with eta / n twice (or n missing), or tasks with another prior: off by >= 2x; one step only 0.23",
          "no training: the same 4,000 tasks every run; the closed-form-free Monte Carlo on 50,000 tasks gives 0.00234"),
    Check("no-CoT layer: relative error / the one-step optimum (d + 1)/(n + d + 1) = 1/6 (mean of 2 seeds)",
          lambda n: mean(_claim21(n)["summary"]["no_cot_error"]) / _claim21(n)["summary"]["no_cot_optimum_error"],
          0.93, 1.1, 0.9996,
          "untrained (w_hat ~ 0) 6.0; stuck on an intermediate plateau (2.2x in a d = 3 test run at lr 3e-3); below 0.9 would beat the "
          "proven one-layer optimum: a leak of w* or of the chain into the no-CoT prompt",
          "seeds 1.0007 and 0.9986 (Monte Carlo on 4,000 tasks: s.e. ~1 %)"),
    Check("CoT layer run autoregressively: relative error at step K / GD's at step K (mean of 2 seeds)",
          lambda n: mean(_claim21(n)["summary"]["cot_error_at_K"]) / _claim21(n)["summary"]["gd_error_at_K"],
          0.95, 1.3, 1.004,
          "no CoT learned: one step only ~100 (0.23 / 0.0023), untrained ~430; GD at a 20 % wrong rate ~2; teacher-forced "
          "evaluation instead of a rollout would hide error accumulation (not this number's failure)",
          "seeds 1.006 and 1.003 (the full run: 1.000)"),
    Check("CoT layer: error at step 2K = 16 / error at step K = 8 (extrapolation past the trained chain, mean of 2 seeds)",
          lambda n: mean([s["cot_error"][16] / s["cot_error"][8] for s in _claim21(n)["seeds"]]), 0.02, 0.1, 0.0389,
          "a layer that stops at its trained length or drifts >= 0.5; diverging >> 1; GD itself 0.036",
          "seeds 0.040 and 0.037"),
    Check("CoT layer: smallest fitted step / eta over the K trained steps and 2 seeds",
          lambda n: _claim21(n)["summary"]["eta_fit_trained_steps"]["min"] / 0.6, 0.95, 1.03, 0.9938,
          "a layer whose later steps are not GD steps (or fit at another rate) < 0.9; the rule's band is +-10 %",
          "seed 0's step 8 (0.5963) is the smallest, seed 1's 0.5994; the full run fits 0.6000 at every step"),
]


def scripts() -> list[str]:
    """The figure and claim scripts (as run_all.py finds them)."""
    return sorted(p.stem for p in [*HERE.glob("fig*.py"), *HERE.glob("claim*.py")])


def evaluate(check: Check, numbers: dict) -> tuple[float | None, bool, str]:
    """(value, inside the band, note) of one check; a number that cannot be read fails."""
    try:
        value = float(check.value(numbers))
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as error:
        return None, False, f"not readable: {type(error).__name__}: {error}"
    ok = math.isfinite(value) and check.low <= value <= check.high
    return value, ok, "" if ok else f"outside [{check.low:g}, {check.high:g}]; a broken run: {check.broken}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "quick", help="run_quick.sh's output folder (default paper_figures/quick/)")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="these scripts (names without .py)")
    args = parser.parse_args(argv)
    names = [n for n in scripts() if not args.only or n in args.only]
    failures = []
    for name in names:
        checks = CHECKS.get(name)
        if not checks:
            failures.append(f"{name}: no checks in paper_figures/check_quick.py (add its headline numbers)")
            continue
        path = args.out / f"{name}.json"
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            failures.append(f"{name}: cannot read {path}: {error}")
            continue
        if record.get("mode") != "quick":
            failures.append(f"{name}: {path} is a {record.get('mode')!r} run, not a quick one")
            continue
        for check in checks:
            value, ok, note = evaluate(check, record["numbers"])
            shown = "n/a" if value is None else f"{value:.4g}"
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {check.what} = {shown} "
                  f"(band [{check.low:g}, {check.high:g}], set from {check.measured:g})")
            if not ok:
                failures.append(f"{name}: {check.what} = {shown}: {note}")
    unknown = sorted(set(CHECKS) - set(scripts()))
    failures += [f"{name}: checks for a script that does not exist" for name in unknown]
    if failures:
        print(f"\ncheck_quick: {len(failures)} failure(s):", *("  " + f for f in failures), sep="\n", file=sys.stderr)
        return 1
    print(f"check_quick: {sum(len(CHECKS[n]) for n in names)} headline numbers of {len(names)} scripts inside their bands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
