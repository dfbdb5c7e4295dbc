"""Set-ups shared by the analysis tests: small tasks and hand-made one-layer LSA weights."""

import numpy as np
import pytest

from icl import tasks
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig


@pytest.fixture
def small_linear_batch(key):
    """64 tasks of uniform linear regression, d = 4, N = 6, two queries each."""
    return tasks.get("linear", d=4, n_ctx=6, input_dist="uniform", input_range=0.5, n_query=2).sample(key, 64)


@pytest.fixture
def gaussian_lsa_config():
    """make(name, d, n_ctx, **task): a one-layer linear-attention config on Gaussian linear tasks
    (task fields such as covariance, condition_number, noise_std), 10 steps of 2 seeds."""

    def make(name: str, d: int, n_ctx: int, **task) -> ExperimentConfig:
        return ExperimentConfig(
            name=name, task=tasks.get("linear", d=d, n_ctx=n_ctx, input_dist="gaussian", **task),
            model=ModelConfig(n_layers=1, attention="linear"),
            train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=256),
        )

    return make


@pytest.fixture
def preconditioner_layer():
    """make(gamma [d, d], a_xy=None, b_x=None): parameters of a one-head layer with
    W_q W_k^T = [[-gamma, a_xy], [0, 0]] and W_v W_o = [[0, b_x], [0, 1]]: without the extra terms
    exactly y_hat = x_q^T gamma X^T y (`weights.preconditioner`)."""

    def make(gamma: np.ndarray, a_xy=None, b_x=None) -> dict:
        d = gamma.shape[0]
        a, b = np.zeros((d + 1, d + 1)), np.zeros((d + 1, d + 1))
        a[:d, :d], b[d, d] = -gamma, 1.0
        if a_xy is not None:
            a[:d, d], b[:d, d] = a_xy, b_x
        eye = np.eye(d + 1)[None]
        return {"layers": {0: {"query": a[None], "key": eye, "value": b[None], "out": eye}}}

    return make
