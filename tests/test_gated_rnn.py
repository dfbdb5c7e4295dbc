"""The gated linear RNN family (`icl.models.gated_rnn`, Zucchet et al. 2023), in float64: its scans
agree; one layer equals a naive loop of its equations; converted from linear attention (gate
"none", or a constant decay) it computes the same model; its GD construction is one GD step (and
with a decay one weighted GD step) on every prefix, values and input gradients; bad configs fail
with one line."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import models, solvers, tasks
from icl.models import gated_rnn as gr, linear_attention as la

D = 4


def sequence(key, b=3, t=7, d=D):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))


def both_modes(model, x, y):
    """(predict_prefixes, predict with the first 5 pairs as context and the rest as queries)."""
    return model.predict_prefixes(x, y), model.predict(x[:, :5], y[:, :5], x[:, 5:])


@pytest.mark.parametrize("width", [0, 8])
def test_scan_forms_agree(width):
    x, y = sequence(jax.random.key(0))
    outs = {form: both_modes(gr.GatedRNNConfig(scan=form, n_layers=2, width=width, mlp=True, layernorm=True,
                                               state_size=12, init_scale=1.0, decay=(0.5, 0.99)).build(D, 3), x, y)
            for form in gr.GatedRNNConfig.SCANS}
    assert set(outs) == {"parallel", "sequential"}
    for form, (prefixes, queries) in outs.items():
        assert float(jnp.max(jnp.abs(prefixes))) > 1e-3  # not trivially zero
        np.testing.assert_allclose(prefixes, outs["parallel"][0], rtol=1e-10, atol=1e-12, err_msg=form)
        np.testing.assert_allclose(queries, outs["parallel"][1], rtol=1e-10, atol=1e-12, err_msg=form)


def test_one_layer_is_a_naive_loop_of_its_equations():
    """s_i = lambda s_{i-1} + (e W_a) * (e W_b); out = ((e W_c) * s) W_o; a query reads the state
    of the context before it."""
    mixer = gr.GatedRNNConfig(state_size=5, init_scale=1.0, decay=(0.3, 0.9)).mixer(D, nnx.Rngs(params=1))
    ctx = jax.random.normal(jax.random.key(2), (2, 6, D))
    query = jax.random.normal(jax.random.key(3), (2, 3, D))
    seen = jnp.array([0, 2, 6])
    got_ctx, got_query = mixer(ctx, query, seen)
    w_a, w_b, w_c, w_o = (np.asarray(v[...]) for v in (mixer.gate_a, mixer.gate_b, mixer.gate_c, mixer.out))
    lam = np.exp(-np.exp(np.asarray(mixer.log_rate[...])))
    assert np.all((0.3 <= lam) & (lam <= 0.9))
    e = np.asarray(ctx)
    s, states = np.zeros((2, 5)), [np.zeros((2, 5))]
    for i in range(6):
        s = lam * s + (e[:, i] @ w_a) * (e[:, i] @ w_b)
        states.append(s)
    want_ctx = np.stack([((e[:, i] @ w_c) * states[i + 1]) @ w_o for i in range(6)], 1)
    q = np.asarray(query)
    want_query = np.stack([((q[:, m] @ w_c) * states[int(n)]) @ w_o for m, n in enumerate(seen)], 1)
    np.testing.assert_allclose(got_ctx, want_ctx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_query, want_query, rtol=1e-12, atol=1e-13)


def _random_linear_attention(gate, width=0, shared=False):
    model = la.LinearAttentionConfig(gate=gate, n_layers=2, n_heads=2, key_size=3, mlp=True, layernorm=True,
                                     width=width, shared=shared, init_scale=1.0).build(D, 7)
    if gate == "constant":  # gamma = (0.8, 0.55) per head, in every block
        for block in model.blocks:
            block.mixer.decay_logit[...] = jnp.log(jnp.array([0.8, 0.55]) / (1 - jnp.array([0.8, 0.55])))
    return model


@pytest.mark.parametrize(("gate", "width", "shared"), [("none", 0, False), ("none", 6, False), ("none", 0, True),
                                                       ("constant", 0, False)])
def test_converted_linear_attention_computes_the_same_model(gate, width, shared):
    """Every block converted (S = H k k = 18 units); with gate "constant" lambda = each head's gamma."""
    source = _random_linear_attention(gate, width, shared)
    converted = gr.from_linear_attention_model(source)
    assert converted.config.state_size == 2 * 3 * 3 and converted.config.shared == shared
    lam = converted.blocks[0].mixer.decay()
    np.testing.assert_allclose(lam.reshape(2, 9), jnp.broadcast_to(
        jnp.array([[1.0], [1.0]]) if gate == "none" else jnp.array([[0.8], [0.55]]), (2, 9)), rtol=1e-14)
    x, y = sequence(jax.random.key(4))
    for got, want in zip(both_modes(converted, x, y), both_modes(source, x, y), strict=True):
        assert float(jnp.max(jnp.abs(want))) > 1e-2
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(converted.layer_prefix_predictions(x, y), source.layer_prefix_predictions(x, y),
                               rtol=1e-10, atol=1e-12)


