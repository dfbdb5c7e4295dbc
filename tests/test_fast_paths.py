"""The fast paths (`icl.models.fast`, `icl.models.gram`) equal the token-space reference in float64:
the read-out after every layer and the parameter gradient of a training loss, for every model family
the paper trains (softmax, mixed softmax/linear, the separate layout, LayerNorm/MLP, embeddings,
deep clipped and shared stacks, several heads, a small key size)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import models, tasks
from icl.models import fast, gram
from icl.models.gram import supports_gram

RTOL, ATOL = 1e-12, 1e-13

FAMILIES = {
    "softmax": dict(attention="softmax"),
    "softmax_2_layers": dict(attention="softmax", n_layers=2),
    "softmax_heads_small_key": dict(attention="softmax", n_layers=2, n_heads=3, key_size=2),
    "linear_heads_small_key_ln": dict(n_layers=2, n_heads=2, key_size=2, layernorm=True),
    "classic_tokens": dict(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=6),
    "classic_tokens_3_layers_clip": dict(n_layers=3, first_layer_softmax=True, token_layout="separate", n_positions=7,
                                         clip_activations=0.7),
    "separate_linear": dict(n_layers=2, token_layout="separate", n_positions=6),
    "separate_1_layer_heads_small_key": dict(attention="softmax", token_layout="separate", n_positions=6, n_heads=2, key_size=3),
    "separate_layernorm_mlp": dict(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=6, layernorm=True,
                                   mlp=True, mlp_width=1),
    "separate_embedding_mlp": dict(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=6, embed_dim=4,
                                   embed_hidden=5, mlp=True, mlp_width=1),
    "layernorm_mlp": dict(attention="softmax", n_layers=2, layernorm=True, mlp=True, mlp_width=2),
    "mlp_last_linear": dict(n_layers=2, mlp=True, mlp_width=2),
    "embedding": dict(n_layers=1, embed_dim=4, embed_hidden=6),
    "embedding_softmax_shared": dict(attention="softmax", n_layers=3, shared=True, embed_dim=4, embed_hidden=6),
    "deep_clipped": dict(n_layers=5, clip_activations=0.8),
    "shared": dict(n_layers=2, shared=True),
    "frozen_gd": dict(n_layers=2, frozen_gd_lr=0.5),
}


def _setup(kw, d=3, n_ctx=6, n_query=2, batch=5, seed=0):
    model = models.build(models.ModelConfig(init_scale=0.6, **kw), d=d, key=jax.random.key(seed))
    data = tasks.get("linear", d=d, n_ctx=n_ctx, n_query=n_query).sample(jax.random.key(seed + 1), batch)
    return model, data


def _assert_close(got, want):
    """Equal to float64 rounding (float32 leaves, e.g. LayerNorm's parameters, to float32 rounding)."""
    got, want = np.asarray(got), np.asarray(want)
    rtol, atol = (RTOL, ATOL) if want.dtype == np.float64 else (1e-5, 1e-6)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(np.abs(want).max())))


GRAM_FAMILIES = [name for name, kw in FAMILIES.items() if supports_gram(models.ModelConfig(**kw))]


@pytest.mark.parametrize(("name", "path"), [(name, "fast") for name in FAMILIES] + [(name, "auto") for name in GRAM_FAMILIES])
def test_fast_path_equals_token_space(name, path):
    model, b = _setup(FAMILIES[name])
    args = (b.x_ctx, b.y_ctx, b.x_query)
    graphdef, state = nnx.split(model)
    run = jax.jit(lambda state, args, path: nnx.merge(graphdef, state).layer_predictions(*args, path=path), static_argnums=2)
    want = run(state, args, "tokens")
    got = run(state, args, path)
    assert got.dtype == jnp.float64 and got.shape == want.shape
    _assert_close(got, want)


