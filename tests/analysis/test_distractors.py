"""icl.analysis.distractors: the oracle fits least squares on exactly the clean context examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.analysis import distractors


def distractor_task(n_distract: int):
    return tasks.get("linear_distractors", d=3, n_ctx=8, n_distract=n_distract, distractor_std=1.0)


def test_without_distractors_the_oracle_is_least_squares():
    task, key = distractor_task(0), jax.random.key(0)
    batch = task.sample(key, 128)
    ls = compare.loss(solvers.least_squares(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query)
    assert distractors.oracle_least_squares(task, key, 128) == pytest.approx(float(ls), rel=1e-9)


def test_the_oracle_drops_exactly_the_corrupted_examples():
    task, key = distractor_task(3), jax.random.key(1)
    batch, mask = task.sample(key, 16), np.asarray(task.corrupted(key, 16))
    assert mask.sum(1).tolist() == [3] * 16
    y_hat = []
    for b in range(16):  # least squares on the 5 clean rows of each task, one task at a time
        keep = ~mask[b]
        w = np.linalg.lstsq(np.asarray(batch.x_ctx[b][keep]), np.asarray(batch.y_ctx[b][keep]), rcond=None)[0]
        y_hat.append(np.asarray(batch.x_query[b]) @ w)
    expected = compare.loss(jnp.asarray(np.stack(y_hat)), batch.y_query)
    assert distractors.oracle_least_squares(task, key, 16) == pytest.approx(float(expected), rel=1e-8)
    # the clean examples are noise-free linear data: the oracle interpolates w (5 >= d = 3 examples)
    assert float(expected) < 1e-20
