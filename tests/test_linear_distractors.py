"""The linear_distractors family: exactly n_distract corrupted context labels per task, the rest
and the queries clean, the corrupted ones pure N(0, distractor_std^2) noise."""

import jax
import numpy as np
import pytest

from icl import tasks


@pytest.mark.parametrize("k", [0, 3, 7])
def test_exactly_k_labels_are_noise(k):
    task = tasks.get("linear_distractors", d=4, n_ctx=7, n_query=2, n_distract=k, distractor_std=2.0)
    key = jax.random.key(0)
    batch, mask = task.sample(key, 20000), np.asarray(task.corrupted(key, 20000))
    assert (mask.sum(1) == k).all()
    clean = np.einsum("bnd,bd->bn", batch.x_ctx, batch.w)
    np.testing.assert_allclose(np.where(mask, 0.0, batch.y_ctx), np.where(mask, 0.0, clean), atol=1e-12)
    np.testing.assert_allclose(batch.y_query, np.einsum("bmd,bd->bm", batch.x_query, batch.w), atol=1e-12)
    if k:
        noise = np.asarray(batch.y_ctx)[mask]
        assert abs(noise.std() - 2.0) < 0.03 and abs(np.corrcoef(noise, clean[mask])[0, 1]) < 0.02
        assert abs(mask.mean(0) - k / 7).max() < 0.02  # every position equally likely


def test_linear_distractors_errors():
    with pytest.raises(ValueError, match="n_distract must be an integer in"):
        tasks.get("linear_distractors", n_ctx=4, n_distract=5)
    with pytest.raises(ValueError, match="distractor_std must be a number >= 0"):
        tasks.get("linear_distractors", distractor_std=-1.0)
