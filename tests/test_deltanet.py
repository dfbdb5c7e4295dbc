"""The delta-rule family ("deltanet", `icl.models.deltanet`): its chunked (WY representation),
parallel (associative scan over affine maps) and sequential forms agree with each other and with
a naive loop in float64; its construction is online SGD (`solvers.online_sgd`) on every prefix,
values and input gradients; config validation and named sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import models, solvers, tasks
from icl.models import deltanet as dn

D = 4


def sequence(key, b=3, t=7, d=D, scale=1.0):
    kx, ky = jax.random.split(key)
    return scale * jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))


def numpy_delta_rule(k, v, beta):
    """S_i = S_{i-1} - beta_i (S_{i-1} k_i - v_i) k_i^T, one task, head and token at a time."""
    k, v, beta = (np.asarray(a) for a in (k, v, beta))
    b, t, h, n = k.shape
    states = np.zeros((b, t, h, n, n))
    for task in range(b):
        for head in range(h):
            state = np.zeros((n, n))
            for i in range(t):
                key, value = k[task, i, head], v[task, i, head]
                state = state - beta[task, i, head] * np.outer(state @ key - value, key)
                states[task, i, head] = state
    return states


@pytest.mark.parametrize("chunk", [1, 3, 4, 10, 16])
def test_state_forms_equal_a_numpy_loop(chunk):
    """Every form's S_1..S_T against the rule as written; T = 10 is padded for chunks 3, 4 and 16."""
    keys = jax.random.split(jax.random.key(0), 3)
    k = dn.l2_normalize(jax.random.normal(keys[0], (2, 10, 2, 3)))
    v = jax.random.normal(keys[1], (2, 10, 2, 3))
    beta = jax.random.uniform(keys[2], (2, 10, 2), minval=0.1, maxval=1.9)
    want = numpy_delta_rule(k, v, beta)
    for form in dn.SCANS:
        np.testing.assert_allclose(dn.delta_states(k, v, beta, form, chunk), want, rtol=1e-12, atol=1e-13, err_msg=form)
    with pytest.raises(ValueError, match="deltanet: scan must be one of"):
        dn.delta_states(k, v, beta, "fft")


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("beta", dn.BETAS)
def test_model_forms_agree(beta, normalize):
    """A 2-layer, 2-head model with mlp and layernorm: every scan equal to "sequential", on every
    prefix and in query mode (T = 7 with chunks of 3: padding)."""
    x, y = sequence(jax.random.key(2))
    outs = {}
    for form in dn.SCANS:
        model = dn.DeltaNetConfig(scan=form, beta=beta, normalize=normalize, chunk=3, n_layers=2, n_heads=2, key_size=3,
                                  mlp=True, layernorm=True, init_scale=1.0).build(D, 5)
        outs[form] = (model.predict_prefixes(x, y), model.predict(x[:, :5], y[:, :5], x[:, 5:]))
    for form, (prefixes, queries) in outs.items():
        np.testing.assert_allclose(prefixes, outs["sequential"][0], rtol=1e-10, atol=1e-12, err_msg=form)
        np.testing.assert_allclose(queries, outs["sequential"][1], rtol=1e-10, atol=1e-12, err_msg=form)


def _online_sgd_per_prefix(x, y, lr):
    """Position t from `solvers.online_sgd` over x[:, :t], y[:, :t] (0 at t = 0)."""
    return jnp.stack([jnp.zeros_like(y[:, 0])] + [
        solvers.online_sgd(x[:, :t], y[:, :t], x[:, t], lr=lr) for t in range(1, x.shape[1])], axis=1)


