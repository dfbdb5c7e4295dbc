"""The Gram-space fast path equals the token-space model."""

import jax
import numpy as np
import pytest

from icl import constructions, models, tasks
from icl.models.gram import gram_layer_predictions, supports_gram


@pytest.mark.parametrize(
    "kw",
    [dict(n_layers=1), dict(n_layers=4), dict(n_layers=3, shared=True), dict(n_layers=2, n_heads=3, key_size=5), dict(n_layers=2, embed_dim=4)],
)
def test_gram_path_equals_token_space(kw):
    model = models.build(models.ModelConfig(init_scale=0.5, **kw), d=3, key=jax.random.key(1))
    batch = tasks.get("linear", d=3, n_ctx=40, n_query=3).sample(jax.random.key(2), 8)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    tokens_path = model.layer_predictions(*args, path="tokens")
    np.testing.assert_allclose(gram_layer_predictions(model, *args), tokens_path, rtol=1e-10, atol=1e-10)


def test_gram_path_on_the_gd_construction():
    model = constructions.gd_model(5, 20, lr=0.8, layers=6)
    batch = tasks.get("linear", d=5, n_ctx=20).sample(jax.random.key(3), 16)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    np.testing.assert_allclose(gram_layer_predictions(model, *args, n_layers=6), model.layer_predictions(*args, path="tokens"), atol=1e-12)


def test_auto_path_takes_gram_for_pure_linear_stacks():
    model = models.build(models.ModelConfig(n_layers=2, init_scale=0.5), d=3, key=jax.random.key(1))
    batch = tasks.get("linear", d=3, n_ctx=5).sample(jax.random.key(2), 4)
    args = (batch.x_ctx, batch.y_ctx, batch.x_query)
    n_dots = lambda path: str(jax.make_jaxpr(lambda *a: model.layer_predictions(*a, path=path))(*args)).count("dot_general")  # noqa: E731
    assert str(jax.make_jaxpr(lambda *a: model.layer_predictions(*a))(*args)).count("dot_general") == n_dots("gram") != n_dots("tokens")


@pytest.mark.parametrize("kw", [dict(layernorm=True), dict(mlp=True), dict(attention="softmax"), dict(clip_activations=1.0)])
def test_gram_path_refuses_non_linear_stacks(kw):
    config = models.ModelConfig(**kw)
    assert not supports_gram(config)
    model = models.build(config, d=2)
    batch = tasks.get("linear", d=2, n_ctx=4).sample(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="needs linear attention"):
        gram_layer_predictions(model, batch.x_ctx, batch.y_ctx, batch.x_query)
