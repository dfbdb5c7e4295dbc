"""icl.analysis.nonlinear_one_step: the optimal one-step rate for non-linear targets in closed
form (against Monte Carlo, the estimated optimal GD rate, claim 1's Gamma* and a brute-force
orthant sum for the trees), the linear floor, and the layer read-outs on hand-made layers."""

import functools
import itertools
import math

import jax
import numpy as np
import pytest

from icl import compare, runs, solvers, tasks, trainer
from icl.analysis import nonlinear_one_step as nl
from icl.config import ExperimentConfig, TrainConfig
from icl.models import ModelConfig

D, N_CTX = 4, 8
FAMILIES = [
    ("linear", dict(input_dist="gaussian")),
    ("linear", dict(input_dist="gaussian", noise_std=0.7, weight_std=1.5)),
    ("relu_net", dict(hidden=50)),
    ("relu_net", dict(hidden=50, noise_std=0.5)),
    ("linear_classification", dict()),
    ("linear_classification", dict(flip_prob=0.2)),
    ("decision_tree", dict(depth=3)),
    ("decision_tree", dict(depth=2, noise_std=0.3)),
]


def _task(family, fields, n_ctx=N_CTX, d=D):
    return tasks.get(family, d=d, n_ctx=n_ctx, **fields)


@pytest.mark.parametrize(("family", "fields"), FAMILIES)
def test_closed_form_moments_match_monte_carlo(family, fields):
    task = _task(family, fields)
    exact = nl.closed_form_moments(task)
    mc = nl.monte_carlo_moments(task, jax.random.key(3), 60000)
    for k in ("G", "F", "V"):
        assert mc[k] == pytest.approx(exact[k], rel=0.03), k


def test_closed_forms_refuse_other_inputs_and_families():
    with pytest.raises(ValueError, match="x ~ N"):
        nl.closed_form_moments(tasks.get("linear", d=3, input_dist="uniform"))
    with pytest.raises(ValueError, match="x ~ N"):
        nl.closed_form_moments(tasks.get("linear", d=3, input_dist="gaussian", covariance="diagonal", condition_number=5.0))
    with pytest.raises(ValueError, match="no closed form"):
        nl.closed_form_moments(tasks.get("sine"))
    with pytest.raises(ValueError, match="too many"):
        nl.tree_linear_power(20, 8)


def _tree_power_by_orthants(d: int, depth: int) -> float:
    """G of the tree family by brute force: for every path (coordinates, direction bits) sum
    over the 2^d sign orthants of x (probability 2^-d each, E[x | orthant sigma] = sigma sqrt(2/pi))
    those inside the leaf's region; G = sum over leaves of the mean over paths of |m_l|^2."""
    total = 0.0
    orthants = list(itertools.product((-1.0, 1.0), repeat=d))
    for leaf in range(2**depth):
        signs = [1.0 if (leaf >> (depth - 1 - k)) & 1 else -1.0 for k in range(depth)]
        for coords in itertools.product(range(d), repeat=depth):
            m = np.zeros(d)
            for sigma in orthants:
                if all(sigma[c] == s for c, s in zip(coords, signs, strict=True)):
                    m += 2.0**-d * np.asarray(sigma) * math.sqrt(2 / math.pi)
            total += float(m @ m) / d**depth
    return total


@pytest.mark.parametrize(("d", "depth"), [(1, 2), (2, 2), (3, 3), (5, 2)])
def test_tree_linear_power_matches_an_orthant_sum(d, depth):
    assert nl.tree_linear_power(d, depth) == pytest.approx(_tree_power_by_orthants(d, depth), rel=1e-12)


def test_tree_linear_power_depth_one_by_hand():
    """One split on x_c: g = (v_R - v_L) phi(0) e_c, G = 2 phi(0)^2 = 1 / pi."""
    assert nl.tree_linear_power(7, 1) == pytest.approx(1 / math.pi)


def test_linear_step_is_claim1_gamma_star():
    for noise, tau in ((0.0, 1.0), (0.7, 1.5)):
        task = tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", noise_std=noise, weight_std=tau)
        c = nl.optimal_step(nl.closed_form_moments(task), N_CTX)
        np.testing.assert_allclose(c * np.eye(D), solvers.gamma_star(np.eye(D), N_CTX, noise, tau), rtol=1e-12)
        assert nl.one_step_loss(c, nl.closed_form_moments(task), N_CTX) == pytest.approx(
            solvers.preconditioned_loss(c * np.eye(D), np.eye(D), N_CTX, noise, tau), rel=1e-12)
    relu = nl.closed_form_moments(tasks.get("relu_net", d=D, n_ctx=N_CTX))
    assert nl.optimal_step(relu, N_CTX) == pytest.approx(1 / (N_CTX + 2 * D + 3))


