"""icl.analysis.token_copy: token sensitivities of a classic-token model's first layer, the copy score."""

import jax
import numpy as np
import pytest

from icl import runs, tasks, train
from icl.analysis import token_copy
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

N = 3


def _config() -> ExperimentConfig:
    return ExperimentConfig(
        name="tokens", task=tasks.get("linear", d=2, n_ctx=N),
        model=ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=N, init_scale=0.5),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=64),
        compare_against=("gd", "least_squares"),
    )


def test_copy_score_extremes():
    assert token_copy.copy_score(np.eye(4)) == pytest.approx(1.0)
    assert token_copy.copy_score(np.ones((4, 4))) == pytest.approx(0.25)
    assert token_copy.copy_score(np.array([[3.0, 1.0], [1.0, 1.0]])) == pytest.approx((0.75 + 0.5) / 2)


def test_sensitivities_match_finite_differences(key):
    """S_ij of one task is || h1(x_i; y + e_j eps) - h1(x_i; y - e_j eps) || / 2 eps: checks that
    rows are the x tokens and columns the label tokens."""
    config = _config()
    model = train.seed_models(config, runs.initial_params(config))[0]
    batch = config.task.sample(key, 1)
    s = token_copy.token_sensitivities(model, batch)
    assert s.shape == (N, N)

    def h1_x(y_ctx):  # [1, N] -> [N, D]
        tokens = model.tokens(batch.x_ctx, y_ctx, batch.x_query)
        return np.asarray(model.layers[0](tokens, 2 * N)[0, 0 : 2 * N : 2])

    eps = 1e-6
    for j in range(N):
        step = eps * np.eye(N)[j][None]
        diff = (h1_x(batch.y_ctx + step) - h1_x(batch.y_ctx - step)) / (2 * eps)  # [N, D]
        np.testing.assert_allclose(s[:, j], np.linalg.norm(diff, axis=1), rtol=1e-5, atol=1e-9)
    assert np.abs(s - np.diag(np.diag(s))).max() > 1e-6  # an untrained softmax layer mixes labels


def test_evaluate_reads_the_summary_and_measures_both_parameter_sets():
    config = _config()
    params = jax.tree.map(lambda x: 2.0 * x, runs.initial_params(config))  # "trained": any other parameters
    summary = {"n_tasks": 64, "zero_loss": 0.5, "model": {"loss": [0.3, 0.32]}, "wall_s": 1.0, "train_steps_per_s": 2.0,
               "solvers": {"gd": {"loss": 0.25, "hparams": {"lr": 1.5}, "model_cos": [0.9, 0.8], "model_diff": [0.1, 0.2],
                                  "preds_diff": [0.01, 0.02]},
                           "least_squares": {"loss": 0.0}}}
    out = token_copy.evaluate(config, params, summary)
    assert out["gd_eta"] == 1.5 and out["model_cos"]["mean"] == pytest.approx(0.85)
    assert out["sensitivity_tasks"] == token_copy.SENSITIVITY_TASKS
    for kind in ("init", "trained"):
        s = np.asarray(out[f"sensitivity_{kind}_mean"])
        assert s.shape == (N, N) and (s >= 0).all()
        assert 0 < out[f"copy_score_{kind}"]["mean"] < 1 and len(out[f"copy_score_{kind}"]["values"]) == 2
    assert out["copy_score_init"]["values"] != out["copy_score_trained"]["values"]
