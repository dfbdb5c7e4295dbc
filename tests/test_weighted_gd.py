"""icl/solvers/weighted.py (one GD step with exponentially decaying example weights) against a
naive double loop in float64, against one step of `gd` at decay = 1, with masks, every prefix, its
registry defaults and its errors."""

import jax
import numpy as np
import pytest

from icl import compare, solvers, tasks

ATOL = 1e-12  # float64, the same arithmetic in another order


def _data(seed, b=5, n=9, d=3, m=4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n, d))
    w = rng.standard_normal((b, d))
    y = np.einsum("bnd,bd->bn", x, w) + 0.3 * rng.standard_normal((b, n))
    return x, y, rng.standard_normal((b, m, d))


def naive_weighted_gd(x, y, xq, lr, decay, mask=None):
    """w = (lr / n) sum_i decay^(n - i) y_i x_i over the present examples, one task at a time,
    the rank n - i counted by hand as the number of present examples after i."""
    out = np.zeros(xq.shape[:2])
    for b in range(len(x)):
        present = [i for i in range(x.shape[1]) if mask is None or mask[b, i] > 0]
        w = np.zeros(x.shape[2])
        for i in present:
            after = sum(1 for j in present if j > i)
            w = w + decay**after * y[b, i] * x[b, i]
        out[b] = xq[b] @ (lr / max(len(present), 1) * w)
    return out


def _mask(seed, shape):
    mask = (np.random.default_rng(seed).random(shape) < 0.6).astype(float)
    mask[:, -1] = 0.0  # the last slot absent: the latest present example still weighs 1
    mask[0, :] = 0.0
    mask[0, 2] = 1.0  # a task with one present example
    return mask


def test_weighted_gd_equals_naive_loop():
    x, y, xq = _data(0)
    for lr, decay in ((0.5, 0.9), (1.3, 0.5), (0.2, 1.0)):
        np.testing.assert_allclose(solvers.weighted_gd(x, y, xq, lr=lr, decay=decay),
                                   naive_weighted_gd(x, y, xq, lr, decay), rtol=0, atol=ATOL)
    w = solvers.weighted_gd_weights(x, y, 0.5, 0.9, np.ones(y.shape))  # [B, d]
    np.testing.assert_allclose(np.einsum("bmd,bd->bm", xq, w), naive_weighted_gd(x, y, xq, 0.5, 0.9), atol=ATOL)
    # the most recent example weighs 1, the first decay^(N-1)
    one_hot = np.zeros_like(y)
    one_hot[:, -1] = 1.0
    np.testing.assert_allclose(solvers.weighted_gd(x, one_hot, xq, lr=9.0, decay=0.5),
                               np.einsum("bmd,bd->bm", xq, x[:, -1]), atol=ATOL)
    one_hot = np.zeros_like(y)
    one_hot[:, 0] = 1.0
    np.testing.assert_allclose(solvers.weighted_gd(x, one_hot, xq, lr=9.0, decay=0.5),
                               0.5**8 * np.einsum("bmd,bd->bm", xq, x[:, 0]), atol=ATOL)


def test_decay_one_is_one_gd_step():
    x, y, xq = _data(1)
    for lr in (0.3, 1.7):
        np.testing.assert_allclose(solvers.weighted_gd(x, y, xq, lr=lr, decay=1.0),
                                   solvers.gd(x, y, xq, lr=lr, steps=1), rtol=0, atol=ATOL)
    # under a mask: gd on the present examples alone (its 1/N over the context it is given)
    mask = _mask(2, y.shape)
    got = solvers.weighted_gd(x, y, xq, lr=0.7, decay=1.0, mask=mask)
    for b in range(len(x)):
        keep = mask[b] > 0
        np.testing.assert_allclose(got[b:b + 1], solvers.gd(x[b:b + 1, keep], y[b:b + 1, keep], xq[b:b + 1], lr=0.7),
                                   rtol=0, atol=ATOL)


