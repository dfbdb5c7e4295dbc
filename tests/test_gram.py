"""The fast paths of pure linear stacks (token form and Gram/map form) equal the token-space model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import compare, constructions, models, tasks
from icl.models import gram
from icl.models.gram import gram_layer_predictions, supports_gram


@pytest.mark.parametrize("method", ["maps", "tokens", "auto"])
@pytest.mark.parametrize(
    "kw",
    [dict(n_layers=1), dict(n_layers=4), dict(n_layers=3, shared=True), dict(n_layers=2, n_heads=3, key_size=5),
     dict(n_layers=2, embed_dim=4)],
)
def test_gram_path_equals_token_space(kw, method):
    model = models.build(models.ModelConfig(init_scale=0.5, **kw), d=3, key=jax.random.key(1))
    batch = tasks.get("linear", d=3, n_ctx=40, n_query=3).sample(jax.random.key(2), 8)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    tokens_path = model.layer_predictions(*args, path="tokens")
    np.testing.assert_allclose(gram_layer_predictions(model, *args, method=method), tokens_path, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", gram.METHODS)
def test_gram_path_on_the_gd_construction(method):
    model = constructions.gd_model(5, 20, lr=0.8, layers=6)
    batch = tasks.get("linear", d=5, n_ctx=20).sample(jax.random.key(3), 16)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    np.testing.assert_allclose(gram_layer_predictions(model, *args, n_layers=6, method=method),
                               model.layer_predictions(*args, path="tokens"), atol=1e-12)


@pytest.mark.parametrize("method", gram.METHODS)
def test_fast_paths_have_the_token_space_gradient(method):
    """The train step differentiates the fast path: its parameter gradient equals token space's."""
    model = models.build(models.ModelConfig(n_layers=3, init_scale=0.5), d=3, key=jax.random.key(4))
    batch = tasks.get("linear", d=3, n_ctx=6).sample(jax.random.key(5), 8)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)

    def loss(params, fast: bool):
        m = nnx.merge(graphdef, params, rest)
        preds = gram_layer_predictions(m, *args, method=method) if fast else m.layer_predictions(*args, path="tokens")
        return ((preds[-1] - batch.y_query) ** 2).mean()

    want, got = (jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=1)(params, fast)) for fast in (False, True))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_choose_method_rule():
    """Deep stacks: token form while (N + M)(N + D) <= 2 D^2 (the paper's N = 10, M = 1, D = 11),
    map form for long contexts; one layer: token form while 2 M <= D, at any N."""
    assert gram.choose_method(10, 1, 11, 8) == "tokens"
    assert gram.choose_method(11, 1, 11, 2) == "maps"
    assert gram.choose_method(40, 1, 11, 4) == "maps"
    assert gram.choose_method(1000, 3, 4, 2) == "maps"
    assert gram.choose_method(2, 1, 5, 3) == "tokens"
    assert gram.choose_method(3, 4, 5, 3) == "maps"
    assert gram.choose_method(1000, 1, 11, 1) == "tokens"
    assert gram.choose_method(10, 6, 11, 1) == "maps"


def _n_dots(fn, *args) -> int:
    return str(jax.make_jaxpr(fn)(*args)).count("dot_general")


@pytest.mark.parametrize(("n_ctx", "n_layers", "method"), [(3, 3, "tokens"), (40, 3, "maps"), (40, 1, "tokens")])
def test_auto_method_follows_the_rule(n_ctx, n_layers, method):
    """auto traces to exactly the program of the method the rule picks, and the other differs."""
    model = models.build(models.ModelConfig(n_layers=n_layers, init_scale=0.5), d=3, key=jax.random.key(1))
    batch = tasks.get("linear", d=3, n_ctx=n_ctx).sample(jax.random.key(2), 4)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    jaxpr = lambda m: str(jax.make_jaxpr(lambda *a: gram_layer_predictions(model, *a, method=m))(*args))
    other = next(m for m in gram.METHODS if m != method)
    assert gram.choose_method(n_ctx, 1, 4, n_layers) == method
    assert jaxpr("auto") == jaxpr(method) != jaxpr(other)


