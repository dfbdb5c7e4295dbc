"""icl.analysis.features: learners on a model's features, the optimal rate, the sine example."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.analysis import features
from icl.experiments import fig4_sine


class LinearFeatureModel:
    """A stand-in for a trained model: features x M (d -> D), and one GD step on them at rate lr."""

    def __init__(self, m: jax.Array, lr: float):
        self.m, self.lr = m, lr

    def embed(self, x):
        return x @ self.m

    def predict(self, x_ctx, y_ctx, x_query):
        return features.gd_on_features(self, self.lr)(x_ctx, y_ctx, x_query)


@pytest.fixture(scope="module")
def batches():
    task = tasks.get("linear", d=3, n_ctx=8)
    return task.sample(jax.random.key(0), 256), task.sample(jax.random.key(1), 256)


def test_learners_on_identity_features_are_the_plain_solvers(batches):
    b, _ = batches
    model = LinearFeatureModel(jnp.eye(3), 1.0)
    np.testing.assert_allclose(features.gd_on_features(model, 0.7)(b.x_ctx, b.y_ctx, b.x_query),
                               solvers.gd(b.x_ctx, b.y_ctx, b.x_query, lr=0.7), rtol=1e-12)
    np.testing.assert_allclose(features.least_squares_on_features(model)(b.x_ctx, b.y_ctx, b.x_query),
                               solvers.least_squares(b.x_ctx, b.y_ctx, b.x_query), rtol=1e-10, atol=1e-12)


def test_optimal_feature_lr_minimises_the_one_step_loss(batches):
    b, _ = batches
    model = LinearFeatureModel(jax.random.normal(jax.random.key(2), (3, 5)), 1.0)
    lr = features.optimal_feature_lr(model, b)

    def loss(rate):
        return float(compare.loss(features.gd_on_features(model, rate)(b.x_ctx, b.y_ctx, b.x_query), b.y_query))

    assert lr > 0 and loss(lr) < min(loss(0.99 * lr), loss(1.01 * lr))


def test_a_model_that_does_gd_on_its_features_is_recognised(batches):
    val, test = batches
    m = jax.random.normal(jax.random.key(3), (3, 5))
    tf, gd = LinearFeatureModel(m, 0.2), LinearFeatureModel(m, 0.2)
    out = features.compare_feature_learners([tf, tf], [gd, gd], val, test)
    assert set(out) == set(features.PER_SEED) and all(len(v) == 2 for v in out.values())
    assert out["tf_vs_gdfeat_cos"] == pytest.approx([1.0, 1.0]) and out["tf_vs_gdfeat_preds_diff"] == pytest.approx([0.0, 0.0])
    assert out["tf_vs_own_features_gd_cos"] == pytest.approx([1.0, 1.0])  # the same direction at any positive rate
    own_lr = features.optimal_feature_lr(tf, val)
    assert out["tf_own_features_gd_lr"] == pytest.approx([own_lr, own_lr])
    assert out["tf_features_lstsq_loss"] == out["gd_features_lstsq_loss"]


def test_sine_example_recovers_the_true_function():
    task = fig4_sine.TASK  # amplitude <= 0.5: |f''| <= 0.5
    out = features.sine_example(task, jax.random.key(7), {"zero": lambda xc, yc, xq: jnp.zeros(xq.shape[:2])})
    assert len(out["x"]) == 201 and out["x"][0] == -task.input_range and out["x"][-1] == task.input_range
    # noise-free context points lie on the recovered curve (linear interpolation on a 0.05 grid)
    np.testing.assert_allclose(np.interp(out["x_ctx"], out["x"], out["truth"]), out["y_ctx"], atol=1e-3)
    assert out["zero"] == [0.0] * 201