@pytest.mark.parametrize(("family", "fields"), FAMILIES[2:])
def test_optimal_step_minimises_the_loss_and_matches_the_estimated_rate(family, fields):
    """c* is the argmin of the closed-form loss, L(c*) = 1/2 (V - N c* G), N c* is the rate
    `solvers.optimal_gd_lr` estimates on tasks, and the closed-form loss of GD at it is GD's
    Monte Carlo loss."""
    task = _task(family, fields)
    m = nl.closed_form_moments(task)
    c = nl.optimal_step(m, N_CTX)
    grid = np.linspace(0.0, 3 * c, 3001)
    assert grid[np.argmin([nl.one_step_loss(t, m, N_CTX) for t in grid])] == pytest.approx(c, rel=2e-3)
    assert nl.one_step_loss(c, m, N_CTX) == pytest.approx(0.5 * (m["V"] - N_CTX * c * m["G"]), rel=1e-12)
    assert solvers.optimal_gd_lr(task, jax.random.key(4), 100000) == pytest.approx(N_CTX * c, rel=0.03)
    batch = task.sample(jax.random.key(5), 100000)
    loss = float(compare.loss(solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=N_CTX * c), batch.y_query))
    assert loss == pytest.approx(nl.one_step_loss(c, m, N_CTX), rel=0.02)


@pytest.mark.parametrize(("family", "fields"), [("relu_net", dict(hidden=50)), ("linear_classification", dict())])
def test_linear_floor_is_least_squares_with_a_long_context(family, fields):
    """Least squares on N = 4,000 examples recovers f's best linear fit g_f (its loss is the floor
    times ~(1 + d / N)); no linear learner goes below 1/2 (V - G)."""
    task = _task(family, fields, n_ctx=4000)
    m = nl.closed_form_moments(task)
    batch = task.sample(jax.random.key(6), 3000)
    loss = float(compare.loss(solvers.least_squares(batch.x_ctx, batch.y_ctx, batch.x_query), batch.y_query))
    assert loss == pytest.approx(nl.linear_floor(m), rel=0.06)
    assert nl.linear_floor(m) < nl.one_step_loss(nl.optimal_step(m, N_CTX), m, N_CTX) < 0.5 * m["V"]


def _config(family="relu_net", **fields) -> ExperimentConfig:
    return ExperimentConfig(
        name="nl", task=tasks.get(family, d=D, n_ctx=N_CTX, **fields), model=ModelConfig(n_layers=1, attention="linear"),
        train=TrainConfig(steps=10, batch_size=8, n_seeds=2, eval_every=10, ckpt_every=10, eval_tasks=64, final_eval_tasks=3000),
        compare_against=("gd", "least_squares", "kernel_ridge"),
    )


def test_layer_step_and_extra_terms(preconditioner_layer):
    """Seed 0 is one GD step at c* (the construction); seed 1 has an anisotropic Gamma plus the
    rank-one route a_xy b_x^T with its extra terms, which only cost loss (they are odd under
    x -> -x, the target and the GD part even)."""
    config = _config()
    c = nl.optimal_step(nl.closed_form_moments(config.task), N_CTX)
    g1 = c * np.diag([1.0, 1.0, 1.0, 2.0])
    a_xy, b_x = np.array([0.3, 0.0, 0.0, 0.0]), np.array([0.0, 0.05, 0.0, 0.0])
    params = runs.stack_seeds([preconditioner_layer(c * np.eye(D)), preconditioner_layer(g1, a_xy, b_x)])
    steps = nl.layer_step(config, params, c)
    assert steps[0]["lr_effective"] == pytest.approx(N_CTX * c)
    assert steps[0]["distance_to_optimum"] == pytest.approx(0.0, abs=1e-12)
    assert steps[0]["anisotropy"] == pytest.approx(0.0, abs=1e-12) and steps[0]["rank_one_share"] == 0.0
    gamma1 = g1 - np.outer(a_xy, b_x)
    np.testing.assert_allclose(steps[1]["gamma"], gamma1, atol=1e-12)
    assert steps[1]["lr_effective"] == pytest.approx(N_CTX * np.trace(gamma1) / D)
    scale = np.trace(gamma1) / D
    assert steps[1]["anisotropy"] == pytest.approx(np.linalg.norm(gamma1 - scale * np.eye(D)) / np.linalg.norm(gamma1))
    assert steps[1]["rank_one_share"] == pytest.approx(0.3 * 0.05 / np.linalg.norm(gamma1))
    batch = config.task.sample(jax.random.key(7), 20000)
    extra = nl.extra_terms(config, params, steps, batch)
    assert extra["preds_diff"][0] == pytest.approx(0.0, abs=1e-10) and extra["loss_share"][0] == pytest.approx(0.0, abs=1e-10)
    assert extra["model_cos"][0] == pytest.approx(1.0)
    assert extra["preds_diff"][1] > 0.05 and extra["loss_share"][1] > 0.01


