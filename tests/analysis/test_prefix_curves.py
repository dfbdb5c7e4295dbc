"""icl.analysis.prefix_curves: per-position learners against naive loops, the error scale, the
curves and the per-position cosine."""

import jax
import jax.numpy as jnp
import numpy as np

from icl import compare, models, solvers, tasks
from icl.analysis import prefix_curves


def test_learner_predictions_fit_each_prefix_and_predict_zero_first():
    task = tasks.get("linear", d=3, n_ctx=6, n_query=1, input_dist="gaussian")
    x, y = task.sample(jax.random.key(0), 8).sequence()  # [8, 7, 3], [8, 7]
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
    x, y = task.sample(jax.random.key(2), 4000).sequence()
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
    x, y = task.sample(jax.random.key(4), 16).sequence()
    from icl import constructions

    model = constructions.gd_model(3, 6, lr=0.5)
    got = model.predict_prefixes(x, y)
    want = [np.zeros(16)] + [np.asarray(solvers.gd(x[:, :t], y[:, :t], x[:, t], lr=0.5 * t / 6)) for t in range(1, 7)]
    np.testing.assert_allclose(got, np.stack(want, 1), rtol=0, atol=1e-12)
    assert isinstance(models.family_of(model.config), str)


# -- per-position sensitivities ----------------------------------------------------------------------
def _naive_sensitivities(f, x, y) -> np.ndarray:
    """Per task b and position t, jax.grad of the scalar f(x with x[b, t] replaced, y)[b, t]
    (b and t traced: one compile)."""
    grad = jax.jit(jax.grad(lambda xt, b, t: f(x.at[b, t].set(xt), y)[b, t]))
    return np.stack([np.stack([grad(x[b, t], b, t) for t in range(x.shape[1])]) for b in range(x.shape[0])])


def _naive_learner_sensitivities(predict, x, y) -> np.ndarray:
    """Per task b and position t >= 1, jax.grad of the learner fitted on the pairs < t, at the
    query x[b, t], of its prediction for task b (the whole batch is passed: relu_net_gd draws
    task b's initialisation from its index); 0 at t = 0."""
    out = np.zeros(x.shape)
    for b in range(x.shape[0]):
        for t in range(1, x.shape[1]):
            out[b, t] = jax.grad(lambda q, b=b, t=t: predict(x[:, :t], y[:, :t], x[:, t].at[b].set(q))[b])(x[b, t])
    return out


def _naive_cosine(sf, sg) -> np.ndarray:
    """Mean over tasks of the per-task cosine (0 for a zero vector), NaN where either is 0 for
    every task."""
    out = []
    for t in range(sf.shape[1]):
        cos = [0.0 if min(np.linalg.norm(a), np.linalg.norm(c)) == 0 else a @ c / np.linalg.norm(a) / np.linalg.norm(c)
               for a, c in zip(sf[:, t], sg[:, t], strict=True)]
        defined = np.any(sf[:, t] != 0) and np.any(sg[:, t] != 0)
        out.append(np.mean(cos) if defined else np.nan)
    return np.asarray(out)


def _relu_sequence(b=3, d=3, n_ctx=5):
    task = tasks.get("relu_net", d=d, n_ctx=n_ctx, n_query=1, hidden=8)
    return task, *task.sample(jax.random.key(5), b).sequence()


def test_position_sensitivities_of_a_model_and_of_learners_equal_naive_loops():
    """A tiny GPT-2 (the T reverse passes) and two learners, linear and not (the reverse pass
    through the queries, `learner_function`), each against jax.grad per task and position; the
    cosine against a per-task, per-position loop."""
    from icl.models.gpt2 import GPT2Config

    task, x, y = _relu_sequence(b=2, n_ctx=3)  # [2, 4, 3], [2, 4]
    model = GPT2Config.named("tiny", n_positions=4).build(3, 1)
    f_model = lambda x_, y_: model.predict_prefixes(x_, y_)
    got_model = prefix_curves.position_sensitivities(f_model, x, y)
    want_model = _naive_sensitivities(f_model, x, y)
    np.testing.assert_allclose(got_model, want_model, rtol=1e-9, atol=1e-12)
    for spec in ("ridge(lam=0.3)", "relu_net_gd(hidden=6, steps=20, lr=0.05)"):
        predict, _ = compare.solver_predictor(spec, task, jax.random.key(1))
        learner = prefix_curves.learner_function(predict)
        np.testing.assert_allclose(learner(x, y), prefix_curves.learner_predictions(predict, x, y), rtol=0, atol=0)
        got = prefix_curves.position_sensitivities(learner, x, y)
        want = _naive_learner_sensitivities(predict, x, y)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=spec)
        assert np.all(np.asarray(got[:, 0]) == 0), spec
        assert np.count_nonzero(np.linalg.norm(want[:, 1:], axis=-1)) >= 4, spec  # of 6 (a ReLU net may be flat at x_t)
        cos = prefix_curves.sensitivity_cosine_of(got_model, got)
        np.testing.assert_allclose(cos, _naive_cosine(want_model, want), rtol=1e-9, atol=1e-12, err_msg=spec)
        assert np.isnan(cos[0]) and np.all(np.abs(cos[1:]) <= 1 + 1e-12)


