"""icl.analysis.saddle_to_saddle: the in-context PCR losses and Gamma* in the eigenbasis (against
Monte Carlo and the solvers' Gamma*), Gamma from raw weights (= weights.preconditioner), the
projections, learning steps and order, plateau / drop detection on synthetic curves, the verdict
rule, and the trajectory (the same weights as icl.train.train)."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import rundir, solvers, tasks, train, weights
from icl.analysis import saddle_to_saddle as st
from icl.config import ExperimentConfig, TrainConfig
from icl.experiments import claim16_saddle_to_saddle as study
from icl.models import ModelConfig

D, N_CTX = 3, 10


def _task(**fields):
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    cov = q @ np.diag([2.0, 0.7, 0.3]) @ q.T
    return tasks.get("linear", d=D, n_ctx=N_CTX, input_dist="gaussian", covariance=tuple(map(tuple, (cov + cov.T) / 2)), **fields)


@pytest.mark.parametrize("fields", [dict(), dict(weight_std=1.5, noise_std=0.6)])
def test_gamma_star_is_the_solvers_gamma_star_in_the_eigenbasis(fields):
    task = _task(**fields)
    ref = st.task_reference(task)
    full = solvers.gamma_star(task.input_covariance, N_CTX, task.noise_std, task.weight_std)
    np.testing.assert_allclose(ref["U"].T @ full @ ref["U"], np.diag(ref["gamma_star"]), atol=1e-12)
    assert np.all(np.diff(ref["lambda"]) < 0)


@pytest.mark.parametrize("fields", [dict(), dict(weight_std=1.5, noise_std=0.6)])
def test_pcr_losses_match_monte_carlo(fields):
    task = _task(**fields)
    ref = st.task_reference(task)
    batch = task.sample(jax.random.key(0), 400000)
    for k in range(D + 1):
        g = np.where(np.arange(D) < k, ref["gamma_star"], 0.0)
        gamma = jnp.asarray(ref["U"] @ np.diag(g) @ ref["U"].T)
        xty = jnp.einsum("bnd,bn->bd", batch.x_ctx, batch.y_ctx)
        y_hat = jnp.einsum("bmd,de,be->bm", batch.x_query, gamma, xty)
        sq = np.asarray(0.5 * (y_hat - batch.y_query) ** 2)
        assert sq.mean() == pytest.approx(ref["pcr_losses"][k], abs=4 * sq.std() / np.sqrt(sq.size))
    assert np.all(np.diff(ref["pcr_losses"]) < 0)


def test_pcr_losses_on_tasks_tend_to_the_closed_form():
    task = _task(noise_std=0.5)
    batch = task.sample(jax.random.key(2), 200000)
    on_tasks = st.pcr_losses_on_tasks(task, batch)
    np.testing.assert_allclose(on_tasks, st.task_reference(task)["pcr_losses"], rtol=0.02)
    assert on_tasks[0] == pytest.approx(0.5 * float(jnp.mean(batch.y_query**2)))


def test_pcr_losses_closed_form_values():
    lam = np.array([1.6, 1.2, 0.8, 0.4])
    levels = st.pcr_losses(lam, 20)
    assert levels[0] == pytest.approx(2.0)  # the zero predictor: T / 2
    expected = [0.5 * (4 - sum(20 * v**2 / (21 * v + 4) for v in lam[:k])) for k in range(5)]
    np.testing.assert_allclose(levels, expected, rtol=1e-12)


@pytest.mark.parametrize("fields", [dict(n_heads=3, key_size=1), dict(n_heads=1, key_size=0), dict(n_heads=2, key_size=2)])
def test_gammas_equal_weights_preconditioner(fields):
    model = ModelConfig(init_scale=1.0, **fields).build(D, 7)
    layer = model.layers[0]
    got = st.gammas(layer.query[...], layer.key[...], layer.value[...], layer.out[...], D)
    np.testing.assert_allclose(got, weights.preconditioner(layer, D)["gamma"], rtol=1e-10, atol=1e-12)
    stacked = [np.stack([np.asarray(getattr(layer, n)[...])] * 2) for n in ("query", "key", "value", "out")]
    assert st.gammas(*stacked, D).shape == (2, D, D)


def test_head_components():
    ref = st.task_reference(_task())
    u = ref["U"]
    heads = np.stack([0.5 * np.outer(u[:, 1], u[:, 1]), np.zeros((D, D)), 2.0 * np.outer(u[:, 0], u[:, 0])])
    out = st.head_components(heads, u)
    assert [h["component"] for h in out] == [2, 0, 1]
    assert out[0]["share"] == pytest.approx(1.0) and out[2]["norm"] == pytest.approx(2.0)
    model = ModelConfig(init_scale=1.0, n_heads=3, key_size=1).build(D, 3)
    layer = model.layers[0]
    per_head = st.head_gammas(layer.query[...], layer.key[...], layer.value[...], layer.out[...], D)
    assert np.all(np.linalg.matrix_rank(per_head) == 1)  # key size 1: one direction per head
    np.testing.assert_allclose(per_head.sum(0), weights.preconditioner(layer, D)["gamma"], rtol=1e-10, atol=1e-12)


def test_projections_and_off_diagonal_share():
    ref = st.task_reference(_task())
    u = ref["U"]
    gamma = u @ np.diag([3.0, 2.0, 1.0]) @ u.T
    np.testing.assert_allclose(st.projections(gamma, u), [3.0, 2.0, 1.0], atol=1e-12)
    assert st.off_diagonal_share(gamma, u) == pytest.approx(0.0, abs=1e-7)
    off = u @ np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]) @ u.T
    assert st.off_diagonal_share(off, u) == pytest.approx(1.0)
    assert st.projections(np.stack([gamma, 2 * gamma]), u).shape == (2, D)


def test_learning_steps_and_order():
    steps = np.arange(0, 1000, 100)
    proj = np.zeros((10, 3))
    proj[2:, 0], proj[5:, 1], proj[5:, 2] = 1.0, 0.6, 0.4
    assert st.learning_steps(steps, proj, [1.0, 1.0, 1.0]) == [200, 500, -1]
    assert st.learning_steps(steps, proj, [1.0, 1.0, 0.8]) == [200, 500, 500]
    assert st.in_order([100, 200, 300]) and not st.in_order([100, 200, 200]) and not st.in_order([100, -1, 300])
    assert not st.in_order([200, 100, 300])
    assert st.in_order_so_far([100, 200, -1]) and not st.in_order_so_far([100, -1, 300])
    assert not st.in_order_so_far([-1, -1, -1]) and not st.in_order_so_far([100, 100, -1])


def _staircase(steps, levels, at, width=20.0):
    """exp of a log loss stepping from levels[k] to levels[k + 1] at steps at[k] (logistic of `width`)."""
    y = np.full(steps.shape, np.log(levels[0]))
    for (a, b), t in zip(itertools.pairwise(levels), at, strict=True):
        y += (np.log(b) - np.log(a)) / (1 + np.exp(-(steps - t) / width))
    return np.exp(y)


def test_plateaus_count_the_drops_of_a_staircase():
    steps = np.arange(0, 12000, 25)
    loss = _staircase(steps, [2.0, 1.32, 0.83, 0.52, 0.39], [500, 1500, 4000, 9000])
    out = st.plateaus(steps, loss)
    assert out["n_drops"] == 4 and not out["ends_falling"]
    np.testing.assert_allclose(out["drop_steps"], [500, 1500, 4000, 9000], atol=50)
    np.testing.assert_allclose([p["level"] for p in out["plateaus"]], [2.0, 1.32, 0.83, 0.52, 0.39], rtol=0.01)
    noisy = loss * np.exp(0.01 * np.random.default_rng(0).standard_normal(loss.shape))  # 1 % noise
    assert st.plateaus(steps, noisy)["n_drops"] == 4


def test_plateaus_one_drop_a_smooth_curve_and_an_unfinished_drop():
    steps = np.arange(0, 6000, 25)
    assert st.plateaus(steps, _staircase(steps, [2.0, 0.39], [800]))["n_drops"] == 1
    # a small shoulder (< MIN_DROP) after the drop is not a drop of its own
    assert st.plateaus(steps, _staircase(steps, [2.0, 0.42, 0.39], [800, 1500]))["n_drops"] == 1
    smooth = 0.4 + 1.6 * np.exp(-steps / 400.0)  # no plateau before the fall
    out = st.plateaus(steps, smooth)
    assert out["n_drops"] == 0 and len(out["plateaus"]) == 1
    unfinished = _staircase(steps, [2.0, 1.3, 0.5], [800, 5990], width=60.0)
    out = st.plateaus(steps, unfinished)
    assert out["ends_falling"] and out["n_drops"] == 2
    assert st.plateaus(steps, np.full(steps.shape, 2.0)) == {
        "plateaus": [{"start": 0, "end": int(steps[-1]), "level": pytest.approx(2.0)}], "n_drops": 0,
        "drop_steps": [], "ends_falling": False}


def test_verdict_rule():
    stair = {"n_drops": 3, "in_order": True}
    unordered = {"n_drops": 3, "in_order": False}
    once, twice = {"n_drops": 1}, {"n_drops": 2}
    assert st.saddle_to_saddle(stair, 4) and not st.saddle_to_saddle({"n_drops": 2, "in_order": True}, 4)
    assert st.verdict([stair, stair, unordered], [once, once, twice], 4) == "held"
    assert st.verdict([stair, stair, unordered], [twice, twice, once], 4) == "held in part"
    assert st.verdict([stair, unordered, unordered], [once, once, once], 4) == "did not hold"
    assert st.verdict([stair, unordered], [once, once], 4) == "did not hold"  # half is not a majority


def _tiny(model: str) -> ExperimentConfig:
    config = study.configs("quick")[model]
    return dataclasses.replace(config, train=TrainConfig(steps=60, batch_size=64, n_seeds=2, eval_every=20, ckpt_every=60,
                                                         eval_tasks=256, final_eval_tasks=256, reference="gd"))


def test_registered_configs():
    for model, fields in study.MODELS.items():
        for mode in ("full", "quick"):
            config = study.configs(mode)[model]
            assert config.model.n_heads == fields["n_heads"] and config.model.key_size == fields["key_size"]
            assert config.optim.name == "sgd" and config.optim.grad_clip == 0
            lam, _ = st.spectrum(config.task)
            np.testing.assert_allclose(lam, [1.6, 1.2, 0.8, 0.4], rtol=1e-12)


@pytest.mark.parametrize("model", ["sep", "merged"])
def test_trajectory_has_the_weights_icl_train_trains(tmp_path, model):
    config = _tiny(model)
    traj = st.trajectory(config, tmp_path / "traj")
    assert traj["steps"].tolist() == [0, 20, 40, 60] and traj["loss"].shape == (4, 2)
    train.train(config, tmp_path / "run", progress=False, echo=lambda *_: None)
    _, params, _ = train.load_params(tmp_path / "run", config)
    for name in ("query", "key", "value", "out"):
        np.testing.assert_array_equal(traj[name][-1], np.asarray(params["layers"][0][name]))
    log = [r for r in rundir.read_log(tmp_path / "run") if "loss" in r and "step" in r]
    np.testing.assert_allclose(traj["loss"], [r["loss"] for r in log], rtol=1e-5)
    again = st.trajectory(config, tmp_path / "traj")  # the cached file
    np.testing.assert_array_equal(again["loss"], traj["loss"])
    summary = st.summarise(config, traj)
    assert len(summary["seeds"]) == 2 and np.asarray(summary["projections"]).shape == (4, 2, study.D)


def test_closed_forms_need_gaussian_zero_mean_tasks():
    with pytest.raises(ValueError, match="Gaussian"):
        st.task_reference(tasks.get("linear", d=3, n_ctx=5))
