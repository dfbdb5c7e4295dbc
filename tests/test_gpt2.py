"""The GPT-2-style family (`icl.models.gpt2`): its forward pass against an independent NumPy
float64 implementation (explicit per-token attention loops), causality through gradients and
perturbations, one-pass query prediction against one sequence per query (float64, 1e-10), the
looped variant (one loop = the plain model, loop j = j applications, truncated gradients two
ways), GPT-2's initialisation statistics, the parameter count (9,534,977 for Garg et al.'s model at
d = 20), the loop curriculum and the one-line errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from icl.models.gpt2 import GPT2, SIZES, GPT2Config, loop_curriculum
from icl.tasks.base import Batch

D, P = 3, 8  # input dimension, n_positions of the test models
TINY = GPT2Config.named("tiny", n_positions=P)
LOOPED = GPT2Config.named("tiny", n_positions=P, n_layers=1, loops=3)


def data(key, b=2, t=5, m=0, d=D):
    kx, ky, kq = jax.random.split(jax.random.key(key), 3)
    x, y = jax.random.normal(kx, (b, t, d)), jax.random.normal(ky, (b, t))
    return (x, y, jax.random.normal(kq, (b, m, d))) if m else (x, y)


def params(model: GPT2) -> dict:
    """The model's parameters as nested dicts of float64 NumPy arrays."""
    return jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.to_pure_dict(nnx.state(model, nnx.Param)))


# --- an independent float64 reference --------------------------------------------------------

def ref_layernorm(h, p):
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def ref_gelu(u):
    return 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def ref_block(h, allowed, p, n_heads):
    """h [S, W] of one sequence through the layers and the final LayerNorm; token s attends to
    the tokens t with allowed[s, t], written as loops over heads and tokens."""
    s_len, w = h.shape
    k = w // n_heads
    for lp in p["layers"].values():
        u = ref_layernorm(h, lp["ln_1"])
        qkv = u @ lp["qkv_kernel"] + lp["qkv_bias"]
        q, kk, v = qkv[:, :w], qkv[:, w:2 * w], qkv[:, 2 * w:]
        heads = np.zeros((s_len, w))
        for hd in range(n_heads):
            cols = slice(hd * k, (hd + 1) * k)
            for s in range(s_len):
                seen = np.flatnonzero(allowed[s])
                logits = np.array([q[s, cols] @ kk[t, cols] for t in seen]) / math.sqrt(k)
                weights = np.exp(logits - logits.max())
                weights /= weights.sum()
                heads[s, cols] = weights @ v[seen, cols]
        h = h + heads @ lp["proj_kernel"] + lp["proj_bias"]
        hidden = ref_gelu(ref_layernorm(h, lp["ln_2"]) @ lp["fc_kernel"] + lp["fc_bias"])
        h = h + hidden @ lp["out_kernel"] + lp["out_bias"]
    return ref_layernorm(h, p["ln_f"])


def ref_prefixes(model: GPT2, x, y, n_loops=1) -> np.ndarray:
    """[B, T] by the formulas of the module docstring, one sequence at a time."""
    p, heads = params(model), model.config.n_heads
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    b, t, d = x.shape
    out = np.zeros((b, t))
    for i in range(b):
        tokens = np.zeros((2 * t, d))
        tokens[0::2] = x[i]
        tokens[1::2, 0] = y[i]
        e = tokens @ p["read_in_kernel"] + p["read_in_bias"] + p["positions"][: 2 * t]
        allowed = np.tril(np.ones((2 * t, 2 * t), bool))
        h = np.zeros_like(e)
        for _ in range(n_loops):
            h = ref_block(h + e, allowed, p, heads)
        out[i] = (h @ p["read_out_kernel"] + p["read_out_bias"])[0::2]
    return out


def test_forward_matches_an_independent_float64_implementation():
    model = TINY.build(D, 1)
    x, y = data(0)
    np.testing.assert_allclose(model.predict_prefixes(x, y), ref_prefixes(model, x, y), rtol=1e-12, atol=1e-12)


