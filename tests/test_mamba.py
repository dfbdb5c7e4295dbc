"""The mamba family (`icl.models.mamba`): its scans agree in float64, its mixer equals a naive
numpy loop of the selective-SSM recurrence, Mamba's initialisation, and its GD / weighted-GD
constructions equal the learners on every prefix (values and input gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl import models, solvers, tasks
from icl.models import mamba

D = 4


def sequence(key, b=3, t=7, d=D):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))


@pytest.mark.parametrize(("width", "gate", "activation"), [(0, True, "silu"), (8, False, "none")])
def test_scan_forms_agree(width, gate, activation):
    x, y = sequence(jax.random.key(0))
    outs = {}
    for form in mamba.MambaConfig.SCANS:
        model = mamba.MambaConfig(scan=form, n_layers=2, width=width, mlp=True, layernorm=True, init_scale=1.0,
                                  state_size=3, gate=gate, activation=activation, dt_min=0.05, dt_max=0.5).build(D, 5)
        outs[form] = (model.predict_prefixes(x, y), model.predict(x[:, :5], y[:, :5], x[:, 5:]))
    for form, (prefixes, queries) in outs.items():
        np.testing.assert_allclose(prefixes, outs["parallel"][0], rtol=1e-10, atol=1e-12, err_msg=form)
        np.testing.assert_allclose(queries, outs["parallel"][1], rtol=1e-10, atol=1e-12, err_msg=form)


def _silu(v):
    return v / (1.0 + np.exp(-v))


def _naive_prefix_predictions(mixer, x, y, gate):
    """One raw-token block, no LayerNorm, as a loop over tokens in numpy: the query [x_t, 0]
    reads the state of the t pairs before it; the prediction is minus its label slot."""
    w = {name: np.asarray(getattr(mixer, name)[...]) for name in
         ("input_kernel", "delta_kernel", "delta_bias", "b_kernel", "c_kernel", "a_log", "d_skip", "out")}
    w_z = np.asarray(mixer.gate_kernel[...]) if gate else None
    a = -np.exp(w["a_log"])  # [E, N]
    b_, t_, _ = x.shape
    preds = np.zeros((b_, t_))
    for b in range(b_):
        h = np.zeros_like(a)
        for t in range(t_):
            q = np.append(x[b, t], 0.0)
            u_q = _silu(q @ w["input_kernel"])
            y_q = h @ (q @ w["c_kernel"]) + w["d_skip"] * u_q
            if gate:
                y_q = y_q * _silu(q @ w_z)
            preds[b, t] = -(q + y_q @ w["out"])[-1]
            e = np.append(x[b, t], y[b, t])
            delta = np.log1p(np.exp(e @ w["delta_kernel"] + w["delta_bias"]))  # [E]
            u = _silu(e @ w["input_kernel"])
            h = np.exp(delta[:, None] * a) * h + np.outer(delta * u, e @ w["b_kernel"])
    return preds


@pytest.mark.parametrize("gate", [True, False])
def test_mixer_equals_a_naive_numpy_recurrence(gate):
    x, y = sequence(jax.random.key(1))
    for form in mamba.MambaConfig.SCANS:
        model = mamba.MambaConfig(state_size=3, gate=gate, init_scale=1.0, dt_min=0.1, dt_max=1.0, scan=form).build(D, 2)
        want = _naive_prefix_predictions(model.blocks[0].mixer, np.asarray(x), np.asarray(y), gate)
        np.testing.assert_allclose(model.predict_prefixes(x, y), want, rtol=1e-11, atol=1e-13, err_msg=form)


def test_initialisation_is_mambas():
    config = mamba.MambaConfig(state_size=5, expand=3, dt_min=1e-3, dt_max=1e-1)
    mixer = config.build(D, 0).blocks[0].mixer
    e = 3 * (D + 1)
    np.testing.assert_allclose(mixer.a_log[...], np.log(np.broadcast_to(np.arange(1, 6), (e, 5))), rtol=1e-15)
    np.testing.assert_array_equal(mixer.d_skip[...], np.ones(e))
    dt = np.asarray(jax.nn.softplus(mixer.delta_bias[...]))
    assert dt.shape == (e,) and np.all(dt >= 1e-3 * (1 - 1e-12)) and np.all(dt <= 1e-1 * (1 + 1e-12))
    assert mixer.input_kernel[...].shape == (D + 1, e) and mixer.b_kernel[...].shape == (D + 1, 5)
    assert mixer.out[...].shape == (e, D + 1)
    c = np.array([1e-4, 0.3, 2.0, 30.0])
    np.testing.assert_allclose(jax.nn.softplus(mamba.softplus_inverse(jnp.asarray(c))), c, rtol=1e-14)


def test_default_gradients_are_finite_and_the_default_is_small():
    config = mamba.MambaConfig()
    assert (config.n_layers, config.width) == (1, 0)
    model = config.build(3, 0)
    x, y = sequence(jax.random.key(2), d=3)
    graph, params = nnx.split(model, nnx.Param)
    loss = lambda p: jnp.mean((nnx.merge(graph, p).predict_prefixes(x, y) - y) ** 2)
    grads = jax.grad(loss)(params)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert max(float(jnp.max(jnp.abs(g))) for g in leaves) > 0


def test_named_sizes():
    park = mamba.MambaConfig.named("park")
    assert (park.n_layers, park.width, park.state_size, park.expand) == (24, 256, 16, 2)
    assert mamba.MambaConfig.named("cpu", n_layers=1).n_layers == 1
    assert models.get("mamba", **mamba.SIZES["tiny"]) == mamba.MambaConfig.named("tiny")
    with pytest.raises(ValueError, match="mamba: unknown size 'huge'"):
        mamba.MambaConfig.named("huge")


def _naive_weighted_gd(x, y, lr, n_ref, decay):
    xn, yn = np.asarray(x), np.asarray(y)
    want = np.zeros_like(yn)
    for t in range(xn.shape[1]):
        for j in range(t):
            want[:, t] += lr / n_ref * decay ** (t - 1 - j) * yn[:, j] * np.sum(xn[:, j] * xn[:, t], -1)
    return want


def _learner(x, y, lr, n_ref, decay):
    """The construction's learner on every prefix at rate lr t / n_ref: one solvers.gd step
    (decay 1) or solvers.weighted_gd."""
    if decay == 1:
        return solvers.fixed_scale_prefixes(solvers.gd, x, y, lr, n_ref, steps=1)
    return solvers.fixed_scale_prefixes(solvers.weighted_gd, x, y, lr, n_ref, decay=decay)


@pytest.mark.parametrize("form", mamba.MambaConfig.SCANS)
@pytest.mark.parametrize("decay", [1.0, 0.8])
def test_gd_construction_is_one_gd_step_on_every_prefix(form, decay):
    """decay 1: solvers.gd (one step, rate lr t / n_ref); decay < 1: solvers.weighted_gd; both
    also against a naive loop over prefixes and pairs; values and input gradients."""
    x, y = sequence(jax.random.key(3))
    lr, n_ref = 0.7, 6
    model = mamba.gd_model(D, lr=lr, n_ref=n_ref, decay=decay, scan=form)
    got = model.predict_prefixes(x, y)
    np.testing.assert_allclose(got, _learner(x, y, lr, n_ref, decay), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, _naive_weighted_gd(x, y, lr, n_ref, decay), rtol=0, atol=1e-12)
    if decay == 1:  # the library's plain GD too, not only weighted_gd at decay 1
        want = jnp.stack([jnp.zeros_like(y[:, 0])] + [solvers.gd(x[:, :k], y[:, :k], x[:, k], lr=lr * k / n_ref)
                                                      for k in range(1, x.shape[1])], axis=1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    grads = [jax.grad(lambda x_, f=f: jnp.sum(jnp.sin(f(x_, y))))(x)
             for f in (model.predict_prefixes, lambda x_, y_: _learner(x_, y_, lr, n_ref, decay))]
    assert bool(jnp.all(jnp.isfinite(grads[0])))
    np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-12)
    # the query interface: every query against the whole context is the GD step on it
    queries = model.predict(x[:, :5], y[:, :5], x[:, 5:])
    np.testing.assert_allclose(queries, solvers.weighted_gd(x[:, :5], y[:, :5], x[:, 5:], lr=lr * 5 / n_ref, decay=decay),
                               rtol=0, atol=1e-12)


def test_construction_weights():
    mixer = mamba.gd_model(3, lr=0.5, n_ref=5, decay=0.9).blocks[0].mixer
    assert mixer.gate_kernel is None and mixer.config.activation == "none"
    np.testing.assert_allclose(jax.nn.softplus(mixer.delta_bias[...]), np.full(4, 0.1), rtol=1e-15)
    np.testing.assert_allclose(jnp.exp(0.1 * -jnp.exp(mixer.a_log[...])), np.full((4, 3), 0.9), rtol=1e-15)
    assert bool(jnp.all(jnp.isneginf(mamba.gd_model(3, lr=0.5, n_ref=5).blocks[0].mixer.a_log[...])))


def test_verify_errors():
    batch = tasks.get("linear", d=3, n_ctx=5, n_query=2).sample(jax.random.key(4), 8)
    errors = mamba.verify_errors(batch)
    assert set(errors) == {"mamba_gd_max_abs_err", "mamba_weighted_gd_max_abs_err"}
    assert all(0 <= v <= 1e-12 for v in errors.values())


def test_config_errors_are_one_line():
    bad = [
        (dict(activation="relu"), "mamba: activation must be one of silu, none"),
        (dict(gate="yes"), "mamba: gate must be true or false"),
        (dict(state_size=0), "mamba: state_size must be an integer >= 1"),
        (dict(expand=1.5), "mamba: expand must be an integer >= 1"),
        (dict(dt_min=0.0), "mamba: dt_min must be a finite number > 0"),
        (dict(dt_max=float("inf")), "mamba: dt_max must be a finite number > 0"),
        (dict(dt_min=0.2, dt_max=0.1), "mamba: dt_min must be <= dt_max"),
        (dict(scan="masked"), "mamba: scan must be one of parallel, sequential"),
        (dict(n_layers=0), "mamba: n_layers must be an integer >= 1"),
        (dict(init_scale=-1.0), "mamba: init_scale must be a finite number > 0"),
    ]
    for fields, message in bad:
        with pytest.raises(ValueError, match=message) as info:
            mamba.MambaConfig(**fields)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="mamba.gd_model: decay must be in"):
        mamba.gd_model(D, lr=0.1, n_ref=4, decay=0.0)
    with pytest.raises(ValueError, match="mamba.gd_model: lr must be a finite number > 0"):
        mamba.gd_model(D, lr=-0.1, n_ref=4)
    with pytest.raises(ValueError, match="mamba.gd_model: n_ref must be an integer >= 1"):
        mamba.gd_model(D, lr=0.1, n_ref=0)
