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


def numpy_feature_learners(m: np.ndarray, lr: float, b) -> dict[str, np.ndarray]:
    """For the features f(x) = x M, in numpy float64, independently of icl: one GD step at lr,
    y_hat = (lr / N) sum_i y_i f(x_i) . f(x_q) = x_q . g with g = (lr / N) M M^T X^T y, whose
    sensitivity d y_hat / d x_q is g; the one-step direction a = y_hat / lr; and min-norm least
    squares on (f(x_i), y_i) per task. {"y", "g" [B, d], "a" [B, M], "lstsq" [B, M]}."""
    x, y, xq = (np.asarray(v, np.float64) for v in (b.x_ctx, b.y_ctx, b.x_query))
    n = x.shape[1]
    g = (lr / n) * np.einsum("bnd,bn->bd", x, y) @ m @ m.T  # [B, d]
    lstsq = np.stack([xq[i] @ m @ np.linalg.lstsq(x[i] @ m, y[i], rcond=None)[0] for i in range(len(x))])
    return {"y": np.einsum("bmd,bd->bm", xq, g), "g": g, "a": np.einsum("bmd,bd->bm", xq, g) / lr, "lstsq": lstsq}


def test_compare_feature_learners_against_numpy(batches):
    """Two different models (features x M1 [3 -> 5] at rate 0.2 as the "TF", x M2 [3 -> 2] at rate
    0.5 as "GD on features"): every number equals its numpy computation. In float64 these are means
    of 256 products (measured agreement ~3e-16); the checks use 1e-10 (least squares through two
    different SVDs), far below the differences between the two models (model_cos 0.72, preds_diff
    0.043, own-feature rates 1.71 vs 2.30, least-squares losses 1e-31 vs 0.077)."""
    val, test = batches
    m1, m2 = np.asarray(jax.random.normal(jax.random.key(3), (3, 5))), np.asarray(jax.random.normal(jax.random.key(4), (3, 2)))
    tf, gd = LinearFeatureModel(jnp.asarray(m1), 0.2), LinearFeatureModel(jnp.asarray(m2), 0.5)
    out = features.compare_feature_learners([tf, gd], [gd, tf], val, test)  # seed 1: the roles swapped
    assert set(out) == set(features.PER_SEED) and all(len(v) == 2 for v in out.values())

    yq = np.asarray(test.y_query, np.float64)
    a, b = numpy_feature_learners(m1, 0.2, test), numpy_feature_learners(m2, 0.5, test)
    cos = np.mean(np.sum(a["g"] * b["g"], 1) / (np.linalg.norm(a["g"], axis=1) * np.linalg.norm(b["g"], axis=1)))
    preds_diff = np.mean(np.abs(a["y"] - b["y"]))
    for seed in (0, 1):  # symmetric in the two models
        assert out["tf_vs_gdfeat_cos"][seed] == pytest.approx(cos, rel=1e-10)
        assert out["tf_vs_gdfeat_preds_diff"][seed] == pytest.approx(preds_diff, rel=1e-10)
    assert 0.05 < cos < 0.95 and preds_diff > 0.01  # the two models really differ

    for seed, (m, lr, own) in enumerate(((m1, 0.2, a), (m2, 0.5, b))):
        a_val = numpy_feature_learners(m, lr, val)["a"]
        lr_star = np.sum(a_val * np.asarray(val.y_query)) / np.sum(a_val**2)  # argmin_r sum (r a - y_q)^2
        assert out["tf_own_features_gd_lr"][seed] == pytest.approx(lr_star, rel=1e-10)
        assert out["tf_own_features_gd_loss"][seed] == pytest.approx(0.5 * np.mean((lr_star * own["a"] - yq) ** 2), rel=1e-10)
        assert out["tf_vs_own_features_gd_cos"][seed] == pytest.approx(1.0, abs=1e-12)  # g and lr* g / lr: one direction
    lstsq_loss = [0.5 * np.mean((v["lstsq"] - yq) ** 2) for v in (a, b)]
    assert lstsq_loss[0] < 1e-20 < 1e-3 < lstsq_loss[1]  # rank-3 features fit noiseless tasks, rank 2 cannot
    assert out["tf_features_lstsq_loss"] == pytest.approx([lstsq_loss[0], lstsq_loss[1]], rel=1e-10, abs=1e-20)
    assert out["gd_features_lstsq_loss"] == pytest.approx([lstsq_loss[1], lstsq_loss[0]], rel=1e-10, abs=1e-20)


def test_sine_example_recovers_the_true_function():
    task = fig4_sine.TASK  # amplitude <= 0.5: |f''| <= 0.5
    out = features.sine_example(task, jax.random.key(7), {"zero": lambda xc, yc, xq: jnp.zeros(xq.shape[:2])})
    assert len(out["x"]) == 201 and out["x"][0] == -task.input_range and out["x"][-1] == task.input_range
    # noise-free context points lie on the recovered curve (linear interpolation on a 0.05 grid)
    np.testing.assert_allclose(np.interp(out["x_ctx"], out["x"], out["truth"]), out["y_ctx"], atol=1e-3)
    assert out["zero"] == [0.0] * 201