def test_one_converted_layer_equals_the_attention_layer():
    source = _random_linear_attention("none").blocks[0].mixer
    target = gr.from_linear_attention(source)
    assert isinstance(target, gr.GatedRNN) and target.config.scan == "parallel"
    ctx = jax.random.normal(jax.random.key(5), (2, 6, D + 1))  # raw tokens: width d + 1
    query = jax.random.normal(jax.random.key(6), (2, 3, D + 1))
    seen = jnp.array([0, 4, 6])
    for got, want in zip(target(ctx, query, seen), source(ctx, query, seen), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    masked = la.LinearAttentionConfig(n_heads=2, key_size=3, scan="masked").build(D, 0).blocks[0].mixer
    assert gr.from_linear_attention(masked).config.scan == "parallel"  # the masked form has no scan here
    assert gr.from_linear_attention(masked, scan="sequential").config.scan == "sequential"


def test_an_input_dependent_gate_is_refused():
    source = la.LinearAttentionConfig(gate="input").build(D, 0)
    with pytest.raises(ValueError, match="gated_rnn.from_linear_attention: gate must be 'none' or 'constant'"):
        gr.from_linear_attention(source.blocks[0].mixer)
    with pytest.raises(ValueError, match="gate must be 'none' or 'constant'"):
        gr.from_linear_attention_model(source)
    with pytest.raises(ValueError, match="expected a linear_attention model"):
        gr.from_linear_attention_model(gr.GatedRNNConfig().build(D, 0))


def _gd_per_prefix(x, y, lr, n_ref):
    return jnp.stack([jnp.zeros_like(y[:, 0])] + [
        solvers.gd(x[:, :t], y[:, :t], x[:, t], lr=lr * t / n_ref, steps=1) for t in range(1, x.shape[1])], axis=1)


@pytest.mark.parametrize("form", gr.GatedRNNConfig.SCANS)
def test_gd_construction_is_one_gd_step_on_every_prefix(form):
    x, y = sequence(jax.random.key(8))
    lr, n_ref = 0.7, 6
    model = gr.gd_model(D, lr=lr, n_ref=n_ref, scan=form)
    assert model.blocks[0].mixer.gate_a.shape == (D + 1, D)  # S = d units
    want = _gd_per_prefix(x, y, lr, n_ref)
    np.testing.assert_allclose(model.predict_prefixes(x, y), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ref, steps=1), want, rtol=0, atol=1e-14)
    grads = [jax.grad(lambda x_, f=f: jnp.sum(jnp.sin(f(x_, y))))(x)
             for f in (model.predict_prefixes, lambda x_, y_: _gd_per_prefix(x_, y_, lr, n_ref))]
    assert float(jnp.max(jnp.abs(grads[1]))) > 1e-2
    np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-12)
    # a naive loop: y_hat_t = (lr / n_ref) sum_{i < t} y_i (x_i . x_t)
    xn, yn = np.asarray(x), np.asarray(y)
    naive = np.zeros_like(yn)
    for t in range(x.shape[1]):
        for i in range(t):
            naive[:, t] += lr / n_ref * yn[:, i] * np.sum(xn[:, i] * xn[:, t], -1)
    np.testing.assert_allclose(model.predict_prefixes(x, y), naive, rtol=0, atol=1e-12)
    # the query interface: every query is one GD step on the whole context at rate lr N / n_ref
    np.testing.assert_allclose(model.predict(x[:, :5], y[:, :5], x[:, 5:]),
                               solvers.gd(x[:, :5], y[:, :5], x[:, 5:], lr=lr * 5 / n_ref, steps=1), rtol=0, atol=1e-12)


