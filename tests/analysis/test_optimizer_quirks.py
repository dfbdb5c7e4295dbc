"""icl.analysis.optimizer_quirks: the optimisers' directions, the custom training loop against the
library's trainer, steps to a target, and the noise statistics against closed forms and Monte Carlo
(kurtosis of known laws, the Hill index of Pareto samples, the Gaussian reference's covariance)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from icl import tasks, trainer
from icl.analysis import optimizer_quirks as oq
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.models import ModelConfig


def _config(optim: OptimConfig | None = None, n_seeds: int = 2) -> ExperimentConfig:
    return ExperimentConfig(
        name="quirks", task=tasks.get("linear", d=3, n_ctx=6, input_dist="gaussian"),
        model=ModelConfig(n_layers=2, attention="linear", init_scale=0.05),
        optim=optim or OptimConfig(name="adam", lr=1e-2, b2=0.999, grad_clip=1.0),
        train=TrainConfig(steps=20, batch_size=16, n_seeds=n_seeds, eval_every=10, ckpt_every=20, eval_tasks=64, final_eval_tasks=64),
        compare_against=("gd",),
    )


# -- the update directions ------------------------------------------------------------------------


def _run_direction(opt, grads, lr):
    """Parameters after applying -lr * direction to a fixed sequence of gradients from theta = 0."""
    theta = jnp.zeros_like(grads[0])
    state = opt.init(theta)
    for g in grads:
        u, state = opt.update(g, state, theta)
        theta = theta - lr * u
    return np.asarray(theta)


def test_directions_match_their_formulas():
    grads = [jnp.asarray(np.random.default_rng(i).standard_normal(4)) for i in range(5)]
    lr, mu = 0.1, oq.MOMENTUM
    # sgd: the sum of the gradients
    np.testing.assert_allclose(_run_direction(oq.direction("sgd"), grads, lr), -lr * np.sum(grads, 0), atol=1e-12)
    # heavy ball: m <- g + mu m, theta <- theta - lr m
    m, theta = np.zeros(4), np.zeros(4)
    for g in grads:
        m = np.asarray(g) + mu * m
        theta = theta - lr * m
    np.testing.assert_allclose(_run_direction(oq.direction("momentum"), grads, lr), theta, atol=1e-12)
    # and it is optax.sgd with momentum (whose update already carries the minus sign of the step)
    np.testing.assert_allclose(-_run_direction(optax.sgd(1.0, momentum=mu), grads, lr), theta, atol=1e-12)
    # adam with bias correction
    b1, b2, eps = 0.9, 0.999, 1e-8
    m, v, theta = np.zeros(4), np.zeros(4), np.zeros(4)
    for t, g in enumerate(grads, 1):
        g = np.asarray(g)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        theta = theta - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(_run_direction(oq.direction("adam"), grads, lr), theta, atol=1e-12)
    # clipping rescales a gradient of norm > clip to norm clip before the direction
    big = [jnp.asarray([3.0, 4.0, 0.0, 0.0])]
    np.testing.assert_allclose(_run_direction(oq.direction("sgd", clip=1.0), big, 1.0), [-0.6, -0.8, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="direction"):
        oq.direction("lion")


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_train_runs_is_the_trainers_run(name):
    """The custom loop's run of seed s is the library trainer's (same init, tasks, loss, clip and
    update): 20 steps of Adam and of SGD at lr 1e-2, float64."""
    config = _config(OptimConfig(name=name, lr=1e-2, b2=0.999, grad_clip=1.0))
    tr = trainer.Trainer(config)
    params, opt_state = tr.init()
    params, _, losses = tr.train_chunk(params, opt_state, tr.keys(), 0, 20)
    out = oq.train_runs(config, name, [1e-2], [0, 1], 20, 10, keep=(0, 20), clip=1.0)
    for a, b in zip(jax.tree.leaves(out["params"][20]), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-9, atol=1e-12)
    for a, b in zip(jax.tree.leaves(out["params"][0]), jax.tree.leaves(tr.init()[0]), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    # the chunk means of the training loss are the trainer's per-step losses averaged
    np.testing.assert_allclose(out["train_loss"], np.asarray(losses).reshape(2, 10, 2).mean(1).T, rtol=1e-9)
    assert out["steps"] == [0, 10, 20] and out["loss"].shape == (2, 3)


def test_train_runs_grid_runs_are_independent():
    """A (lr, seed) run in a grid is the run trained alone; lr-major layout; a diverging lr gives
    nan in its own rows only."""
    config = _config()
    both = oq.train_runs(config, "momentum", [1e-2, 1e3], [0, 1], 20, 10)
    alone = oq.train_runs(config, "momentum", [1e-2], [1], 20, 10)
    assert both["lr"] == [1e-2, 1e-2, 1e3, 1e3] and both["seed"] == [0, 1, 0, 1]
    np.testing.assert_allclose(both["loss"][1], alone["loss"][0], rtol=1e-10)
    assert np.isfinite(both["loss"][:2]).all() and not np.isfinite(both["loss"][2:, -1]).any()
    with pytest.raises(ValueError, match="multiple of eval_every"):
        oq.train_runs(config, "sgd", [1e-2], [0], 15, 10)


def test_pick_lr_steps_to_target_and_speedup():
    picked = oq.pick_lr([0.1, 0.2, 0.4], [[1.0, 3.0], [0.5, 0.7], [np.nan, 0.1]])
    assert picked["best_lr"] == 0.2 and picked["score"][:2] == [2.0, 0.6] and picked["score"][2] == np.inf
    assert not picked["at_edge"] and oq.pick_lr([1, 2], [[1.0], [0.5]])["at_edge"]
    with pytest.raises(ValueError, match="every lr"):
        oq.pick_lr([1, 2], [[np.nan], [np.inf]])
    steps = [0, 10, 20, 30]
    assert oq.steps_to_target(steps, [2.0, 1.0, 0.5, 0.4], 0.5) == 20
    assert oq.steps_to_target(steps, [2.0, np.nan, np.nan, np.nan], 0.5) is None
    assert oq.steps_to_target(steps, [0.1, 1.0, 1.0, 1.0], 0.5) == 0
    got = oq.speedup([10, 20, None, 0], [40, None, 30, 10], horizon=100)
    assert got == {"ratio": [4.0, 5.0, None, 10.0], "censored": [False, True, False, False]}


# -- noise statistics -----------------------------------------------------------------------------


def test_kurtosis_closed_forms():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    m = x.mean()
    naive = sum((v - m) ** 4 for v in x) / len(x) / (sum((v - m) ** 2 for v in x) / len(x)) ** 2
    assert oq.kurtosis(x) == pytest.approx(naive)
    rng = np.random.default_rng(0)
    n = 400_000  # Monte Carlo: Gaussian 3, uniform 1.8, Laplace 6 (sampling sd ~0.01, 0.003, 0.05)
    assert oq.kurtosis(rng.standard_normal(n)) == pytest.approx(3.0, abs=0.05)
    assert oq.kurtosis(rng.uniform(size=n)) == pytest.approx(1.8, abs=0.02)
    assert oq.kurtosis(rng.laplace(size=n)) == pytest.approx(6.0, abs=0.3)
    np.testing.assert_allclose(oq.kurtosis(np.stack([x, 2 * x + 1], 1), axis=0), [naive, naive])  # affine-invariant, per column


def test_hill_index_formula_pareto_and_gaussian():
    r = np.array([10.0, 5.0, 4.0, 2.0, 1.0, 0.5])
    k = 2  # round(0.4 x 6) = 2: the two largest against the third
    assert oq.hill_index(r, tail_fraction=0.4) == pytest.approx(k / (np.log(10 / 4) + np.log(5 / 4)))
    rng = np.random.default_rng(1)
    n, frac = 40_000, 0.05
    k = round(frac * n)
    for alpha in (1.0, 2.0, 3.0):
        pareto = (1.0 - rng.uniform(size=n)) ** (-1.0 / alpha)  # P(R > r) = r^-alpha, r >= 1
        inv = 1.0 / oq.hill_index(pareto, frac)
        assert inv == pytest.approx(1.0 / alpha, abs=4.0 / (alpha * np.sqrt(k)))  # 1/alpha_k: mean 1/alpha, sd 1/(alpha sqrt k)
    # a light tail: |N(0, 1)| and the top 5 % gives ~6 at any n; Gaussian vector norms concentrate: far more
    half_normal = oq.hill_index(np.abs(rng.standard_normal(n)), frac)
    assert 5.0 < half_normal < 9.0
    assert oq.hill_index(np.linalg.norm(rng.standard_normal((n, 50)), axis=1), frac) > 20.0
    with pytest.raises(ValueError, match="positive"):
        oq.hill_index([1.0, 0.0, 2.0])


def test_gaussian_reference_has_the_empirical_covariance(key):
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((40, 3)) @ np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.1]]) + 5.0
    ref = oq.gaussian_reference(noise, key, n=200_000)
    target = np.cov(noise, rowvar=False)
    np.testing.assert_allclose(np.cov(ref, rowvar=False), target, atol=0.02 * np.abs(target).max())
    np.testing.assert_allclose(ref.mean(0), 0.0, atol=0.02)
    assert oq.gaussian_reference(noise, key).shape == noise.shape


def test_norm_statistics_tell_pareto_radii_from_gaussian(key):
    """Noise with Pareto(1.5) radii in random directions: Hill ~1.5, huge kurtosis; its Gaussian
    reference and Gaussian noise: Hill far above 3, kurtosis ~3 (chi with 20 dof: 3.0 - small)."""
    rng = np.random.default_rng(3)
    n, p = 20_000, 20
    directions = rng.standard_normal((n, p))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    heavy = directions * (1.0 - rng.uniform(size=(n, 1))) ** (-1.0 / 1.5)
    s = oq.norm_statistics(heavy)
    assert s["hill_index"] == pytest.approx(1.5, rel=0.15) and s["kurtosis"] > 50.0 and s["max_over_median"] > 100
    gauss = oq.norm_statistics(rng.standard_normal((n, p)))
    assert gauss["hill_index"] > 10.0 and gauss["kurtosis"] == pytest.approx(3.0, abs=0.2)
    assert gauss["coordinate_kurtosis_median"] == pytest.approx(3.0, abs=0.15)
    r = oq.gradient_noise(heavy, key)  # the noise about its mean, and its Gaussian reference
    assert r["gaussian"]["hill_index"] > 5.0 and r["gaussian"]["kurtosis"] < 5.0
    assert r["noise"] == oq.norm_statistics(heavy - heavy.mean(0)) and r["full_grad_norm"] == pytest.approx(np.linalg.norm(heavy.mean(0)))
    assert list(r["noise_norms"]) == sorted(np.linalg.norm(heavy - heavy.mean(0), axis=1))
    # a parameter with no gradient has no noise: left out of the coordinate kurtosis
    assert np.isfinite(oq.norm_statistics(np.concatenate([rng.standard_normal((100, 3)), np.zeros((100, 1))], 1))
                       ["coordinate_kurtosis_median"])


def test_gradient_sampler_and_noise_against_a_loop(key):
    config = _config()
    params = trainer.init_params(config, 0)
    grad = oq.model_gradient(config)
    got = oq.gradient_sampler(grad, config.task.sample, 5, 4, map_batch=2)(params, key)
    for b in range(5):
        want = jax.flatten_util.ravel_pytree(grad(params, config.task.sample(jax.random.fold_in(key, b), 4)))[0]
        np.testing.assert_allclose(got[b], want, rtol=1e-10, atol=1e-14)
    xi, g_bar = oq.noise_of(got)
    np.testing.assert_allclose(g_bar, np.mean(got, 0))
    np.testing.assert_allclose(xi.sum(0), 0.0, atol=1e-12)
    # the model gradient is the gradient of the training loss of icl.train
    batch = config.task.sample(key, 8)
    want = jax.grad(lambda p: trainer.objective_loss("query", trainer.model_spec(config).model(p), batch))(params)
    for a, b in zip(jax.tree.leaves(grad(params, batch)), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b)


def test_linear_control_gradient_closed_form(key):
    task = dataclasses.replace(tasks.get("linear", d=3, n_ctx=4, input_dist="gaussian"), n_query=2)
    batch = task.sample(key, 5)
    theta = jnp.asarray([0.5, -1.0, 2.0])
    x, y = np.asarray(batch.x_query).reshape(-1, 3), np.asarray(batch.y_query).reshape(-1)
    want = ((x @ np.asarray(theta) - y)[:, None] * x).mean(0)  # d/dtheta 0.5 mean (theta . x - y)^2
    np.testing.assert_allclose(oq.linear_control_gradient()(theta, batch), want, rtol=1e-12)
