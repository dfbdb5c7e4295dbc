"""The "separate" (classic) token layout: x_i and y_i in their own tokens, with a positional code.
Shapes, masking (no query sees its own label or another query), and a hand-built copy layer
followed by the GD layer that reproduces one GD step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import models, solvers, tasks

D, N, M, P = 3, 5, 2, 8


def _model(**kw):
    config = models.ModelConfig(token_layout="separate", n_positions=P, init_scale=1.0, **kw)
    return models.build(config, d=D, key=jax.random.key(0))


def _batch(b=4, n=N, m=M, seed=1):
    return tasks.get("linear", d=D, n_ctx=n, n_query=m).sample(jax.random.key(seed), b)


def test_tokens_shape_and_content():
    model = _model(n_layers=2, first_layer_softmax=True)
    batch = _batch()
    tokens = model.tokens(batch.x_ctx, batch.y_ctx, batch.x_query)
    width = D + P + 3 + 1
    assert model.config.token_dim(D) == width and tokens.shape == (4, 2 * N + M, width)
    x_tok, y_tok, q_tok = tokens[:, 0 : 2 * N : 2], tokens[:, 1 : 2 * N : 2], tokens[:, 2 * N :]
    np.testing.assert_array_equal(x_tok[..., :D], batch.x_ctx)
    np.testing.assert_array_equal(y_tok[..., -1], batch.y_ctx)
    np.testing.assert_array_equal(x_tok[..., -1], 0.0)
    np.testing.assert_array_equal(y_tok[..., :D], 0.0)
    np.testing.assert_array_equal(q_tok[..., :D], batch.x_query)
    np.testing.assert_array_equal(q_tok[..., -1], 0.0)  # the query's label slot starts at 0
    eye = np.eye(N, P)
    np.testing.assert_array_equal(x_tok[0, :, D : D + P], eye)  # x_i and y_i share pair index i
    np.testing.assert_array_equal(y_tok[0, :, D : D + P], eye)
    np.testing.assert_array_equal(q_tok[..., D : D + P], 0.0)
    flags = tokens[0, :, D + P : D + P + 3]
    np.testing.assert_array_equal(flags[: 2 * N : 2], [[1, 0, 0]] * N)
    np.testing.assert_array_equal(flags[1 : 2 * N : 2], [[0, 1, 0]] * N)
    np.testing.assert_array_equal(flags[2 * N :], [[0, 0, 1]] * M)
    assert model(batch).shape == (4, M)
    assert model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query).shape == (2, 4, M)
    assert model.layers[0].softmax and not model.layers[1].softmax


@pytest.mark.parametrize(
    "kw", [dict(n_layers=2, first_layer_softmax=True), dict(n_layers=2, attention="softmax", n_heads=2),
           dict(n_layers=1, embed_dim=4), dict(n_layers=2, shared=True, layernorm=True, mlp=True)]
)
def test_no_label_leakage_and_masking(kw):
    """Queries do not see each other or their own labels; context tokens never see the queries.
    (Each check is one jitted program.)"""
    model = _model(**kw)
    batch = _batch()
    y_hat = jax.jit(lambda b: model(b))(batch)
    predict = jax.jit(lambda xq: model.predict(batch.x_ctx, batch.y_ctx, xq))
    for q in range(M):  # each query alone gives the same prediction: queries do not see each other
        np.testing.assert_allclose(predict(batch.x_query[:, q : q + 1])[:, 0], y_hat[:, q], atol=1e-12)
    grad = jax.jit(jax.grad(lambda xq: model.predict(batch.x_ctx, batch.y_ctx, xq)[:, 0].sum()))(batch.x_query)
    assert float(jnp.abs(grad[:, 1:]).max()) == 0.0 and float(jnp.abs(grad[:, 0]).max()) > 0
    g = jax.jit(jax.grad(lambda b: models.predict(model, b).sum(), allow_int=True))(batch)
    assert float(jnp.abs(g.y_query).max()) == 0.0  # the query's own label is never an input
    assert float(jnp.abs(g.y_ctx).min(axis=0).max()) > 0  # the context labels are

    def ctx_out(xq):  # context tokens after every layer do not depend on the queries
        tokens = model.tokens(batch.x_ctx, batch.y_ctx, xq)
        for i in range(model.config.n_layers):
            tokens = model.layers[0 if model.config.shared else i](tokens, 2 * N)
        return tokens[:, : 2 * N].sum()

    assert float(jnp.abs(jax.jit(jax.grad(ctx_out))(batch.x_query)).max()) == 0.0


def test_copy_layer_then_gd_layer_is_one_gd_step():
    """Softmax layer 1 copies y_i into x_i's label slot (x_i attends to the token with its pair
    index and the label flag; the query attends to x tokens, whose label slot is 0); linear layer 2
    is the GD construction on the x block. Together: one GD step, up to exp(-scale) terms."""
    model = _model(n_layers=2, first_layer_softmax=True, key_size=0)
    width, scale, lr = model.config.token_dim(D), 60.0, 0.8
    pos, is_input, is_label, is_query, label = slice(D, D + P), D + P, D + P + 1, D + P + 2, width - 1
    a, c = 0, 1  # two spare key coordinates (the feature rows of q and k stay 0)
    q = np.zeros((width, width))
    k = np.zeros((width, width))
    q[pos, pos] = k[pos, pos] = np.eye(P)  # same pair index
    q[is_input, a] = k[is_label, a] = 1.0  # inputs prefer labels
    q[is_query, c] = k[is_input, c] = 1.0  # the query prefers inputs (label slot 0)
    root = np.sqrt(width)  # the softmax divides logits by sqrt(key size)
    first = model.layers[0]
    first.query[...] = jnp.asarray(q * np.sqrt(scale * root))[None]
    first.key[...] = jnp.asarray(k * np.sqrt(scale * root))[None]
    copy = np.zeros((width, width))
    copy[label, label] = 1.0
    first.value[...] = jnp.asarray(copy)[None]
    first.out[...] = jnp.asarray(copy)[None]
    second = model.layers[1]
    feat = np.zeros((width, width))
    feat[:D, :D] = np.eye(D)
    second.query[...] = second.key[...] = jnp.asarray(feat)[None]
    second.value[...] = jnp.asarray(-copy)[None]
    second.out[...] = jnp.asarray(copy * lr / N)[None]
    batch = _batch(b=6, seed=3)
    expected = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=lr, steps=1)
    np.testing.assert_allclose(model(batch), expected, atol=1e-9)


def test_separate_layout_errors():
    model = _model()
    with pytest.raises(ValueError, match="at most n_positions=8"):
        model(_batch(n=9))
    with pytest.raises(ValueError, match="token_layout must be"):
        models.ModelConfig(token_layout="interleaved")
    with pytest.raises(ValueError, match="first_layer_softmax needs unshared"):
        models.ModelConfig(first_layer_softmax=True, shared=True)
