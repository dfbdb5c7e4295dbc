"""icl.analysis.order: context permutations, the order-sensitivity measure, order (in)variance of
the learners, slot influence, the correlation of order effects, and the shared held-out orders
(float64, conftest)."""

import jax
import numpy as np
import pytest

from icl import models, runs, solvers, tasks, train
from icl.analysis import online_sgd, order
from icl.config import ExperimentConfig, OptimConfig, TrainConfig

D, N = 4, 6  # the shapes of the small_linear_batch fixture (conftest)


@pytest.fixture
def batch(small_linear_batch):
    return small_linear_batch


def test_permutations_move_pairs_together(batch):
    x, y = order.permute_contexts(jax.random.key(1), batch.x_ctx, batch.y_ctx, 5)  # [R, B, N, d], [R, B, N]
    assert x.shape == (5, 64, N, D) and y.shape == (5, 64, N)
    for r in range(5):
        for b in (0, 17):
            # every permuted pair (x, y) is one of the original pairs, each used once
            orig = np.concatenate([batch.x_ctx[b], batch.y_ctx[b][:, None]], 1)
            perm = np.concatenate([x[r, b], y[r, b][:, None]], 1)
            assert sorted(map(tuple, orig)) == sorted(map(tuple, perm))
    assert not np.allclose(x[0], x[1])  # independent orders
    with pytest.raises(ValueError, match="n_perms"):
        order.permute_contexts(jax.random.key(1), batch.x_ctx, batch.y_ctx, 1)


def test_order_sensitivity_closed_form():
    # 2 tasks, 1 query; unpermuted predictions 1, 3 (std over tasks 1); orders give +-0.5 around them
    p0 = np.array([[1.0], [3.0]])
    p = np.array([[[0.5], [3.0]], [[1.5], [3.0]]])  # [R=2, B=2, M=1]
    y = np.array([[1.0], [2.0]])
    out = order.order_sensitivity(p, p0, y)
    assert out["sensitivity"] == pytest.approx((0.5 + 0.0) / 2 / 1.0)
    assert out["worst"] == pytest.approx(0.5)
    assert out["max_abs"] == pytest.approx(0.5)
    assert out["loss_over_orders"] == pytest.approx(0.5 * np.mean([0.25, 1.0, 0.25, 1.0]))
    assert out["loss_order_averaged"] == pytest.approx(0.5 * np.mean([0.0, 1.0]))
    with pytest.raises(ValueError, match="do not vary"):
        order.order_sensitivity(p, np.ones((2, 1)))


def test_gd_and_paired_models_are_order_invariant_sgd_and_positions_are_not(batch):
    x, y = order.permute_contexts(jax.random.key(2), batch.x_ctx, batch.y_ctx, 4)
    eta = 3.0
    gd = lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta, steps=1)
    sgd = online_sgd.matched_online_sgd(eta, N)
    lsa = models.build(models.ModelConfig(n_layers=1, init_scale=1.0), D, jax.random.key(3))
    softmax = models.build(models.ModelConfig(n_layers=2, attention="softmax", layernorm=True, mlp=True, init_scale=1.0), D,
                           jax.random.key(4))
    separate = models.build(models.ModelConfig(n_layers=2, first_layer_softmax=True, token_layout="separate", n_positions=N,
                                               init_scale=1.0), D, jax.random.key(5))

    def sens(f):
        f = jax.jit(f)  # one program per shape, not op by op
        p0 = f(batch.x_ctx, batch.y_ctx, batch.x_query)
        return order.order_sensitivity(np.asarray(order.predict_orders(f, x, y, batch.x_query)), np.asarray(p0))

    for f in (gd, lsa.predict, softmax.predict):
        assert sens(f)["max_abs"] < 1e-12  # symmetric in the context pairs up to float64 roundoff
    assert sens(sgd)["sensitivity"] > 1e-3
    assert sens(separate.predict)["sensitivity"] > 1e-3  # the positional code lets it see order


def test_slot_influence_gd_flat_online_sgd_recent(key):
    batch = tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5).sample(key, 4000)
    eta = 3.0
    gd = order.slot_influence(lambda xc, yc, xq: solvers.gd(xc, yc, xq, lr=eta, steps=1), batch)  # [N]
    sgd = order.slot_influence(online_sgd.matched_online_sgd(eta, N), batch)
    assert gd.shape == (N,) and gd.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(gd, 1.0 / N, atol=0.01)  # (eta/N) |x_i . x_q|: exchangeable slots
    assert sgd[-1] > sgd[0] + 0.02  # later examples are overwritten less: recency
    assert np.all(np.diff(sgd) > -0.005)


def test_deviation_correlation():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(5, 2000, 1))
    shifted = p + rng.normal(size=(1, 2000, 1))  # a per-task offset is not an order effect
    assert order.deviation_correlation(p, 2.0 * shifted) == pytest.approx(1.0)
    assert order.deviation_correlation(p, -p) == pytest.approx(-1.0)
    assert abs(order.deviation_correlation(p, rng.normal(size=(5, 2000, 1)))) < 0.05  # independent: ~1/sqrt(8000)
    assert order.deviation_correlation(p, np.ones((5, 2000, 1))) == 0.0


def _config(n_seeds: int = 2) -> ExperimentConfig:
    task = tasks.get("linear", d=D, n_ctx=N, input_dist="uniform", input_range=0.5)
    return ExperimentConfig(name="t", task=task, model=models.ModelConfig(n_layers=1, init_scale=1.0), optim=OptimConfig(),
                            train=TrainConfig(steps=10, batch_size=8, n_seeds=n_seeds, eval_every=5, ckpt_every=10))


def test_order_batch_is_the_extra_heldout_set():
    config = _config()
    batch, x_perm, y_perm = order.order_batch(config, n_tasks=30, n_perms=3)
    key = jax.random.fold_in(jax.random.key(config.train.eval_seed), 5)
    np.testing.assert_array_equal(batch.x_ctx, config.task.sample(jax.random.fold_in(key, 0), 30).x_ctx)
    assert x_perm.shape == (3, 30, N, D) and y_perm.shape == (3, 30, N)
    assert int(train.HeldOut.EXTRA) == 5


def test_evaluate_seeds_and_references():
    """Per-seed stats of paired 1-layer LSAs (order-invariant: max_abs ~ 0) with the correlation to a
    reference; GD's reference is order-invariant, online SGD's is not, the tuned alpha has the least
    tuning loss of the sweep."""
    config = _config()
    batch, x_perm, y_perm = order.order_batch(config, n_tasks=60, n_perms=3)
    eta = 2.0
    reference = np.asarray(order.predict_orders(online_sgd.matched_online_sgd(eta, N), x_perm, y_perm, batch.x_query))
    scalars, slots = order.evaluate_seeds(config, runs.initial_params(config), batch, x_perm, y_perm, reference)
    assert len(scalars["max_abs"]["values"]) == 2 and max(scalars["max_abs"]["values"]) < 1e-9
    assert "corr_with_online_sgd" in scalars and np.shape(slots) == (2, N)
    refs = order.evaluate_references(config, eta, batch, x_perm, y_perm, alpha_factors=(0.5, 2.0), n_tune=200)
    assert refs["gd"]["max_abs"] < 1e-9 < refs["online_sgd_matched"]["max_abs"]
    assert refs["online_sgd_matched"]["alpha"] == pytest.approx(eta / N)
    assert refs["online_sgd_tuned"]["tune_loss"] == min(s["tune_loss"] for s in refs["online_sgd_sweep"])
    assert refs["n_tasks"] == 60 and refs["n_perms"] == 3