def test_sensitivity_cosine_of_a_predictor_with_itself_is_one():
    from icl.models.gpt2 import GPT2Config

    task, x, y = _relu_sequence(b=4)
    model = GPT2Config.named("tiny", n_positions=6).build(3, 2)
    f_model = lambda x_, y_: model.predict_prefixes(x_, y_)
    np.testing.assert_allclose(prefix_curves.sensitivity_cosine(f_model, f_model, x, y), np.ones(6), rtol=1e-12)
    learner = prefix_curves.learner_function(compare.solver_predictor("least_squares", task, jax.random.key(0))[0])
    cos = prefix_curves.sensitivity_cosine(learner, learner, x, y)
    assert np.isnan(cos[0])  # every learner predicts the constant 0 at t = 0
    np.testing.assert_allclose(cos[1:], np.ones(5), rtol=1e-12)


def test_sensitivities_in_closed_form():
    """Least squares on a full-rank prefix (t >= d): g_t = w_hat(t), the least-squares weights of
    the pairs before t; averaging: g_t = (1/t) sum_{i<t} y_i x_i; the GD construction (one step
    at rate lr t / N per prefix): g_t = (lr / N) sum_{i<t} y_i x_i, so its cosine with averaging
    is 1 at every t >= 1 (through the model's T reverse passes)."""
    from icl import constructions

    d, n_ctx = 3, 7
    task = tasks.get("linear", d=d, n_ctx=n_ctx, n_query=1, input_dist="gaussian", noise_std=0.5)
    x, y = task.sample(jax.random.key(6), 5).sequence()  # [5, 8, 3], [5, 8]
    xn, yn = np.asarray(x), np.asarray(y)
    lsq = prefix_curves.learner_sensitivities(solvers.least_squares, x, y)
    for t in range(d, n_ctx + 1):
        w_hat = np.stack([np.linalg.lstsq(xn[b, :t], yn[b, :t], rcond=None)[0] for b in range(5)])
        np.testing.assert_allclose(lsq[:, t], w_hat, rtol=1e-9, atol=1e-12, err_msg=f"t={t}")
    mean_yx = [np.zeros((5, d))] + [np.einsum("bn,bnd->bd", yn[:, :t], xn[:, :t]) / t for t in range(1, n_ctx + 1)]
    averaging = prefix_curves.learner_sensitivities(solvers.averaging, x, y)
    np.testing.assert_allclose(averaging, np.stack(mean_yx, 1), rtol=1e-12, atol=1e-14)
    model = constructions.gd_model(d, n_ctx, lr=0.5)
    f_model = lambda x_, y_: model.predict_prefixes(x_, y_)
    gd_sens = prefix_curves.position_sensitivities(f_model, x, y)
    want = np.stack(mean_yx, 1) * (0.5 / n_ctx) * np.arange(n_ctx + 1)[None, :, None]
    np.testing.assert_allclose(gd_sens, want, rtol=1e-10, atol=1e-13)
    cos = prefix_curves.sensitivity_cosine(f_model, prefix_curves.learner_function(solvers.averaging), x, y)
    assert np.isnan(cos[0])
    np.testing.assert_allclose(cos[1:], np.ones(n_ctx), rtol=1e-12)


def test_piecewise_constant_learners_have_no_sensitivity():
    """The learners `has_sensitivity` rules out have d y_hat / d x_q = 0 here (a.e.); averaging,
    linear in x_q, is kept."""
    task, x, y = _relu_sequence(b=3)
    assert prefix_curves.PIECEWISE_CONSTANT <= set(solvers.names())
    for spec in ("knn", "knn(k=1)", "mean_label", "greedy_tree(max_depth=2)"):
        assert not prefix_curves.has_sensitivity(spec)
        predict, _ = compare.solver_predictor(spec, task, jax.random.key(0))
        assert np.all(np.asarray(prefix_curves.learner_sensitivities(predict, x, y)) == 0), spec
        assert np.all(np.isnan(prefix_curves.sensitivity_cosine(prefix_curves.learner_function(predict),
                                                                prefix_curves.learner_function(solvers.averaging), x, y)))
    assert all(prefix_curves.has_sensitivity(s) for s in ("averaging", "least_squares", "relu_net_gd", "gd", "kernel_ridge"))
