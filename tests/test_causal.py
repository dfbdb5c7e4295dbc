"""The causal objective for the LSA family: masked attention, the GD construction on every prefix
(docs/math.md, "The causal objective"), and the K-layer recurrence against a naive loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import constructions, models, solvers, tasks, verify
from icl.trainer import objective_loss

TOL = 1e-10  # float64 claims


def sequence(seed, b=16, t=9, d=4):
    batch = tasks.get("linear", d=d, n_ctx=t - 1).sample(jax.random.key(seed), b)
    return *batch.sequence(), batch


def naive_causal_gd(x, y, lr, n_ref, layers):
    """The recurrence of `verify.causal_prefix_gd`, one pair and one position at a time."""
    x, y = np.asarray(x), np.asarray(y)
    c = lr / n_ref
    b, t, _ = x.shape
    r, q = y.copy(), np.zeros_like(y)
    for _ in range(layers):
        r_new, q_new = r.copy(), q.copy()
        for i in range(t):
            for j in range(t):
                dot = np.einsum("bd,bd->b", x[:, j], x[:, i])
                if j <= i:
                    r_new[:, i] -= c * dot * r[:, j]
                if j < i:
                    q_new[:, i] -= c * dot * r[:, j]
        r, q = r_new, q_new
    return -q


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_the_causal_recurrence_matches_a_naive_loop(layers):
    x, y, _ = sequence(0)
    np.testing.assert_allclose(verify.causal_prefix_gd(x, y, 0.9, 8, layers), naive_causal_gd(x, y, 0.9, 8, layers),
                               rtol=0, atol=TOL)


def test_one_causal_gd_layer_is_one_gd_step_on_every_prefix():
    """Position t: one GD step on the t pairs before it at rate lr t / N (0-based t), in float64."""
    x, y, _ = sequence(1)
    lr, n = 1.3, 8
    got = constructions.gd_model(4, n, lr=lr).predict_prefixes(x, y)
    assert float(jnp.max(jnp.abs(got[:, 0]))) == 0.0  # nothing to learn from
    for t in range(1, x.shape[1]):
        want = solvers.gd(x[:, :t], y[:, :t], x[:, t], lr=lr * t / n, steps=1)
        np.testing.assert_allclose(got[:, t], want, rtol=0, atol=TOL)


@pytest.mark.parametrize("layers", [1, 3])
def test_k_causal_layers_are_the_recurrence_and_more_than_one_differs_from_k_gd_steps(layers):
    x, y, batch = sequence(2)
    err_gd, err_learner = verify.causal_errors(batch, 0.7, layers)
    assert float(err_learner) <= TOL
    if layers == 1:
        assert float(err_gd) <= TOL
    else:  # shared tokens: not K steps on each prefix (docs/math.md), by far more than round-off
        assert float(err_gd) > 1e-3


def test_all_ones_mask_is_the_unmasked_layer():
    """The masked attention path with every context token visible equals the unmasked one
    (linear and softmax), so the mask changes only what it hides."""
    for attention in ("linear", "softmax"):
        model = models.build(models.ModelConfig(n_layers=1, attention=attention, init_scale=0.7, n_heads=2), 3, 4)
        tokens = jax.random.normal(jax.random.key(5), (2, 7, 4))
        full = model.layers[0](tokens, 5)
        masked = model.layers[0](tokens, 5, jnp.ones((7, 5), bool))
        np.testing.assert_allclose(masked, full, rtol=1e-12, atol=1e-14)


def test_the_causal_loss_averages_every_position():
    x, y, batch = sequence(3)
    model = models.build(models.ModelConfig(n_layers=2, init_scale=0.3), 4, 6)
    want = 0.5 * jnp.mean((model.predict_prefixes(x, y) - y) ** 2)
    np.testing.assert_allclose(objective_loss("causal", model, batch), want, rtol=1e-14)
    query = 0.5 * jnp.mean((model.predict(batch.x_ctx, batch.y_ctx, batch.x_query) - batch.y_query) ** 2)
    np.testing.assert_allclose(objective_loss("query", model, batch), query, rtol=1e-14)


def test_layouts_without_a_causal_form_say_so():
    model = models.build(models.ModelConfig(token_layout="separate", n_positions=8), 3, 0)
    x, y, _ = sequence(4, d=3)
    with pytest.raises(ValueError, match="predict_prefixes needs token_layout='paired'"):
        model.predict_prefixes(x, y)
