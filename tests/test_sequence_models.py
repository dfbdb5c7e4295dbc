"""The recurrent scaffold (`icl.models.sequence`, `icl.models.scan`) and the linear-attention
family: the parallel, sequential and masked forms agree in float64; with the same weights the
family equals the causal LSA family; its GD and decayed-GD constructions equal the learners on
every prefix (values and input gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import models, solvers
from icl.models import linear_attention as la, scan

D = 4


def sequence(key, b=3, t=7, d=D):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))


def test_recurrence_forms_agree_with_a_python_loop():
    a = jax.random.uniform(jax.random.key(0), (2, 9, 3))
    b = jax.random.normal(jax.random.key(1), (2, 9, 3))
    h, want = np.zeros((2, 3)), []
    for t in range(9):
        h = np.asarray(a[:, t]) * h + np.asarray(b[:, t])
        want.append(h)
    want = np.stack(want, 1)
    for form in scan.SCANS:
        np.testing.assert_allclose(scan.diagonal_recurrence(a, b, form), want, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="scan must be one of"):
        scan.diagonal_recurrence(a, b, "nope")
    before = scan.states_before(jnp.asarray(want), jnp.array([0, 3, 9]))
    np.testing.assert_array_equal(before[:, 0], 0.0)
    np.testing.assert_array_equal(before[:, 1], want[:, 2])
    np.testing.assert_array_equal(before[:, 2], want[:, 8])


@pytest.mark.parametrize("gate", la.GATES)
def test_linear_attention_forms_agree(gate):
    x, y = sequence(jax.random.key(2))
    outs = {}
    for form in la.LinearAttentionConfig.SCANS:
        model = la.LinearAttentionConfig(gate=gate, scan=form, n_layers=2, n_heads=2, key_size=3, mlp=True,
                                         layernorm=True, init_scale=1.0).build(D, 5)
        outs[form] = (model.predict_prefixes(x, y), model.predict(x[:, :5], y[:, :5], x[:, 5:]))
    for form, (prefixes, queries) in outs.items():
        np.testing.assert_allclose(prefixes, outs["parallel"][0], rtol=1e-11, atol=1e-12, err_msg=form)
        np.testing.assert_allclose(queries, outs["parallel"][1], rtol=1e-11, atol=1e-12, err_msg=form)


def test_linear_attention_equals_the_causal_lsa_family_with_the_same_weights():
    lsa = models.ModelConfig(n_layers=2, n_heads=2, key_size=3, init_scale=1.0).build(D, 7)
    rec = la.LinearAttentionConfig(n_layers=2, n_heads=2, key_size=3).build(D, 0)
    for layer, block in zip(lsa.layers, rec.blocks, strict=True):
        for name in ("query", "key", "value", "out"):
            getattr(block.mixer, name)[...] = getattr(layer, name)[...]
    x, y = sequence(jax.random.key(3))
    np.testing.assert_allclose(rec.layer_prefix_predictions(x, y), lsa.layer_prefix_predictions(x, y), rtol=1e-12, atol=1e-13)
    # Query mode: LSA's context tokens attend to the whole context (both directions), a recurrent
    # layer's only to the past, so the two agree on the first layer's read-out and not after it.
    np.testing.assert_allclose(rec.layer_predictions(x[:, :5], y[:, :5], x[:, 5:])[0],
                               lsa.layer_predictions(x[:, :5], y[:, :5], x[:, 5:], path="tokens")[0], rtol=1e-12, atol=1e-13)


def _gd_per_prefix(x, y, lr, n_ref):
    t = x.shape[1]
    return jnp.stack([jnp.zeros_like(y[:, 0])] + [
        solvers.gd(x[:, :k], y[:, :k], x[:, k], lr=lr * k / n_ref, steps=1) for k in range(1, t)], axis=1)


@pytest.mark.parametrize("form", la.LinearAttentionConfig.SCANS)
def test_gd_construction_is_one_gd_step_on_every_prefix(form):
    x, y = sequence(jax.random.key(4))
    model = la.gd_model(D, lr=0.7, n_ref=6, scan=form)
    np.testing.assert_allclose(model.predict_prefixes(x, y), _gd_per_prefix(x, y, 0.7, 6), rtol=0, atol=1e-12)
    grads = [jax.grad(lambda x_, f=f: jnp.sum(jnp.sin(f(x_, y))))(x)
             for f in (model.predict_prefixes, lambda x_, y_: _gd_per_prefix(x_, y_, 0.7, 6))]
    np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-12)


def test_decayed_construction_is_exponentially_weighted_gd():
    """gamma^(t-1-j) weights, checked against a naive loop over prefixes and pairs."""
    x, y = sequence(jax.random.key(5))
    gamma, lr, n_ref = 0.8, 0.5, 6
    got = la.gd_model(D, lr=lr, n_ref=n_ref, decay=gamma).predict_prefixes(x, y)
    xn, yn = np.asarray(x), np.asarray(y)
    want = np.zeros_like(yn)
    for t in range(x.shape[1]):
        for j in range(t):
            want[:, t] += lr / n_ref * gamma ** (t - 1 - j) * yn[:, j] * np.sum(xn[:, j] * xn[:, t], -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_config_errors_are_one_line():
    with pytest.raises(ValueError, match="linear_attention: gate must be one of"):
        la.LinearAttentionConfig(gate="sometimes")
    with pytest.raises(ValueError, match="linear_attention: scan must be one of"):
        la.LinearAttentionConfig(scan="fft")
    with pytest.raises(ValueError, match="linear_attention: n_layers must be an integer >= 1"):
        la.LinearAttentionConfig(n_layers=0)
    with pytest.raises(ValueError, match="decay must be in"):
        la.gd_model(D, lr=0.1, n_ref=4, decay=1.5)