def test_unknown_method_is_an_error():
    model = models.build(models.ModelConfig(n_layers=2), d=2)
    batch = tasks.get("linear", d=2, n_ctx=4).sample(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="method must be"):
        gram_layer_predictions(model, batch.x_ctx, batch.y_ctx, batch.x_query, method="gram")


def test_auto_path_takes_gram_for_pure_linear_stacks():
    model = models.build(models.ModelConfig(n_layers=2, init_scale=0.5), d=3, key=jax.random.key(1))
    batch = tasks.get("linear", d=3, n_ctx=5).sample(jax.random.key(2), 4)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    n_dots = lambda path: _n_dots(lambda *a: model.layer_predictions(*a, path=path), *args)
    assert _n_dots(lambda *a: model.layer_predictions(*a), *args) == n_dots("gram") != n_dots("tokens")


@pytest.mark.parametrize("kw", [dict(layernorm=True), dict(mlp=True), dict(attention="softmax")])
def test_gram_path_refuses_non_linear_stacks(kw):
    config = models.ModelConfig(**kw)
    assert not supports_gram(config)
    model = models.build(config, d=2)
    batch = tasks.get("linear", d=2, n_ctx=4).sample(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="needs linear attention"):
        gram_layer_predictions(model, batch.x_ctx, batch.y_ctx, batch.x_query)


def _clipped_setup():
    """A 4-layer stack at init 1.0 with clip 2: the clip binds on many token coordinates."""
    config = models.ModelConfig(n_layers=4, init_scale=1.0, clip_activations=2.0)
    model = models.build(config, d=3, key=jax.random.key(6))
    batch = tasks.get("linear", d=3, n_ctx=7, n_query=2).sample(jax.random.key(7), 8)
    return model, (batch.x_ctx, batch.y_ctx, batch.x_query), batch


def test_clipped_stack_takes_the_token_form_and_equals_token_space():
    model, args, _ = _clipped_setup()
    tokens = model.tokens(*args)
    n_ctx = args[0].shape[1]
    clipped_somewhere = False
    for layer in model.layers:  # the clip is active (else this test would not test it)
        unclipped = tokens + layer.attend(tokens, n_ctx)
        clipped_somewhere |= bool((abs(unclipped) > 2.0).any())
        tokens = layer(tokens, n_ctx)
    assert clipped_somewhere
    assert supports_gram(model.config)
    want = model.layer_predictions(*args, path="tokens")
    for path in ("auto", "gram"):
        np.testing.assert_allclose(model.layer_predictions(*args, path=path), want, rtol=1e-10, atol=1e-12)
    weights = [gram.products(m.query[...], m.key[...], m.value[...], m.out[...]) for m in model.layers]
    tokens = model.tokens(*args)
    unclipped = gram.stack_predictions(weights, tokens[:, :n_ctx], tokens[:, n_ctx:], "tokens")
    assert not np.allclose(unclipped, want)  # the clip changed the predictions


def test_clipped_stack_has_the_token_space_gradient():
    model, args, batch = _clipped_setup()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, path):
        preds = nnx.merge(graphdef, params, rest).layer_predictions(*args, path=path)
        return ((preds[-1] - batch.y_query) ** 2).mean()

    want, got = (jax.tree.leaves(jax.grad(loss)(params, path)) for path in ("tokens", "gram"))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_clipping_refuses_the_map_form():
    model, args, _ = _clipped_setup()
    with pytest.raises(ValueError, match="clipping needs method 'tokens'"):
        gram_layer_predictions(model, *args, method="maps")


def test_frozen_gd_attention_takes_the_fast_path_exactly():
    """The frozen GD construction (update / N) on the fast path equals token space, with an embedding."""
    config = models.ModelConfig(frozen_gd_lr=0.7, embed_dim=5, embed_hidden=8)
    model = models.build(config, d=1, key=jax.random.key(8))
    assert supports_gram(config)
    batch = tasks.get("linear", d=1, n_ctx=10, n_query=2).sample(jax.random.key(9), 8)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    want = jax.jit(lambda *a: model.layer_predictions(*a, path="tokens"))(*args)
    np.testing.assert_allclose(jax.jit(model.layer_predictions)(*args), want, rtol=1e-10, atol=1e-12)


