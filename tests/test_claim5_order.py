"""Numerics of paper_figures/claim5_order.py: context permutations, the order-sensitivity measure,
one-pass online SGD against closed forms, order (in)variance of the learners, and the weight
comparison with the GD construction (float64, see conftest)."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "paper_figures"))

import claim5_order as c5  # noqa: E402
from icl import compare, constructions, models, solvers, tasks  # noqa: E402

D, N = 4, 6


@pytest.fixture
def batch(key):
    return tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5, n_query=2).sample(key, 64)


def test_permutations_move_pairs_together(batch):
    x, y = c5.permute_contexts(jax.random.key(1), batch.x_ctx, batch.y_ctx, 5)  # [R, B, N, d], [R, B, N]
    assert x.shape == (5, 64, N, D) and y.shape == (5, 64, N)
    for r in range(5):
        for b in (0, 17):
            # every permuted pair (x, y) is one of the original pairs, each used once
            orig = np.concatenate([batch.x_ctx[b], batch.y_ctx[b][:, None]], 1)
            perm = np.concatenate([x[r, b], y[r, b][:, None]], 1)
            assert sorted(map(tuple, orig)) == sorted(map(tuple, perm))
    assert not np.allclose(x[0], x[1])  # independent orders
    with pytest.raises(ValueError, match="n_perms"):
        c5.permute_contexts(jax.random.key(1), batch.x_ctx, batch.y_ctx, 1)


def test_order_sensitivity_closed_form():
    # 2 tasks, 1 query; unpermuted predictions 1, 3 (std over tasks 1); orders give +-0.5 around them
    p0 = np.array([[1.0], [3.0]])
    p = np.array([[[0.5], [3.0]], [[1.5], [3.0]]])  # [R=2, B=2, M=1]
    y = np.array([[1.0], [2.0]])
    out = c5.order_sensitivity(p, p0, y)
    assert out["sensitivity"] == pytest.approx((0.5 + 0.0) / 2 / 1.0)
    assert out["worst"] == pytest.approx(0.5)
    assert out["max_abs"] == pytest.approx(0.5)
    assert out["loss_over_orders"] == pytest.approx(0.5 * np.mean([0.25, 1.0, 0.25, 1.0]))
    assert out["loss_order_averaged"] == pytest.approx(0.5 * np.mean([0.0, 1.0]))
    with pytest.raises(ValueError, match="do not vary"):
        c5.order_sensitivity(p, np.ones((2, 1)))


def test_online_sgd_two_examples_closed_form(batch):
    lr = 0.3
    x, y, xq = batch.x_ctx[:, :2], batch.y_ctx[:, :2], batch.x_query
    w1 = lr * y[:, 0:1] * x[:, 0]  # [B, d]
    w2 = w1 - lr * (jnp.sum(w1 * x[:, 1], -1) - y[:, 1])[:, None] * x[:, 1]
    expected = jnp.einsum("bmd,bd->bm", xq, w2)
    np.testing.assert_allclose(c5.online_sgd(x, y, xq, lr), expected, rtol=1e-12, atol=1e-14)


def test_online_sgd_is_gd_to_first_order(batch):
    """alpha = eta / N: online SGD - GD = O(eta^2); halving eta quarters the gap."""
    gaps = []
    for eta in (0.02, 0.01):
        sgd = c5.online_sgd(batch.x_ctx, batch.y_ctx, batch.x_query, eta / N)
        gd = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=eta, steps=1)
        gaps.append(float(jnp.max(jnp.abs(sgd - gd))))
    assert 3.5 < gaps[0] / gaps[1] < 4.5


def test_gd_and_paired_models_are_order_invariant_sgd_and_positions_are_not(batch):
    x, y = c5.permute_contexts(jax.random.key(2), batch.x_ctx, batch.y_ctx, 4)
    eta = 3.0
    gd = lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta, steps=1)  # noqa: E731
    sgd = lambda xc, yc, xq: c5.online_sgd(xc, yc, xq, eta / N)  # noqa: E731
    lsa = models.build(models.ModelConfig(n_layers=1, init_scale=1.0), D, jax.random.key(3))
    softmax = models.build(models.ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, init_scale=1.0), D,
                           jax.random.key(4))
    separate = models.build(models.ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=N,
                                               init_scale=1.0), D, jax.random.key(5))

    def sens(f):
        p0 = f(batch.x_ctx, batch.y_ctx, batch.x_query)
        return c5.order_sensitivity(np.asarray(c5.predict_orders(f, x, y, batch.x_query)), np.asarray(p0))

    for f in (gd, lsa.predict, softmax.predict):
        assert sens(f)["max_abs"] < 1e-12  # symmetric in the context pairs up to float64 roundoff
    assert sens(sgd)["sensitivity"] > 1e-3
    assert sens(separate.predict)["sensitivity"] > 1e-3  # the positional code lets it see order


def _gauge(model, c):
    """The same layer with (A, B) -> (cA, B/c), through W_q -> c W_q, W_o -> W_o / c."""
    layer = model.layers[0]
    layer.query[...] = c * layer.query[...]
    layer.out[...] = layer.out[...] / c
    return model


@pytest.mark.parametrize("c", [1.0, 7.5, -0.2])
def test_construction_resembles_itself_in_any_gauge(c):
    eta = 2.0
    target = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    w = c5.weight_resemblance(_gauge(constructions.gd_model(D, N, eta, dtype=jnp.float64), c), target, N)
    for k in ("cos_A", "cos_B", "cos_A_xx", "cos_B_label_row", "cos_B_readout_col"):
        assert w[k] == pytest.approx(1.0, abs=1e-12)
    for k in ("zero_frac_A", "zero_frac_B", "zero_frac_A_relevant", "zero_frac_B_irrelevant"):
        assert w[k] == pytest.approx(0.0, abs=1e-12)
    assert w["eta_eff"] == pytest.approx(eta, rel=1e-12)
    assert w["c"] == pytest.approx(1.0 / c, rel=1e-12)


def test_irrelevant_blocks_change_weights_not_predictions(batch, key):
    """Weight in the blocks a 1-layer read-out cannot see (A's query-label row, B's x columns):
    the predictions stay those of GD exactly, the weight cosines drop."""
    eta = 2.0
    target = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    model = constructions.gd_model(D, N, eta, dtype=jnp.float64)
    layer = model.layers[0]
    noise = jax.random.normal(key, (2, D + 1, D + 1))
    # row convention: A = query key^T with key = I-block, so A[D, :] is query[D, :] @ key^T
    layer.query[...] = layer.query[...].at[0, D].set(noise[0, 0])  # A's row D (query label slot)
    layer.out[...] = layer.out[...].at[0, :, :D].set(0.1 * noise[1, :, :D])  # B's x columns (never read)
    np.testing.assert_allclose(model.predict(batch.x_ctx, batch.y_ctx, batch.x_query),
                               target.predict(batch.x_ctx, batch.y_ctx, batch.x_query), rtol=1e-12, atol=1e-12)
    w = c5.weight_resemblance(model, target, N)
    assert w["cos_A"] < 0.99 and w["zero_frac_A_irrelevant"] > 0.01 and w["zero_frac_A_relevant"] == pytest.approx(0.0, abs=1e-12)
    assert w["cos_A_xx"] == pytest.approx(1.0, abs=1e-12)
    assert w["cos_B_readout_col"] == pytest.approx(1.0, abs=1e-12)
    assert w["eta_eff"] == pytest.approx(eta, rel=1e-12)
    g = compare.compare(model.predict, target.predict, batch)
    assert float(g["model_cos"]) == pytest.approx(1.0, abs=1e-12)


def test_weight_resemblance_rejects_multi_head():
    model = models.LSATransformer(models.ModelConfig(n_heads=2), D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="1-head"):
        c5.weight_resemblance(model, constructions.gd_model(D, N, 1.0), N)


def test_slot_influence_gd_flat_online_sgd_recent(key):
    batch = tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5).sample(key, 4000)
    eta = 3.0
    gd = c5.slot_influence(lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta, steps=1), batch)  # [N]
    sgd = c5.slot_influence(c5.matched_online_sgd(eta, N), batch)
    assert gd.shape == (N,) and gd.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(gd, 1.0 / N, atol=0.01)  # (eta/N) |x_i . x_q|: exchangeable slots
    assert sgd[-1] > sgd[0] + 0.02  # later examples are overwritten less: recency
    assert np.all(np.diff(sgd) > -0.005)


def test_deviation_correlation():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(5, 2000, 1))
    shifted = p + rng.normal(size=(1, 2000, 1))  # a per-task offset is not an order effect
    assert c5.deviation_correlation(p, 2.0 * shifted) == pytest.approx(1.0)
    assert c5.deviation_correlation(p, -p) == pytest.approx(-1.0)
    assert abs(c5.deviation_correlation(p, rng.normal(size=(5, 2000, 1)))) < 0.05  # independent: ~1/sqrt(8000)
    assert c5.deviation_correlation(p, np.ones((5, 2000, 1))) == 0.0
