"""Attention frozen to the GD construction (`ModelConfig.frozen_gd_lr`): it is GD, and training
leaves it alone (only the embedding learns)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import experiments, models, solvers, tasks, train
from icl.models.lsa import Frozen


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("n,m", [(4, 1), (7, 3)])
def test_frozen_gd_equals_gd_on_raw_inputs(layers, n, m):
    config = models.ModelConfig(n_layers=layers, frozen_gd_lr=0.7)
    model = models.build(config, d=3, key=0)
    batch = tasks.get("linear", d=3, n_ctx=n, n_query=m).sample(jax.random.key(1), 5)
    per_layer = model.layer_predictions(batch.x_ctx, batch.y_ctx, batch.x_query)
    for k in range(layers):
        expected = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=0.7, steps=k + 1)
        np.testing.assert_allclose(per_layer[k], expected, atol=1e-12, rtol=0)


def test_frozen_gd_is_gd_on_the_learned_features():
    config = models.ModelConfig(n_layers=2, frozen_gd_lr=0.3, embed_dim=5, embed_hidden=8)
    model = models.build(config, d=1, key=2)
    batch = tasks.get("sine", n_ctx=6, n_query=2).sample(jax.random.key(3), 4)
    f_ctx, f_query = jax.jit(lambda b: (model.embed(b.x_ctx), model.embed(b.x_query)))(batch)
    expected = solvers.gd(f_ctx, batch.y_ctx, f_query, lr=0.3, steps=2)
    np.testing.assert_allclose(jax.jit(lambda b: model(b))(batch), expected, atol=1e-12, rtol=0)


def test_frozen_weights_are_not_params_and_stay_fixed_in_training(tmp_path):
    config = models.ModelConfig(frozen_gd_lr=1.0, embed_dim=4, embed_hidden=8)
    model = models.build(config, d=1, key=0)
    params = nnx.state(model, nnx.Param)
    names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(params)}
    assert names and all(name.startswith("embed_") for name in names)  # only the embedding trains
    assert isinstance(model.layers[0].query, Frozen)
    base = experiments.get("tiny")
    exp = dataclasses.replace(
        base, name="frozen", task=tasks.get("sine", n_ctx=5), model=config, compare_against=("gd",),
        train=dataclasses.replace(base.train, steps=40, eval_every=20, ckpt_every=20),
    )
    summary = train.train(exp, tmp_path / "run", progress=False, echo=lambda *_: None)
    _, trained, _ = train.load_params(tmp_path / "run", exp)
    after = train.seed_models(exp, trained)[0]
    for name in ("query", "key", "value", "out"):
        np.testing.assert_array_equal(getattr(after.layers[0], name)[...], getattr(model.layers[0], name)[...])
    initial = train.init_params(exp, 0)
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a[0] - b).max()), trained, initial)
    assert max(jax.tree.leaves(moved)) > 0  # the embedding did train
    assert np.isfinite(summary["model"]["loss"][0])


@pytest.mark.parametrize(
    "kw",
    [dict(attention="softmax"), dict(n_heads=2), dict(key_size=3), dict(mlp=True), dict(token_layout="separate"),
     dict(first_layer_softmax=True, n_layers=2)],
)
def test_frozen_gd_config_errors(kw):
    with pytest.raises(ValueError, match="frozen_gd_lr"):
        models.ModelConfig(frozen_gd_lr=1.0, **kw)