def _full_update_read_out(weights, ctx, queries, method, clip=0.0):
    """The read-out as it was before the label-slot-only last layer: the last layer's full
    [B, M, D] update, then its label slot (a reference for the gradient test below)."""
    clipped = (lambda e: jnp.clip(e, -clip, clip)) if clip > 0 else (lambda e: e)
    n_ctx = ctx.shape[1]
    if method == "tokens":
        tokens = jnp.concatenate([ctx, queries], axis=1)
        for a, b in weights[:-1]:
            tokens = clipped(tokens + gram._token_update(tokens, tokens[:, :n_ctx], a, b))
        a, b = weights[-1]
        queries = clipped(tokens[:, n_ctx:] + gram._token_update(tokens[:, n_ctx:], tokens[:, :n_ctx], a, b))
        return -queries[..., -1]
    c = jnp.einsum("bnd,bne->bde", ctx, ctx)
    for a, b in weights[:-1]:
        m = gram._maps(a, b, c)
        queries, c = queries @ m, jnp.swapaxes(m, 1, 2) @ c @ m
    a, b = weights[-1]
    queries = queries + jnp.einsum("bsd,hde,bef,hfg->bsg", queries, a, c, b)
    return -queries[..., -1]


@pytest.mark.parametrize("method", gram.METHODS)
@pytest.mark.parametrize(
    "kw", [dict(n_layers=1), dict(n_layers=3), dict(n_layers=2, n_heads=3, key_size=5), dict(n_layers=3, clip_activations=2.0)]
)
def test_label_slot_read_out_has_the_full_update_sensitivities(kw, method):
    """The last layer computes only the label slot (what keeps `compare.sensitivities`, jax.grad with
    respect to the queries, compilable by XLA's TPU compiler in float32): its predictions and its
    sensitivities d y_hat / d x_q equal jax.grad of the full-update read-out and of token space,
    in float64 to 1e-12."""
    if kw.get("clip_activations") and method == "maps":
        pytest.skip("a clipped stack runs only the token form")
    model = models.build(models.ModelConfig(init_scale=0.5, **kw), d=3, key=jax.random.key(10))
    batch = tasks.get("linear", d=3, n_ctx=9, n_query=2).sample(jax.random.key(11), 16)
    assert batch.x_query.dtype == jnp.float64
    n_ctx = batch.x_ctx.shape[1]
    weights = [gram.products(m.query[...], m.key[...], m.value[...], m.out[...]) for m in model.layers]

    def reference(xc, yc, xq):
        tokens = model.tokens(xc, yc, xq)
        return _full_update_read_out(weights, tokens[:, :n_ctx], tokens[:, n_ctx:], method, model.config.clip_activations)

    def fast(xc, yc, xq):
        return gram_layer_predictions(model, xc, yc, xq, method=method)[-1]

    def token_space(xc, yc, xq):
        return model.layer_predictions(xc, yc, xq, path="tokens")[-1]

    @jax.jit
    def results(batch):
        args = (batch.x_ctx, batch.y_ctx, batch.x_query)
        want = jax.grad(lambda xq: jnp.sum(reference(batch.x_ctx, batch.y_ctx, xq)))(batch.x_query)
        return fast(*args), reference(*args), compare.sensitivities(fast, batch), want, compare.sensitivities(token_space, batch)

    y_fast, y_reference, got, want, token_sensitivities = results(batch)
    np.testing.assert_allclose(y_fast, y_reference, rtol=0, atol=1e-12)
    assert got.shape == batch.x_query.shape and float(jnp.abs(want).max()) > 1e-3  # not trivially 0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, token_sensitivities, rtol=0, atol=1e-12)
