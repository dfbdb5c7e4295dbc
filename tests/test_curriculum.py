"""Garg et al.'s curriculum (`icl.curriculum`): the schedule against a hand-written table and
against a step-by-step simulation of their stateful update rule, under jit with a traced step;
the input truncation and position mask; the masked loss of a causal model equal to the loss on
the shortened sequence (float64, 1e-12); one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl.curriculum import Curriculum, masked_mse, position_mask, truncate_dims
from icl.models.gpt2 import GPT2Config


def simulate(start: int, end: int, inc: int, every: int, n_steps: int) -> np.ndarray:
    """Their curriculum object, step by step: the value used at step s, then one update (a
    counter; at each multiple of `every` add `inc`; cap at `end`)."""
    values, value = [], start
    for count in range(1, n_steps + 1):
        values.append(value)
        if count % every == 0:
            value += inc
        value = min(value, end)
    return np.array(values)


# step: (dims, points) for Garg et al.'s linear (points_end 41) and tree / ReLU (101) presets, d = 20
TABLE = {
    0: ((5, 11), (5, 26)),
    1: ((5, 11), (5, 26)),
    1_999: ((5, 11), (5, 26)),
    2_000: ((6, 13), (6, 31)),
    2_001: ((6, 13), (6, 31)),
    3_999: ((6, 13), (6, 31)),
    4_000: ((7, 15), (7, 36)),
    29_999: ((19, 39), (19, 96)),
    30_000: ((20, 41), (20, 101)),
    500_000: ((20, 41), (20, 101)),
    2 ** 31 - 1: ((20, 41), (20, 101)),
}


def test_garg_presets_against_a_hand_written_table():
    linear, trees = Curriculum.garg(20, 41), Curriculum.garg(20, 101)
    assert linear == Curriculum(5, 20, 1, 11, 41, 2, 2000) == Curriculum()
    assert trees == Curriculum(5, 20, 1, 26, 101, 5, 2000)
    assert linear.final_step == trees.final_step == 30_000
    jitted = [jax.jit(c.at) for c in (linear, trees)]
    for step, want in TABLE.items():
        for c, fn, (dims, points) in zip((linear, trees), jitted, want, strict=True):
            for got in (c.at(step), fn(jnp.int32(step))):
                assert got[0].dtype == got[1].dtype == jnp.int32
                assert (int(got[0]), int(got[1])) == (dims, points), step


@pytest.mark.parametrize("c", [Curriculum.garg(20, 41), Curriculum.garg(20, 101), Curriculum(2, 9, 3, 1, 50, 7, 3),
                               Curriculum(4, 4, 0, 10, 12, 1, 5)])
def test_schedule_equals_their_stateful_update_at_every_step(c):
    n_steps = min(c.final_step + 3 * c.every, 40_000)
    steps = jnp.arange(n_steps, dtype=jnp.int32)
    dims, points = jax.jit(jax.vmap(c.at))(steps)
    np.testing.assert_array_equal(dims, simulate(c.dims_start, c.dims_end, c.dims_inc, c.every, n_steps))
    np.testing.assert_array_equal(points, simulate(c.points_start, c.points_end, c.points_inc, c.every, n_steps))


def test_preset_edge_cases():
    assert Curriculum.garg(3, 7) == Curriculum(3, 3, 1, 7, 7, 2, 2000)  # d < 5: fixed from the start
    assert [int(v) for v in Curriculum.garg(10, 21, every=100).at(500)] == [10, 21]
    with pytest.raises(ValueError, match="points_end = k \\* d \\+ 1") as err:
        Curriculum.garg(20, 40)
    assert "\n" not in str(err.value)


def test_truncation_and_position_mask():
    c = Curriculum.garg(6, 13, every=10)  # dims 5 -> 6, points 11 -> 13
    x = jax.random.normal(jax.random.key(0), (2, 13, 6)) + 3.0
    y = jnp.arange(26.0).reshape(2, 13)
    for step, dims, points in ((0, 5, 11), (9, 5, 11), (10, 6, 13)):
        xt, yt, mask = c.apply(x, y, step)
        np.testing.assert_array_equal(xt[..., :dims], x[..., :dims])
        assert np.all(np.asarray(xt[..., dims:]) == 0)
        np.testing.assert_array_equal(yt, y)
        np.testing.assert_array_equal(mask, (np.arange(13) < points).astype(np.float64))
        np.testing.assert_array_equal(c.truncate(x, step), xt)
        np.testing.assert_array_equal(c.position_mask(13, step), mask)
    traced = jax.jit(lambda s: c.apply(x, y, s))(jnp.int32(0))
    np.testing.assert_array_equal(traced[0], c.apply(x, y, 0)[0])
    np.testing.assert_array_equal(truncate_dims(x[0, 0], 2), np.r_[np.asarray(x[0, 0, :2]), np.zeros(4)])
    np.testing.assert_array_equal(position_mask(4, 0), np.zeros(4))


def test_masked_loss_of_a_causal_model_equals_the_loss_on_the_shortened_sequence():
    """The curriculum's single shape: a T = points_end sequence with the loss masked to the first
    active_points positions gives the loss (and its gradient in the inputs) of the sequence cut
    to active_points pairs, since a causal model's prediction at t reads nothing after t."""
    c = Curriculum(dims_start=2, dims_end=4, dims_inc=1, points_start=5, points_end=9, points_inc=2, every=5)
    model = GPT2Config.named("tiny", n_positions=9).build(4, 0)
    kx, kw = jax.random.split(jax.random.key(1))
    x_raw = jax.random.normal(kx, (3, 9, 4))
    w = jax.random.normal(kw, (3, 4))
    @jax.jit
    def full(x_, y_, mask_):  # the one compiled shape
        return masked_mse(model.predict_prefixes(x_, y_), y_, mask_)

    def short(x_, y_, points_):
        return jnp.mean(jnp.square(model.predict_prefixes(x_[:, :points_], y_[:, :points_]) - y_[:, :points_]))

    for step in (0, 10):
        dims, points = (int(v) for v in c.at(step))
        assert (dims, points) == ((2, 5) if step == 0 else (4, 9))
        x = c.truncate(x_raw, step)
        y = jnp.einsum("btd,bd->bt", x, w)  # labelled after truncation
        _, _, mask = c.apply(x, y, step)
        loss, grad = jax.value_and_grad(full)(x, y, mask)
        loss_short, grad_short = jax.jit(jax.value_and_grad(short), static_argnums=2)(x, y, points)
        np.testing.assert_allclose(loss, loss_short, rtol=1e-12)
        np.testing.assert_allclose(grad, grad_short, rtol=1e-10, atol=1e-14)


