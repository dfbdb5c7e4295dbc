"""icl.analysis.prefix_curves: per-position learners against naive loops, the error scale, the
curves and the per-position cosine."""

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, models, solvers, tasks
from icl.analysis import prefix_curves


def test_learner_predictions_fit_each_prefix_and_predict_zero_first():
    task = tasks.get("linear", d=3, n_ctx=6, n_query=1, input_dist="gaussian")
    x, y = prefix_curves.sequence(task.sample(jax.random.key(0), 8))  # [8, 7, 3], [8, 7]
    for spec in ("least_squares", "ridge(lam=0.3)", "knn(k=2)", "online_sgd(lr=0.1)"):
        predict, _ = compare.solver_predictor(spec, task, jax.random.key(1))
        got = prefix_curves.learner_predictions(predict, x, y)
        want = [np.zeros(8)] + [np.asarray(predict(x[:, :t], y[:, :t], x[:, t])) for t in range(1, 7)]
        np.testing.assert_allclose(got, np.stack(want, axis=1), rtol=1e-10, atol=1e-12, err_msg=spec)


def test_error_scale_follows_garg():
    assert prefix_curves.error_scale(tasks.get("linear", d=7)) == 7.0
    assert prefix_curves.error_scale(tasks.get("sparse_linear", d=7, k=2)) == 2.0
    assert prefix_curves.error_scale(tasks.get("decision_tree", d=7, n_ctx=10)) == 1.0
    assert prefix_curves.error_scale(tasks.get("relu_net", d=4)) == 4.0


def test_curves_are_normalised_errors_and_the_zero_predictor_scores_one():
    """E[y^2] = d for noiseless linear regression with x, w ~ N(0, I): the zero predictor's
    normalised error is ~1 at every position (within its bootstrap band's reach)."""
    task = tasks.get("linear", d=4, n_ctx=5, n_query=1, input_dist="gaussian")
    x, y = prefix_curves.sequence(task.sample(jax.random.key(2), 4000))
    out = prefix_curves.curves(task, {"zero": jnp.zeros_like(y), "truth": y}, y, jax.random.key(3), n_boot=200)
    mean = np.asarray(out["zero"]["mean"])
    np.testing.assert_allclose(mean, np.mean(np.asarray(y) ** 2, axis=0) / 4.0, rtol=1e-12)
    assert np.all(np.abs(mean - 1.0) < 0.1)
    assert np.all(np.asarray(out["zero"]["low"]) <= mean) and np.all(mean <= np.asarray(out["zero"]["high"]))
    assert np.all(np.asarray(out["truth"]["mean"]) == 0.0)


def test_position_cosine():
    a = jnp.asarray([[1.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(prefix_curves.position_cosine(a, 3.0 * a), [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(prefix_curves.position_cosine(a, -a), [-1.0, -1.0], rtol=1e-12)
    assert prefix_curves.position_cosine(a, jnp.zeros_like(a))[0] == 0.0


def test_a_causal_model_against_learners_end_to_end():
    """The GD construction's causal predictions equal one GD step per prefix (docs/math.md), so
    its curve equals that learner's curve at rate lr t / N."""
    task = tasks.get("linear", d=3, n_ctx=6, n_query=1, input_dist="gaussian")
    x, y = prefix_curves.sequence(task.sample(jax.random.key(4), 16))
    from icl import constructions

    model = constructions.gd_model(3, 6, lr=0.5)
    got = model.predict_prefixes(x, y)
    want = [np.zeros(16)] + [np.asarray(solvers.gd(x[:, :t], y[:, :t], x[:, t], lr=0.5 * t / 6)) for t in range(1, 7)]
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=0, atol=1e-12)
    assert isinstance(models.family_of(model.config), str)