def test_gd_construction_is_the_compact_conversion_of_linear_attentions():
    x, y = sequence(jax.random.key(9))
    for decay in (1.0, 0.7):
        converted = gr.from_linear_attention_model(la.gd_model(D, lr=0.5, n_ref=6, decay=decay))
        assert converted.config.state_size == (D + 1) ** 2
        np.testing.assert_allclose(gr.gd_model(D, lr=0.5, n_ref=6, decay=decay).predict_prefixes(x, y),
                                   converted.predict_prefixes(x, y), rtol=0, atol=1e-12)


def test_decayed_gd_construction_is_exponentially_weighted_gd():
    x, y = sequence(jax.random.key(10))
    gamma, lr, n_ref = 0.8, 0.5, 6
    got = gr.gd_model(D, lr=lr, n_ref=n_ref, decay=gamma).predict_prefixes(x, y)
    want = jnp.stack([jnp.zeros_like(y[:, 0])] + [
        solvers.weighted_gd(x[:, :t], y[:, :t], x[:, t], lr=lr * t / n_ref, decay=gamma) for t in range(1, 7)], 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_gradients_are_finite_for_trained_and_constructed_weights():
    """The default config and the construction (nu = -inf: lambda = 1, d lambda / d nu = 0)."""
    x, y = sequence(jax.random.key(11))
    for model in (gr.GatedRNNConfig().build(D, 0), gr.gd_model(D, lr=0.5, n_ref=6)):
        graphdef, params = nnx.split(model, nnx.Param)
        loss = lambda p, g=graphdef: jnp.mean((nnx.merge(g, p).predict_prefixes(x, y) - y) ** 2)
        grads = jax.grad(loss)(params)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_verify_errors_on_every_prefix():
    batch = tasks.get("linear", d=D, n_ctx=6, n_query=3).sample(jax.random.key(12), 16)
    errors = gr.verify_errors(batch)
    assert set(errors) == {"gated_rnn_gd_max_abs_err"} and errors["gated_rnn_gd_max_abs_err"] < 1e-12


def test_sizes_and_defaults():
    default = gr.GatedRNNConfig()
    assert (default.n_layers, default.width, default.units(D + 1)) == (1, 0, (D + 1) ** 2)
    cpu = gr.GatedRNNConfig.named("cpu")
    assert (cpu.n_layers, cpu.width, cpu.mlp, cpu.state_size) == (2, 32, True, 128)
    assert cpu.mixer(32, nnx.Rngs(params=0)).gate_a.shape == (32, 128)
    assert gr.GatedRNNConfig.named("zucchet", state_size=10).state_size == 10
    assert models.family("gated_rnn") is gr.GatedRNNConfig
    assert dataclasses.replace(default, decay=[0.5, 0.6]).decay == (0.5, 0.6)


@pytest.mark.parametrize(("fields", "message"), [
    (dict(state_size=-1), "gated_rnn: state_size must be an integer >= 0"),
    (dict(state_size=2.5), "gated_rnn: state_size must be an integer >= 0"),
    (dict(decay=(0.5, 1.0)), r"gated_rnn: decay must be a pair \(low, high\) with 0 < low <= high < 1"),
    (dict(decay=(0.9, 0.5)), "gated_rnn: decay must be a pair"),
    (dict(decay=(0.0, 0.5)), "gated_rnn: decay must be a pair"),
    (dict(decay=0.9), "gated_rnn: decay must be a pair"),
    (dict(decay=(0.5, float("nan"))), "gated_rnn: decay must be a pair"),
    (dict(scan="masked"), "gated_rnn: scan must be one of parallel, sequential"),
    (dict(n_layers=0), "gated_rnn: n_layers must be an integer >= 1"),
    (dict(init_scale=0.0), "gated_rnn: init_scale must be a finite number > 0"),
])
def test_config_errors_are_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as error:
        gr.GatedRNNConfig(**fields)
    assert "\n" not in str(error.value)


def test_other_errors_are_one_line():
    with pytest.raises(ValueError, match="gated_rnn: unknown size 'huge'"):
        gr.GatedRNNConfig.named("huge")
    with pytest.raises(ValueError, match="gated_rnn.gd_model: decay must be in"):
        gr.gd_model(D, lr=0.1, n_ref=4, decay=1.5)
    with pytest.raises(ValueError, match="gated_rnn.gd_model: n_ref must be an integer >= 1"):
        gr.gd_model(D, lr=0.1, n_ref=0)
    with pytest.raises(ValueError, match="expected a linear_attention.LinearAttention"):
        gr.from_linear_attention(gr.GatedRNNConfig().mixer(D, nnx.Rngs(params=0)))