@pytest.mark.parametrize("lr", [0.3, 1.5])
@pytest.mark.parametrize("form", dn.SCANS)
def test_construction_is_online_sgd_on_every_prefix(form, lr):
    """Values and d/dx sum(sin(predictions)); lr = 1.5 needs beta_max > 1 (|x|^2 ~ 1 here, so
    both steps are stable)."""
    x, y = sequence(jax.random.key(4), scale=0.5)
    model = dn.online_sgd_model(D, lr=lr, scan=form, chunk=3)
    np.testing.assert_allclose(model.predict_prefixes(x, y), _online_sgd_per_prefix(x, y, lr), rtol=0, atol=1e-10)
    grads = [jax.grad(lambda x_, f=f: jnp.sum(jnp.sin(f(x_, y))))(x)
             for f in (model.predict_prefixes, lambda x_, y_: _online_sgd_per_prefix(x_, y_, lr))]
    np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.predict(x[:, :5], y[:, :5], x[:, 5:]),
                               solvers.online_sgd(x[:, :5], y[:, :5], x[:, 5:], lr=lr), rtol=0, atol=1e-10)


def test_construction_matches_a_naive_numpy_loop():
    x, y = sequence(jax.random.key(5), t=9, scale=0.5)
    lr = 0.7
    got = dn.online_sgd_model(D, lr=lr).predict_prefixes(x, y)
    xn, yn = np.asarray(x), np.asarray(y)
    want = np.zeros_like(yn)
    for task in range(xn.shape[0]):
        w = np.zeros(D)
        for t in range(xn.shape[1]):
            want[task, t] = w @ xn[task, t]
            w = w - lr * (w @ xn[task, t] - yn[task, t]) * xn[task, t]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert dn.online_sgd_model(D, lr=lr).blocks[0].mixer.step_size(x[:, :, :1])[0, 0, 0] == lr  # beta = lr exactly


def test_verify_errors_on_a_linear_task_batch():
    batch = tasks.get("linear", d=3, n_ctx=10, n_query=3).sample(jax.random.key(6), 4)
    errors = dn.verify_errors(batch)
    assert set(errors) == {"delta_rule_online_sgd_max_abs_err"}
    assert errors["delta_rule_online_sgd_max_abs_err"] <= 1e-10
    x, y = batch.sequence()
    np.testing.assert_allclose(dn.online_sgd_on_prefixes(x, y, 0.2), _online_sgd_per_prefix(x, y, 0.2),
                               rtol=0, atol=1e-13)


def test_named_sizes_and_registry():
    assert models.family("deltanet") is dn.DeltaNetConfig
    assert dn.DeltaNetConfig.named("paper").width == 1024
    looped = dn.DeltaNetConfig.named("looped", n_layers=3)
    assert looped.shared and looped.n_layers == 3
    model = models.build(dn.DeltaNetConfig.named("cpu"), D, 0)
    assert len(model.blocks) == 2
    x, y = sequence(jax.random.key(7))
    assert bool(jnp.all(jnp.isfinite(model.predict_prefixes(x, y))))
    looped_model = dn.DeltaNetConfig.named("looped", n_layers=3, width=8, n_heads=2, key_size=4).build(D, 0)
    assert len(looped_model.blocks) == 1 and looped_model.layer_prefix_predictions(x, y).shape == (3, 3, 7)
    with pytest.raises(ValueError, match="deltanet: unknown size 'huge'"):
        dn.DeltaNetConfig.named("huge")


def test_config_errors_are_one_line():
    for fields, message in [
        (dict(beta="learned"), "deltanet: beta must be one of input, constant"),
        (dict(scan="fft"), "deltanet: scan must be one of chunked, parallel, sequential"),
        (dict(chunk=0), "deltanet: chunk must be an integer >= 1"),
        (dict(n_heads=0), "deltanet: n_heads must be an integer >= 1"),
        (dict(key_size=-1), "deltanet: key_size must be an integer >= 0"),
        (dict(normalize=1), "deltanet: normalize must be true or false"),
        (dict(beta_max=0.0), "deltanet: beta_max must be a finite number > 0"),
        (dict(beta_max=float("inf")), "deltanet: beta_max must be a finite number > 0"),
        (dict(n_layers=0), "deltanet: n_layers must be an integer >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            dn.DeltaNetConfig(**fields)
    with pytest.raises(ValueError, match="deltanet.online_sgd_model: lr must be a finite number > 0"):
        dn.online_sgd_model(D, lr=0.0)
    with pytest.raises(ValueError, match="deltanet.online_sgd_model: d must be an integer >= 1"):
        dn.online_sgd_model(0, lr=0.1)