def test_compare_seeds_against_the_solver_it_implements(preconditioner_layer):
    config = _config("linear_classification")
    c = nl.optimal_step(nl.closed_form_moments(config.task), N_CTX)
    params = runs.stack_seeds([preconditioner_layer(c * np.eye(D)), preconditioner_layer(2 * c * np.eye(D))])
    batch = config.task.sample(jax.random.key(8), 500)
    got = nl.compare_seeds(config, params, functools.partial(solvers.gd, lr=N_CTX * c), batch)
    assert got["preds_diff"][0] == pytest.approx(0.0, abs=1e-10) and got["model_cos"] == pytest.approx([1.0, 1.0])
    gd = solvers.gd(batch.x_ctx, batch.y_ctx, batch.x_query, lr=N_CTX * c)
    assert got["preds_diff"][1] == pytest.approx(float(np.mean(np.abs(gd))))  # 2c predicts twice GD's
    assert got["loss"][0] == pytest.approx(got["loss_other"][0]) == pytest.approx(float(compare.loss(gd, batch.y_query)))


def test_tune_kernel_ridge_picks_the_best_grid_point():
    task = tasks.get("relu_net", d=D, n_ctx=N_CTX)
    validation, test = task.sample(jax.random.key(9), 400), task.sample(jax.random.key(10), 400)
    out = nl.tune_kernel_ridge(task, validation, test)
    assert len(out["validation_losses"]) == len(nl.KERNEL_BANDWIDTHS) * len(nl.KERNEL_LAMS)
    best = int(np.argmin(out["validation_losses"]))
    assert out["hparams"] == {"bandwidth": nl.KERNEL_BANDWIDTHS[best // len(nl.KERNEL_LAMS)] * math.sqrt(D),
                              "lam": nl.KERNEL_LAMS[best % len(nl.KERNEL_LAMS)]}
    y_hat = solvers.kernel_ridge(test.x_ctx, test.y_ctx, test.x_query, **out["hparams"])
    assert out["loss"] == pytest.approx(float(compare.loss(y_hat, test.y_query)))


def test_holds_and_verdict():
    assert nl.holds(1.01, 0.995) and nl.holds(0.985, 0.99)
    assert not nl.holds(1.03, 0.999) and not nl.holds(1.0, 0.98) and not nl.holds(0.97, 0.999)
    assert nl.verdict({"a": True, "b": True}) == "held"
    assert nl.verdict({"a": True, "b": False}) == "held in part"
    assert nl.verdict({"a": False}) == "did not hold"


def test_summarise_on_the_construction(preconditioner_layer):
    """Both seeds are one GD step at the closed-form c*: model_cos 1 against GD, loss equal to GD's
    at the closed-form rate, within a fraction of a percent of GD's at the estimated rate, above
    the linear floor and above tuned kernel ridge on ReLU-net targets."""
    config = _config()
    c = nl.optimal_step(nl.closed_form_moments(config.task), N_CTX)
    params = runs.stack_seeds([preconditioner_layer(c * np.eye(D))] * 2)
    summary = trainer.final_table(config, params, config.compare_against, config.train.final_eval_tasks)
    out = nl.summarise(config, summary, params, mc_tasks=4000, tune_tasks=300)
    assert out["step"]["lr_closed_form"] == pytest.approx(N_CTX / (N_CTX + 2 * D + 3))
    assert out["step"]["lr_effective"]["values"] == pytest.approx([N_CTX * c] * 2)
    assert abs(out["step"]["lr_estimated_vs_closed_form"]) < 0.05
    assert out["learners"]["gd_closed_form_lr"]["model_cos"]["mean"] == pytest.approx(1.0)
    assert out["loss"]["gd_closed_form_lr"] == pytest.approx(out["loss"]["model"]["mean"], rel=1e-6)
    assert out["vs_gd"]["model_cos"]["mean"] == pytest.approx(1.0)
    assert abs(out["loss"]["model_over_gd"]["mean"] - 1) < 0.005 and out["holds"]
    assert out["loss"]["linear_floor"] < out["loss"]["model"]["mean"] < out["loss"]["zero"]
    assert out["learners"]["kernel_ridge_tuned"]["loss"] < out["loss"]["linear_floor"]
    assert out["layer"]["distance_to_optimum"]["max"] == pytest.approx(0.0, abs=1e-12)
    assert out["extra_terms"]["loss_share"]["max"] == pytest.approx(0.0, abs=1e-9)
    assert out["moments_closed_form"]["G"] == pytest.approx(D / 2)
    assert set(out["learners"]) == {"gd", "least_squares", "kernel_ridge", "gd_closed_form_lr", "kernel_ridge_tuned"}
