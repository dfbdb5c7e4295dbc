"""The LSA transformer against a naive per-token reference, and its structural guarantees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import models, tasks

KERNELS = {"linear": lambda s: s, "relu": lambda s: np.maximum(s, 0.0), "exp": np.exp}  # h of the unnormalised kinds


def naive_attention(tokens, n_ctx, wq, wk, wv, wo, attention, mask=None):
    """Token-by-token reference: every token attends to the N context tokens only, with weights
    softmax(q . k / sqrt(k)) or h(q . k) (`KERNELS`, unnormalised); `mask` [T, N] (False: the
    entry contributes 0; not for softmax)."""
    tokens = np.asarray(tokens)
    out = np.zeros_like(tokens)
    for b in range(tokens.shape[0]):
        for j in range(tokens.shape[1]):
            total = np.zeros(tokens.shape[2])
            for h in range(wq.shape[0]):
                q = tokens[b, j] @ wq[h]
                keys = [tokens[b, i] @ wk[h] for i in range(n_ctx)]
                vals = [tokens[b, i] @ wv[h] for i in range(n_ctx)]
                scores = np.array([k @ q for k in keys])
                if attention == "softmax":
                    assert mask is None
                    scores = np.exp(scores / np.sqrt(len(q)) - (scores / np.sqrt(len(q))).max())
                    scores = scores / scores.sum()
                else:
                    scores = KERNELS[attention](scores) * (1.0 if mask is None else np.asarray(mask[j, :n_ctx], float))
                total += sum(s * v for s, v in zip(scores, vals, strict=True)) @ wo[h]
            out[b, j] = tokens[b, j] + total
    return out


@pytest.mark.parametrize("attention", ["linear", "softmax"])
@pytest.mark.parametrize("heads,key_size", [(1, 0), (3, 2)])
def test_layer_matches_naive_reference(attention, heads, key_size):
    config = models.ModelConfig(n_layers=1, n_heads=heads, key_size=key_size, attention=attention, init_scale=1.0)
    model = models.build(config, d=3, key=jax.random.key(0))
    batch = tasks.get("linear", d=3, n_ctx=5, n_query=2).sample(jax.random.key(1), 3)
    tokens = model.tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
    layer = model.layers[0]
    expected = naive_attention(
        tokens, 5, *(np.asarray(p[...]) for p in (layer.query, layer.key, layer.value, layer.out)), attention
    )
    np.testing.assert_allclose(layer(tokens, 5), expected, atol=1e-12)
    np.testing.assert_allclose(model(batch), -expected[:, 5:, -1], atol=1e-12)


def _random_model(**kw):
    config = models.ModelConfig(init_scale=1.0, **kw)
    return models.build(config, d=2, key=jax.random.key(3))


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_layers=2),
        dict(n_layers=3, shared=True, attention="softmax"),
        dict(n_layers=2, layernorm=True, mlp=True, n_heads=2),
        dict(n_layers=1, embed_dim=4),
    ],
)
def test_queries_are_independent_and_labels_never_leak(kw):
    """No query attends to itself or to another query; context tokens never see queries;
    the query's label is not an input. (Each check is one jitted program: eager dispatch of the
    gradients took ~30 s a case.)"""
    model = _random_model(**kw)
    batch = tasks.get("linear", d=2, n_ctx=6, n_query=3).sample(jax.random.key(4), 2)
    y_hat = jax.jit(lambda b: model(b))(batch)
    predict = jax.jit(lambda xq: model.predict(batch.x_ctx, batch.y_ctx, xq))
    for q in range(3):  # each query alone gives the same prediction
        np.testing.assert_allclose(predict(batch.x_query[:, q : q + 1])[:, 0], y_hat[:, q], atol=1e-12)
    # d(prediction of query 0) / d(other queries) = 0
    grad = jax.jit(jax.grad(lambda xq: model.predict(batch.x_ctx, batch.y_ctx, xq)[:, 0].sum()))(batch.x_query)
    assert float(jnp.abs(grad[:, 1:]).max()) == 0.0 and float(jnp.abs(grad[:, 0]).max()) > 0
    # context tokens after every layer do not depend on the queries
    def ctx_out(xq):
        tokens = model.tokens(batch.x_ctx, batch.y_ctx, xq)
        for i in range(model.config.n_layers):
            tokens = model.layers[0 if model.config.shared else i](tokens, 6)
        return tokens[:, :6].sum()

    assert float(jnp.abs(jax.jit(jax.grad(ctx_out))(batch.x_query)).max()) == 0.0
    # the query's own label is never an input: y_query has zero influence
    g = jax.jit(jax.grad(lambda b: models.predict(model, b).sum(), allow_int=True))(batch)
    assert float(jnp.abs(g.y_query).max()) == 0.0


def test_shapes_dtypes_and_layers():
    model = _random_model(n_layers=4, shared=True)
    assert len(model.layers) == 1
    batch = tasks.get("linear", d=2, n_ctx=6).sample(jax.random.key(4), 5)
    per_layer = model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query)
    assert per_layer.shape == (4, 5, 1)
    np.testing.assert_allclose(per_layer[-1], model(batch))
    longer = model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, n_layers=7)
    np.testing.assert_allclose(longer[:4], per_layer, atol=1e-12)
    assert model.predict(batch.x_ctx, batch.y_ctx, batch.x_query[:, 0]).shape == (5,)
    with pytest.raises(ValueError, match="model was built for d=2"):
        model.predict(jnp.zeros((1, 3, 3)), jnp.zeros((1, 3)), jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="cannot run 3"):
        _random_model(n_layers=2).layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query, n_layers=3)


def test_clip_activations_bounds_tokens():
    model = _random_model(n_layers=2, clip_activations=0.5)
    batch = tasks.get("linear", d=2, n_ctx=6).sample(jax.random.key(5), 50)
    assert float(jnp.abs(model(batch)).max()) <= 0.5


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(n_layers=0), "n_layers must be an integer >= 1"),
        (dict(attention="gelu"), r"attention must be one of \('linear', 'softmax', 'relu', 'exp'\), got 'gelu'"),
        (dict(key_size=-1), "key_size must be an integer >= 0"),
        (dict(init_scale=0.0), "init_scale must be > 0"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        models.ModelConfig(**kw)
