"""Unnormalised kernel attention in the LSA model (`ModelConfig.attention` "relu" / "exp", claim 20):
the layer against a hand-written numpy forward for each h (float64), the functional-GD
construction computing eta sum_i h(x_q^T A x_i) y_i exactly, masked entries contributing 0, the
paths ("auto" takes the token path; "fast" and "gram" refuse), and trainability (finite gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_models import KERNELS, naive_attention  # the token-by-token reference, every attention kind

from icl import models, tasks
from icl.analysis import kernel_attention as ka
from icl.models.lsa import KERNEL_ATTENTIONS


def _weights(layer):
    return tuple(np.asarray(p[...]) for p in (layer.query, layer.key, layer.value, layer.out))


@pytest.mark.parametrize("h", ["linear", *KERNEL_ATTENTIONS])
@pytest.mark.parametrize(("heads", "key_size"), [(1, 0), (2, 3)])
def test_layer_matches_naive_reference(h, heads, key_size):
    config = models.ModelConfig(n_layers=1, n_heads=heads, key_size=key_size, attention=h, init_scale=0.5)
    model = config.build(d=3, key=jax.random.key(0))
    layer = model.layers[0]
    tokens = jax.random.normal(jax.random.key(1), (2, 7, 4), dtype=jnp.float64)
    got = layer(tokens, 5)
    np.testing.assert_allclose(got, naive_attention(tokens, 5, *_weights(layer), h), rtol=1e-12, atol=1e-12)
    # with a mask: invisible entries contribute 0 (exp(0) = 1 must not leak)
    mask = jax.random.bernoulli(jax.random.key(2), 0.6, (7, 5))
    got = layer(tokens, 5, mask)
    np.testing.assert_allclose(got, naive_attention(tokens, 5, *_weights(layer), h, np.asarray(mask)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h", KERNEL_ATTENTIONS)
def test_a_stack_matches_the_naive_reference_layer_by_layer(h):
    model = models.ModelConfig(n_layers=2, attention=h, init_scale=0.4).build(d=2, key=jax.random.key(3))
    batch = tasks.get("kernel_gp", d=2, n_ctx=6, n_query=2, kernel=h, noise_std=0.1).sample(jax.random.key(4), 3)
    tokens = np.asarray(model.tokens(batch.x_ctx, batch.y_ctx, batch.x_query))
    for layer in model.layers:
        tokens = naive_attention(tokens, 6, *_weights(layer), h)
    np.testing.assert_allclose(model(batch), -tokens[:, 6:, -1], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, path="tokens"),
                               model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=0, atol=0)


@pytest.mark.parametrize("h", ["linear", *KERNEL_ATTENTIONS])
def test_the_construction_is_one_functional_gd_step(h):
    """Weights set to `kernel_attention.construction` (A = a I): the prediction is
    eta sum_i h(a x_q . x_i) y_i exactly, in float64, and equals `functional_gd`."""
    d, n, a, eta = 4, 9, 0.7, 0.3
    model = models.ModelConfig(n_layers=1, attention=h).build(d=d, key=jax.random.key(5))
    layer = model.layers[0]
    for name, value in ka.construction(d, h, a, eta).items():
        getattr(layer, name)[...] = jnp.asarray(value)
    batch = tasks.get("kernel_gp", d=d, n_ctx=n, n_query=3, kernel="exp", noise_std=0.2).sample(jax.random.key(6), 5)
    x, y, q = (np.asarray(v) for v in (batch.x_ctx, batch.y_ctx, batch.x_query))
    expected = eta * np.einsum("bmn,bn->bm", KERNELS[h](a * np.einsum("bmd,bnd->bmn", q, x)), y)
    np.testing.assert_allclose(model(batch), expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(ka.functional_gd(batch.x_ctx, batch.y_ctx, batch.x_query, h, a, eta), expected, rtol=1e-13, atol=1e-14)
    w = ka.weight_alignment({n: getattr(layer, n)[...] for n in ("query", "key", "value", "out")}, d)
    assert w["score_cos"] == pytest.approx(1.0) and w["value_cos"] == pytest.approx(1.0)
    assert w["score_a"] == pytest.approx(a) and w["eta_a"] == pytest.approx(eta * a)


@pytest.mark.parametrize("h", KERNEL_ATTENTIONS)
def test_paths(h):
    model = models.ModelConfig(n_layers=1, attention=h).build(d=2)
    batch = tasks.get("kernel_gp", d=2, n_ctx=4).sample(jax.random.key(7), 2)
    with pytest.raises(ValueError, match=f"path 'fast' does not run attention='{h}'") as error:
        model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, path="fast")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError):
        model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, path="gram")
    assert not models.lsa.supports_gram(models.ModelConfig(attention=h))


@pytest.mark.parametrize("h", KERNEL_ATTENTIONS)
def test_gradients_are_finite_and_match_finite_differences(h):
    model = models.ModelConfig(n_layers=1, attention=h, init_scale=0.3).build(d=3, key=jax.random.key(8))
    batch = tasks.get("kernel_gp", d=3, n_ctx=5, kernel=h, noise_std=0.1).sample(jax.random.key(9), 4)
    graph, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        return 0.5 * jnp.mean((nnx.merge(graph, p, rest)(batch) - batch.y_query) ** 2)

    grads = jax.grad(loss)(params)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves) and any(float(jnp.abs(g).max()) > 0 for g in leaves)
    direction = jax.tree.map(lambda p: jax.random.normal(jax.random.key(10), p.shape, p.dtype), params)
    eps = 1e-6
    plus = loss(jax.tree.map(lambda p, v: p + eps * v, params, direction))
    minus = loss(jax.tree.map(lambda p, v: p - eps * v, params, direction))
    along = sum(float(jnp.sum(g * v)) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True))
    assert (plus - minus) / (2 * eps) == pytest.approx(along, rel=1e-6, abs=1e-10)


def test_existing_kinds_keep_their_paths():
    """linear still takes the Gram route, softmax the fast route (unchanged by the new kinds)."""
    assert models.lsa.supports_gram(models.ModelConfig(attention="linear"))
    assert not models.lsa.supports_gram(models.ModelConfig(attention="softmax"))
    model = models.ModelConfig(n_layers=2, attention="softmax", init_scale=0.5).build(d=2, key=jax.random.key(11))
    batch = tasks.get("linear", d=2, n_ctx=5).sample(jax.random.key(12), 3)
    np.testing.assert_array_equal(model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query),
                                  model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, path="fast"))
