"""icl.analysis.ssm_vs_transformer: the per-seed error curves (against a hand-computed error, and
a model that is least squares scores its error), the error past k = d + 2, the convergence test
(flat, falling, noisy, edge cases), reading a curve between measurements, and the verdict rule
(every branch, and that it can fail)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers, tasks
from icl.analysis import prefix_curves, ssm_vs_transformer as sv

D, T = 3, 9


class _Fixed:
    """A stand-in model: predict_prefixes returns fn(x, y)."""

    def __init__(self, fn):
        self.fn = fn

    def predict_prefixes(self, x, y):
        return self.fn(x, y)


def _sequences(n=400, seed=0):
    task = tasks.get("linear", d=D, n_ctx=T - 1, n_query=1, input_dist="gaussian")
    x, y = task.sample(jax.random.key(seed), n).sequence()
    return task, x, y


def test_seed_error_curves_are_the_normalised_error_per_position():
    task, x, y = _sequences()
    zero, half = _Fixed(lambda x_, y_: jnp.zeros_like(y_)), _Fixed(lambda x_, y_: 0.5 * y_)
    curves = sv.seed_error_curves([zero, half], task, x, y)
    assert curves.shape == (2, T)
    np.testing.assert_allclose(curves[0], np.asarray((y**2).mean(0)) / D, rtol=1e-5)
    np.testing.assert_allclose(curves[1], 0.25 * curves[0], rtol=1e-5)
    assert curves[0].mean() == pytest.approx(1.0, rel=0.15)  # the zero predictor scores ~1 (Garg et al.'s units)


def test_a_least_squares_model_scores_least_squares_error():
    task, x, y = _sequences(n=300, seed=1)
    ls = prefix_curves.learner_predictions(solvers.least_squares, x, y)
    curves = sv.seed_error_curves([_Fixed(lambda x_, y_: ls)], task, x, y)
    past = sv.error_past(curves, D)
    assert past.shape == (1,) and past[0] < 1e-6  # noiseless: exact once k >= d
    assert curves[0, 1] > 0.3  # one example is not enough


def test_error_past_averages_from_d_plus_2():
    curves = np.arange(2 * T, dtype=float).reshape(2, T)
    np.testing.assert_allclose(sv.error_past(curves, D), curves[:, D + 2:].mean(1))
    assert sv.error_past(curves[0], D) == pytest.approx(np.mean(np.arange(D + 2, T)))
    with pytest.raises(ValueError, match="none at k"):
        sv.error_past(curves[:, :D + 2], D)


def test_flat_accepts_a_levelled_curve_and_rejects_a_falling_one():
    steps = np.arange(1, 11) * 100
    levelled = 0.05 + 0.5 * np.exp(-steps / 150)
    assert sv.flat(steps, levelled)["flat"]
    falling = 1.0 - steps / 1200  # still falling by 0.15 over the last 20 %
    got = sv.flat(steps, falling)
    assert not got["flat"] and got["from_step"] == 800 and got["drop"] == pytest.approx(falling[7] - falling[-1])
    rising = 0.1 + steps / 1e4  # a rise is flat: more steps would not help
    assert sv.flat(steps, rising)["flat"]


def test_flat_tolerances():
    steps = [100, 200, 300, 400, 500]
    assert sv.flat(steps, [1, 1, 1, 0.105, 0.1])["flat"]  # drop 0.005 <= abs_tol 0.01
    assert not sv.flat(steps, [1, 1, 1, 0.125, 0.1])["flat"]  # drop 0.025 > max(0.01, 0.1 x 0.1)
    assert sv.flat(steps, [1, 1, 1, 2.15, 2.0])["flat"]  # drop 0.15 <= 0.1 x 2.0
    assert not sv.flat(steps, [1, 1, 1, 2.25, 2.0])["flat"]
    assert sv.flat(steps, [1, 1, 1, 0.125, 0.1], abs_tol=0.03)["flat"]
    with pytest.raises(ValueError, match="no measurement"):
        sv.flat([100, 1000], [1.0, 0.5])  # the last 20 % holds only the last measurement
    with pytest.raises(ValueError, match="increase"):
        sv.flat([100, 100, 200], [1, 1, 1])
    with pytest.raises(ValueError, match="same length"):
        sv.flat([100, 200], [1.0])


def test_value_at_interpolates_inside_and_is_nan_outside():
    assert sv.value_at([0, 10, 20], [1.0, 3.0, 2.0], 5) == pytest.approx(2.0)
    assert sv.value_at([0, 10, 20], [1.0, 3.0, 2.0], 20) == pytest.approx(2.0)
    assert np.isnan(sv.value_at([0, 10, 20], [1.0, 3.0, 2.0], 21))
    assert np.isnan(sv.value_at([5, 10], [1.0, 3.0], 1))


@pytest.mark.parametrize(("mamba", "gpt2", "mamba_flat", "gpt2_flat", "expected"), [
    (0.10, 0.08, False, True, "at level"),  # within TOL of a converged GPT-2
    (0.05, 0.30, True, True, "at level"),  # ahead
    (0.05, 0.30, True, False, "undecided"),  # ahead of a GPT-2 still improving
    (0.40, 0.97, False, True, "undecided"),  # ahead of a GPT-2 stuck on the plateau (flat at ~1)
    (0.40, 0.55, True, True, "undecided"),  # ahead of a flat GPT-2 that has barely learned
    (0.20, 0.05, True, True, "behind"),  # levelled off above
    (0.20, 0.05, True, False, "behind"),  # the GPT-2 would only improve
    (0.20, 0.05, False, True, "undecided"),  # behind but still improving
])
def test_task_verdict_branches(mamba, gpt2, mamba_flat, gpt2_flat, expected):
    assert sv.task_verdict(mamba, gpt2, mamba_flat, gpt2_flat) == expected


def test_task_verdict_tolerance_edge():
    assert sv.task_verdict(0.15, 0.10, True, True) == "at level"
    assert sv.task_verdict(0.1501, 0.10, True, True) == "behind"
    assert sv.task_verdict(0.1501, 0.10, True, True, tol=0.1) == "at level"


def test_verdict_over_tasks():
    assert sv.verdict(["at level", "at level"]) == "held"
    assert sv.verdict(["behind", "behind"]) == "did not hold"
    assert sv.verdict(["undecided", "undecided"]) == "not settled"
    assert sv.verdict(["at level", "behind"]) == "held in part"
    assert sv.verdict(["at level", "undecided"]) == "held in part"
    assert sv.verdict(["behind", "undecided"]) == "held in part"
