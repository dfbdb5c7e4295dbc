"""Solvers on feature maps (icl/solvers/features.py): the maps' formulas, `on_features`, the
`features=` spec hyper-parameter through specs, defaults and the comparison, and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, solvers, tasks
from icl.solvers import features


def _x(seed=0, shape=(4, 5, 3)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_named_maps_follow_their_formulas():
    x = _x()
    np.testing.assert_array_equal(features.identity(x), x)
    np.testing.assert_array_equal(features.square(x), x**2)
    np.testing.assert_array_equal(features.poly2(x), np.concatenate([x, x**2], -1))
    np.testing.assert_array_equal(features.affine(x), np.concatenate([np.ones(x.shape[:-1] + (1,)), x], -1))
    quad = np.asarray(features.quadratic(x))
    assert quad.shape == (4, 5, 1 + 3 + 6)
    monomials = [x[..., i] * x[..., j] for i in range(3) for j in range(i, 3)]
    np.testing.assert_allclose(quad, np.concatenate([np.ones((4, 5, 1)), x, np.stack(monomials, -1)], -1))
    assert features.names() == ["affine", "identity", "poly2", "quadratic", "square"]


def test_on_features_is_the_solver_on_mapped_inputs():
    x, xq = _x(1), _x(2, (4, 2, 3))
    y = _x(3, (4, 5))
    got = solvers.on_features("poly2", solvers.ridge)(x, y, xq, lam=0.3)
    np.testing.assert_allclose(got, solvers.ridge(features.poly2(x), y, features.poly2(xq), lam=0.3), atol=1e-12)
    # by spec: get(name, features=...) and bind
    np.testing.assert_allclose(solvers.get("ridge", features="poly2")(x, y, xq, lam=0.3), got, atol=1e-12)
    np.testing.assert_allclose(solvers.bind("ridge", {"lam": 0.3, "features": "poly2"})(x, y, xq), got, atol=1e-12)
    single = solvers.get("least_squares", features="square")(x, y, xq[:, 0])
    assert single.shape == (4,)


def test_least_squares_on_squares_learns_quadratic_regression_that_plain_least_squares_cannot():
    """y = w . x^2 is linear in x^2: least squares on the squares is exact from N >= d examples."""
    x, xq = _x(4, (200, 8, 3)), _x(5, (200, 1, 3))
    w = _x(6, (200, 3))
    y, yq = np.einsum("bnd,bd->bn", x**2, w), np.einsum("bmd,bd->bm", xq**2, w)
    on_squares = solvers.get("least_squares", features="square")(x, y, xq)
    np.testing.assert_allclose(on_squares, yq, atol=1e-9)
    assert compare.loss(solvers.least_squares(x, y, xq), yq) > 0.1


def test_defaults_of_a_solver_on_features_are_those_of_the_mapped_task():
    """GD's optimal lr and kernel ridge's bandwidth sqrt(F) are computed on phi(x), F = 2d for poly2."""
    task = tasks.get("linear", d=3, n_ctx=6)
    key = jax.random.key(0)
    mapped = solvers.FeatureTask(task, "poly2")
    assert mapped.d == 6 and mapped.n_ctx == 6 and mapped.family == "linear(features=poly2)"
    batch = mapped.sample(key, 4)
    raw = task.sample(key, 4)
    np.testing.assert_allclose(batch.x_ctx, features.poly2(raw.x_ctx))
    np.testing.assert_allclose(batch.y_query, raw.y_query)
    assert solvers.task_defaults("kernel_ridge", task, key, {"features": "poly2"})["bandwidth"] == pytest.approx(6**0.5)
    lr = solvers.task_defaults("gd", task, key, {"features": "poly2"})["lr"]
    assert lr == pytest.approx(solvers.optimal_gd_lr(mapped, key)) and lr != pytest.approx(solvers.optimal_gd_lr(task, key))
    predict, hparams = compare.solver_predictor("gd(features=poly2)", task, key)
    assert hparams == {"features": "poly2", "lr": pytest.approx(lr)}
    np.testing.assert_allclose(predict(raw.x_ctx, raw.y_ctx, raw.x_query),
                               solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr), atol=1e-12)


def test_errors_name_the_spec_and_the_map():
    with pytest.raises(ValueError, match=r"solver spec 'ridge\(features=cube\)': unknown feature map 'cube'; known feature maps: affine"):
        solvers.parse_spec("ridge(features=cube)")
    with pytest.raises(ValueError, match="unknown feature map 'cube'"):
        solvers.get("ridge", features="cube")
    with pytest.raises(ValueError, match="already registered"):
        solvers.register_feature("square", jnp.square)
    with pytest.raises(ValueError, match="must be an identifier"):
        solvers.register_feature("a b", jnp.square)
    with pytest.raises(ValueError, match="already registered"):
        solvers.register("ridge", solvers.ridge)
    with pytest.raises(TypeError, match="must be functions"):
        solvers.register("my_ridge", solvers.ridge, {"lam": 0.1})
    assert "my_ridge" not in solvers.names()


def test_a_registered_feature_map_is_usable_in_specs():
    solvers.register_feature("cube", lambda x: x**3)
    try:
        x, y, xq = _x(7), _x(8, (4, 5)), _x(9, (4, 2, 3))
        assert solvers.parse_spec("least_squares(features=cube)") == ("least_squares", {"features": "cube"})
        got = solvers.prefix_predictions("least_squares(features=cube)", x, y, xq)
        np.testing.assert_allclose(got, solvers.prefix_predictions("least_squares", x**3, y, xq**3), atol=1e-12)
    finally:
        features._REGISTRY.pop("cube")