def test_masked_mse_formula():
    pred, target = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]), jnp.zeros((2, 3))
    mask = jnp.array([1.0, 1.0, 0.0])
    assert float(masked_mse(pred, target, mask)) == pytest.approx((1 + 4 + 0 + 0) / 4)
    with pytest.raises(ValueError, match="masked_mse needs pred, target \\[batch, T\\] and mask \\[T\\]"):
        masked_mse(pred, target, jnp.ones(2))


@pytest.mark.parametrize(("fields", "message"), [
    (dict(dims_start=6, dims_end=5), "curriculum: dims_start 6 must be <= dims_end 5"),
    (dict(points_start=50), "curriculum: points_start 50 must be <= points_end 41"),
    (dict(every=0), "curriculum: every must be an integer >= 1"),
    (dict(dims_inc=-1), "curriculum: dims_inc must be an integer >= 0"),
    (dict(points_end=41.0), "curriculum: points_end must be an integer >= 1"),
])
def test_bad_curricula_fail_with_one_line(fields, message):
    with pytest.raises(ValueError, match=message) as err:
        Curriculum(**fields)
    assert "\n" not in str(err.value)


def test_bad_steps_and_shapes_fail_with_one_line():
    c = Curriculum()
    for call, message in (
        (lambda: c.at(-1), "curriculum: step must be an integer >= 0"),
        (lambda: c.at(1.5), "curriculum: step must be an integer >= 0"),
        (lambda: c.apply(jnp.zeros((2, 41)), jnp.zeros((2, 41)), 0), "apply needs x \\[batch, T, d\\]"),
        (lambda: c.apply(jnp.zeros((2, 30, 20)), jnp.zeros((2, 30)), 0), "T = 30 pairs are shorter than points_end = 41"),
    ):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