def test_looped_forward_matches_the_reference_loop_by_loop():
    """h_j = LN_f(Block(h_{j-1} + e)), h_0 = 0: loop_predictions[j - 1] against j reference loops,
    and predict_prefixes at the configured and at overridden loop counts."""
    model = LOOPED.build(D, 2)
    x, y = data(1)
    loops = model.loop_predictions(x, y, 5)
    assert loops.shape == (5, 2, 5)
    for j in (1, 2, 5):
        np.testing.assert_allclose(loops[j - 1], ref_prefixes(model, x, y, n_loops=j), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(model.predict_prefixes(x, y), loops[2], rtol=1e-12, atol=1e-14)  # config.loops = 3
    np.testing.assert_allclose(model.predict_prefixes(x, y, n_loops=5), loops[4], rtol=1e-12, atol=1e-14)
    assert np.abs(np.asarray(loops[4] - loops[2])).max() > 1e-6  # more loops, another function


def test_one_loop_is_the_plain_model():
    """A looped config with the plain config's fields builds the same parameters from the same
    key, and its one-loop prediction is the plain model's."""
    plain = GPT2Config.named("tiny", n_positions=P).build(D, 5)
    looped = GPT2Config.named("tiny", n_positions=P, loops=4).build(D, 5)
    x, y = data(2)
    np.testing.assert_array_equal(looped.predict_prefixes(x, y, n_loops=1), plain.predict_prefixes(x, y))


@pytest.mark.parametrize("config", [TINY, LOOPED], ids=["plain", "looped"])
def test_prefix_predictions_never_read_the_present_label_or_the_future(config):
    """d yhat_t / d y_s = 0 for s >= t and d yhat_t / d x_s = 0 for s > t (every entry exactly 0),
    while the past is read (non-zero entries); perturbing positions >= t leaves yhat_<t unchanged
    to the bit, and the predictions on a prefix are those of the full sequence."""
    model = config.build(D, 3)
    x, y = data(3, b=1, t=6)
    jac_y = np.asarray(jax.jacobian(lambda y_: model.predict_prefixes(x, y_)[0])(y)[:, 0])  # [T, T]
    jac_x = np.asarray(jax.jacobian(lambda x_: model.predict_prefixes(x_, y)[0])(x)[:, 0])  # [T, T, d]
    t = x.shape[1]
    past_y = np.tril(np.ones((t, t), bool), -1)
    upto_x = np.tril(np.ones((t, t), bool))
    assert np.all(jac_y[~past_y] == 0) and np.all(jac_x[~upto_x] == 0)
    assert np.all(np.abs(jac_y[past_y]) > 0) and np.all(np.abs(jac_x[upto_x].sum(-1)) > 0)
    full = model.predict_prefixes(x, y)
    for cut in (2, 4):
        moved = model.predict_prefixes(x.at[:, cut:].add(5.0), y.at[:, cut - 1:].add(-7.0))
        np.testing.assert_array_equal(moved[:, :cut], full[:, :cut])
        np.testing.assert_allclose(model.predict_prefixes(x[:, :cut], y[:, :cut]), full[:, :cut], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("config", [TINY, LOOPED], ids=["plain", "looped"])
def test_queries_in_one_pass_equal_one_sequence_per_query(config):
    """predict's query m (position 2N, attending to the context and itself) equals
    predict_prefixes on (x_1, y_1, ..., x_N, y_N, xq_m) at position N + 1, to 1e-10 in float64;
    other queries do not matter; Batch and [B, d] forms agree."""
    model = config.build(D, 4)
    n, m = P - 1, 4  # the longest context a query still fits
    x_ctx, y_ctx, x_query = data(4, b=3, t=n, m=m)
    y_hat = model.predict(x_ctx, y_ctx, x_query)
    assert y_hat.shape == (3, m)
    for j in range(m):
        alone = model.predict_prefixes(jnp.concatenate([x_ctx, x_query[:, j:j + 1]], 1),
                                       jnp.concatenate([y_ctx, jnp.zeros((3, 1))], 1))[:, -1]
        np.testing.assert_allclose(y_hat[:, j], alone, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.predict(x_ctx, y_ctx, x_query[:, 2]), y_hat[:, 2], rtol=0, atol=1e-10)
    batch = Batch(x_ctx=x_ctx, y_ctx=y_ctx, x_query=x_query, y_query=jnp.zeros((3, m)))
    np.testing.assert_array_equal(model(batch), y_hat)


def test_jit_agrees_with_eager_and_float32_runs():
    model = TINY.build(D, 6)
    x, y, xq = data(5, m=2)
    graphdef, state = nnx.split(model)
    jitted = jax.jit(lambda s, x_, y_: nnx.merge(graphdef, s).predict_prefixes(x_, y_))
    np.testing.assert_allclose(jitted(state, x, y), model.predict_prefixes(x, y), rtol=1e-12, atol=1e-14)
    jq = jax.jit(lambda s, a, b_, c: nnx.merge(graphdef, s).predict(a, b_, c))
    np.testing.assert_allclose(jq(state, x, y, xq), model.predict(x, y, xq), rtol=1e-12, atol=1e-14)
    state32 = jax.tree.map(lambda v: v.astype(jnp.float32), state)
    y32 = jitted(state32, x.astype(jnp.float32), y.astype(jnp.float32))
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(y32, model.predict_prefixes(x, y), rtol=1e-4, atol=1e-5)


def test_truncated_loop_gradients_two_ways():
    """Yang et al.'s loss over the last w of b loops, the first b - w without gradient: the traced
    while-loop form (`loop_window_predictions`, b from a traced curriculum under jit, compiled
    once for every b) and the static stop_gradient form (`loop_predictions(grad_window=w)`) give
    the same values and parameter gradients; with b > w they differ from full backpropagation,
    with b = w they equal it; entries past b are marked invalid."""
    model = LOOPED.build(D, 7)
    x, y = data(6)
    w = 2
    traces = []

    def window_loss(mod, b):
        traces.append(1)
        preds, valid = mod.loop_window_predictions(x, y, b, w)
        return jnp.sum(jnp.square(preds) * valid[:, None, None]), preds

    def static_loss(mod, b, grad_window):
        preds = mod.loop_predictions(x, y, b, grad_window=grad_window)[-w:]
        return jnp.sum(jnp.square(preds)), preds

    grad_window = nnx.jit(nnx.value_and_grad(window_loss, has_aux=True))
    grad_static = nnx.jit(nnx.value_and_grad(static_loss, has_aux=True), static_argnums=(1, 2))
    for b in (5, 2):
        (loss, preds), g = grad_window(model, jnp.int32(b))
        (loss_s, preds_s), g_s = grad_static(model, b, w)
        (_, _), g_full = grad_static(model, b, None)
        np.testing.assert_allclose(preds, preds_s, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(loss, loss_s, rtol=1e-12)
        jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-12), g, g_s)
        gap = max(float(jnp.abs(a - c).max()) for a, c in zip(jax.tree.leaves(g_s), jax.tree.leaves(g_full), strict=True))
        assert (gap > 1e-6) if b > w else (gap < 1e-12)
    assert len(traces) == 1
    preds, valid = model.loop_window_predictions(x, y, 1, 3)
    np.testing.assert_array_equal(valid, [True, False, False])
    np.testing.assert_allclose(preds[0], model.predict_prefixes(x, y, n_loops=1), rtol=1e-12, atol=1e-14)


def test_gpt2_initialisation():
    """N(0, 0.02^2) weights, N(0, 0.02^2 / (2L)) residual projections, zero biases, LayerNorms
    at identity; read-in / read-out U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's nn.Linear).
    Sample stds within 3 % (about 6 standard errors at these sizes)."""
    config = GPT2Config(n_layers=4, width=128, n_heads=4)
    p = params(config.build(20, 8))
    std, res = 0.02, 0.02 / math.sqrt(8)
    layers = list(p["layers"].values())
    for name, want in (("qkv_kernel", std), ("fc_kernel", std), ("proj_kernel", res), ("out_kernel", res)):
        got = np.std(np.concatenate([lp[name].ravel() for lp in layers]))
        assert abs(got / want - 1) < 0.03, (name, got, want)
    assert abs(np.std(p["positions"]) / std - 1) < 0.03
    for lp in layers:
        for name in ("qkv_bias", "proj_bias", "fc_bias", "out_bias"):
            assert np.all(lp[name] == 0)
        for ln in ("ln_1", "ln_2"):
            assert np.all(lp[ln]["scale"] == 1) and np.all(lp[ln]["bias"] == 0)
    for name, fan_in in (("read_in_kernel", 20), ("read_out_kernel", 128)):
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(p[name]).max() <= bound
        assert abs(np.std(p[name]) / (bound / math.sqrt(3)) - 1) < 0.08


def test_parameter_counts():
    """Garg et al.'s model at d = 20: 9,534,977 parameters, by hand: read-in 21*256, positions
    202*256, 12 layers of 12*256^2 + 13*256, final LayerNorm 512, read-out 257; and
    `param_count` equals the built models' counts."""
    by_hand = 21 * 256 + 202 * 256 + 12 * (12 * 256 ** 2 + 13 * 256) + 512 + 257
    assert by_hand == 9_534_977 == GPT2Config.named("garg").param_count(20)
    for config, d in ((GPT2Config.named("garg"), 20), (TINY, 3), (LOOPED, 5), (GPT2Config(mlp_ratio=3, width=12, n_heads=3), 2)):
        model = config.build(d, 0)
        counted = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
        assert counted == config.param_count(d)


def test_named_sizes_and_overrides():
    assert GPT2Config.named("garg") == GPT2Config(n_layers=12, width=256, n_heads=8, n_positions=101)
    assert GPT2Config.named("tiny", loops=2).loops == 2
    assert set(SIZES) >= {"garg", "small", "tiny"}
    assert GPT2Config.family == "gpt2" and set(GPT2Config().objectives()) == {"causal", "query"}
    assert GPT2Config.named("looped").param_count(20) < 0.1 * GPT2Config.named("garg").param_count(20)


@pytest.mark.parametrize(("fields", "message"), [
    (dict(width=30, n_heads=4), "gpt2: width 30 must be divisible by n_heads 4"),
    (dict(n_layers=0), "gpt2: n_layers must be an integer >= 1"),
    (dict(loops=-1), "gpt2: loops must be an integer >= 0"),
    (dict(init_std=0.0), "gpt2: init_std must be a finite number > 0"),
    (dict(n_positions=2.0), "gpt2: n_positions must be an integer >= 1"),
])
def test_bad_configs_fail_with_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as err:
        GPT2Config(**fields)
    assert "\n" not in str(err.value)


def test_bad_inputs_fail_with_one_line():
    plain, looped = TINY.build(D, 0), LOOPED.build(D, 0)
    cases = [
        (lambda: plain.predict_prefixes(*data(0, t=P + 1)), "T = 9 .* exceeds n_positions = 8"),
        (lambda: plain.predict(*data(0, t=P, m=1)), "N = 8 context pairs and a query need N \\+ 1 <= n_positions = 8"),
        (lambda: plain.predict_prefixes(*data(0), n_loops=2), "n_loops needs a looped config"),
        (lambda: looped.loop_predictions(*data(0), 0), "n_loops must be an integer >= 1"),
        (lambda: plain.predict_prefixes(*data(0, d=D + 1)), "x must be \\[batch, T >= 1, d = 3\\]"),
        (lambda: plain.predict_prefixes(data(0)[0], jnp.zeros((2, 4))), "y must be \\[batch, T\\]"),
        (lambda: GPT2Config.named("huge"), "unknown size 'huge'"),
        (lambda: TINY.build(0), "d must be an integer >= 1"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_loop_curriculum_schedule():
    """b = min(start + inc * floor(step / every), max), window = min(window, b): against a table,
    under jit with a traced step, and Yang et al.'s linear-regression run (15 -> 30, window 15)."""
    table = {0: 20, 499: 20, 500: 22, 999: 22, 1000: 24, 10_000: 60, 82_499: 348, 82_500: 350, 10 ** 9: 350}
    jitted = jax.jit(loop_curriculum)
    for step, b in table.items():
        for got in (loop_curriculum(step), jitted(jnp.int32(step))):
            assert (int(got[0]), int(got[1])) == (b, 20) and got[0].dtype == jnp.int32
    small = dict(start=3, increment=2, every=10, max_loops=8, window=4)
    assert [tuple(map(int, loop_curriculum(s, **small))) for s in (0, 9, 10, 20, 30, 99)] == [
        (3, 3), (3, 3), (5, 4), (7, 4), (8, 4), (8, 4)]
    assert tuple(map(int, loop_curriculum(7_500, start=15, max_loops=30, window=15))) == (30, 15)
    with pytest.raises(ValueError, match="loop_curriculum: start 40 must be <= max_loops 30"):
        loop_curriculum(0, start=40, max_loops=30)
    with pytest.raises(ValueError, match="loop_curriculum: step must be an integer >= 0"):
        loop_curriculum(-1)