def test_mask_skips_examples_and_their_ranks():
    x, y, xq = _data(3)
    mask = _mask(4, y.shape)
    got = solvers.weighted_gd(x, y, xq, lr=0.8, decay=0.6, mask=mask)
    np.testing.assert_allclose(got, naive_weighted_gd(x, y, xq, 0.8, 0.6, mask), atol=ATOL)
    # an absent example is exactly a missing one: drop it from the sequence (ranks and 1/n)
    for b in range(len(x)):
        keep = mask[b] > 0
        alone = solvers.weighted_gd(x[b:b + 1, keep], y[b:b + 1, keep], xq[b:b + 1], lr=0.8, decay=0.6)
        np.testing.assert_allclose(got[b:b + 1], alone, atol=ATOL)
    # what sits in an absent slot changes nothing
    rng = np.random.default_rng(5)
    x2 = np.where(mask[:, :, None] > 0, x, rng.standard_normal(x.shape))
    y2 = np.where(mask > 0, y, 1e3 * rng.standard_normal(y.shape))
    np.testing.assert_array_equal(solvers.weighted_gd(x2, y2, xq, lr=0.8, decay=0.6, mask=mask), got)
    # no present example predicts 0
    np.testing.assert_array_equal(solvers.weighted_gd(x, y, xq, lr=0.8, decay=0.6, mask=np.zeros(y.shape)), 0.0)


def test_every_prefix_in_one_call():
    x, y, xq = _data(6)
    assert solvers.prefix_mode(solvers.weighted_gd) == "mask"
    got = solvers.prefix_predictions("weighted_gd(lr=0.9, decay=0.7)", x, y, xq)  # [B, N, M]
    for n in range(1, x.shape[1] + 1):
        np.testing.assert_allclose(got[:, n - 1], naive_weighted_gd(x[:, :n], y[:, :n], xq, 0.9, 0.7), atol=ATOL)
    # decay = 1: GD's own every-prefix curve (its lr rescaled by N / n)
    np.testing.assert_allclose(solvers.prefix_predictions("weighted_gd(lr=0.9, decay=1.0)", x, y, xq),
                               solvers.prefix_predictions("gd(lr=0.9)", x, y, xq), atol=ATOL)


def test_single_query_and_jit():
    x, y, xq = _data(7)
    full = solvers.weighted_gd(x, y, xq, lr=0.4, decay=0.8)
    np.testing.assert_allclose(solvers.weighted_gd(x, y, xq[:, 0], lr=0.4, decay=0.8), full[:, 0], atol=ATOL)
    np.testing.assert_allclose(jax.jit(solvers.weighted_gd)(x, y, xq, 0.4, 0.8), full, atol=ATOL)


def test_registry_defaults():
    """lr: one-step GD's registry default (optimal_gd_lr); decay: 0.9."""
    task = tasks.get("linear", d=3, n_ctx=6)
    key = jax.random.key(0)
    _, hp = compare.solver_predictor("weighted_gd", task, key)
    assert hp == {"lr": pytest.approx(solvers.task_defaults("gd", task, key, {})["lr"], rel=1e-12), "decay": 0.9}
    assert solvers.parse_spec("weighted_gd(decay=0.5)") == ("weighted_gd", {"decay": 0.5})


@pytest.mark.parametrize("hparams, match", [
    (dict(lr=0.5, decay=0), r"weighted_gd: decay must be in \(0, 1\], got 0"),
    (dict(lr=0.5, decay=1.5), r"weighted_gd: decay must be in \(0, 1\], got 1.5"),
    (dict(lr=0.5, decay=float("nan")), r"weighted_gd: decay must be in \(0, 1\], got nan"),
    (dict(lr=-1, decay=0.9), "weighted_gd: lr must be > 0 and finite, got -1"),
    (dict(lr=np.float32(0.0), decay=0.9), "weighted_gd: lr must be > 0 and finite"),
])
def test_bad_hyperparameters_fail_with_one_line(hparams, match):
    with pytest.raises(ValueError, match=match) as err:
        solvers.weighted_gd(*_data(8), **hparams)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="mask must be"):
        solvers.weighted_gd(*_data(8), lr=0.1, mask=np.ones(4))