@pytest.mark.parametrize("name", FAMILIES)
def test_fast_path_has_the_token_space_gradient(name):
    """The train step differentiates the fast path: values and parameter gradients match."""
    model, b = _setup(FAMILIES[name], seed=3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    args = (b.x_ctx, b.y_ctx, b.x_query)

    def loss(params, path):
        preds = nnx.merge(graphdef, params, rest).layer_predictions(*args, path=path)
        return 0.5 * jnp.mean((preds[-1] - b.y_query) ** 2) + 0.1 * jnp.mean(preds[0] ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    want_value, want = value_and_grad(params, "tokens")
    got_value, got = value_and_grad(params, "fast")
    _assert_close(got_value, want_value)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        _assert_close(g, w)


@pytest.mark.parametrize(("name", "n_layers"), [("embedding_softmax_shared", 5), ("shared", 4), ("shared", 1)])
def test_shared_stack_run_for_other_depths(name, n_layers):
    """A shared layer looped more or fewer times than trained (`n_layers=` override, figure 3)."""
    model, b = _setup(FAMILIES[name], seed=9)
    args = (b.x_ctx, b.y_ctx, b.x_query)
    run = jax.jit(lambda path: model.layer_predictions(*args, n_layers=n_layers, path=path), static_argnums=0)
    _assert_close(run("fast"), run("tokens"))
    _assert_close(run("auto"), run("tokens"))


def test_input_gradients_match():
    """Gradients with respect to the data (the saliency of `icl.compare`) go through the custom
    backward passes too."""
    model, b = _setup(FAMILIES["classic_tokens"], seed=5)

    def f(xq, yc, path):
        return jnp.sum(model.layer_predictions(b.x_ctx, yc, xq, path=path)[-1] ** 2)

    grad = jax.jit(jax.grad(f, argnums=(0, 1)), static_argnums=2)
    for got, want in zip(grad(b.x_query, b.y_ctx, "fast"), grad(b.x_query, b.y_ctx, "tokens"), strict=True):
        _assert_close(got, want)


@pytest.mark.parametrize("op", ["bmm", "bmm_nt", "matmul"])
def test_products_and_their_gradients(op):
    k = jax.random.split(jax.random.key(7), 3)
    a = jax.random.normal(k[0], (4, 3, 5))
    b = jax.random.normal(k[1], {"bmm": (4, 5, 2), "bmm_nt": (4, 2, 5), "matmul": (5, 2)}[op])
    ref = {"bmm": lambda a, b: a @ b, "bmm_nt": lambda a, b: a @ jnp.swapaxes(b, 1, 2), "matmul": lambda a, b: a @ b}[op]
    f = getattr(fast, op)
    _assert_close(f(a, b), ref(a, b))
    ct = jax.random.normal(k[2], ref(a, b).shape)
    for got, want in zip(jax.vjp(f, a, b)[1](ct), jax.vjp(ref, a, b)[1](ct), strict=True):
        _assert_close(got, want)
    # second order (a Hessian-vector product through the custom backward pass)
    hv = lambda g: jax.grad(lambda a: jnp.sum(jax.grad(lambda a: jnp.sum(g(a, b) ** 2))(a) * a))(a)
    _assert_close(hv(f), hv(ref))


def test_merge_rule():
    """q.k and the value-output map are merged into D x D maps at the paper's key size k = D,
    kept as projections at a small key size."""
    assert fast.merged_costs_less(n_tokens=11, n_ctx=10, token_dim=11, key_size=11) == (True, True)
    assert fast.merged_costs_less(n_tokens=11, n_ctx=10, token_dim=11, key_size=2) == (False, False)


@pytest.mark.parametrize("kw", [dict(n_layers=1), dict(n_layers=2), dict(n_layers=2, shared=True), dict(n_layers=2, n_heads=2, key_size=3),
                                dict(n_layers=2, embed_dim=4, embed_hidden=5)])
def test_vectors_method(kw):
    """gram's "vectors" method (one or two unclipped layers) equals token space, values and gradients."""
    model, b = _setup(kw, seed=11)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    args = (b.x_ctx, b.y_ctx, b.x_query)

    def preds(params, fast):
        m = nnx.merge(graphdef, params, rest)
        return gram.gram_layer_predictions(m, *args, method="vectors") if fast else m.layer_predictions(*args, path="tokens")

    _assert_close(jax.jit(preds, static_argnums=1)(params, True), jax.jit(preds, static_argnums=1)(params, False))
    loss = lambda p, fast: jnp.sum(preds(p, fast)[-1] ** 2)
    for g, w in zip(*(jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=1)(params, f)) for f in (True, False)), strict=True):
        _assert_close(g, w)


@pytest.mark.parametrize("name", ["softmax", "classic_tokens", "shared", "deep_clipped"])
def test_float32_data_with_float64_weights(name):
    """Mixed dtypes (float32 tasks, a float64 model, as `icl.compare`'s sensitivities meet them)
    differentiate: every cotangent comes back in its input's dtype."""
    model, b = _setup(FAMILIES[name], seed=13)
    args = [jnp.asarray(a, jnp.float32) for a in (b.x_ctx, b.y_ctx, b.x_query)]

    def sensitivity(path):
        return jax.grad(lambda xq: jnp.sum(model.layer_predictions(args[0], args[1], xq, path=path)[-1]))(args[2])

    got, want = jax.jit(sensitivity, static_argnums=0)("auto"), jax.jit(sensitivity, static_argnums=0)("tokens")
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
