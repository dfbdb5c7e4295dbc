"""The field's task families (icl/tasks/{sparse,pool,classification,relu_net,autoregressive}.py and the
linear and sine families), their declared baselines, the configs that default to them, and the plugin API: a
family defined in this module trains and is compared with no edit anywhere else."""

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import cli, compare, experiments, solvers, tasks, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig, apply_overrides
from icl.models import ModelConfig
from icl.tasks.base import Batch, check_positive_int, default_baselines

NEW_FAMILIES = ("sparse_linear", "linear_pool", "linear_classification", "relu_net", "autoregressive")


@functools.cache
def _batch(task, n_tasks=20000, seed=0):
    """20,000 tasks, shared by a family's prior test and its baseline test: a sampler's compile
    (~1.5 s CPU, mostly threefry) dominates these tests, so each task is compiled once."""
    return jax.jit(task.sample, static_argnums=1)(jax.random.key(seed), n_tasks)


def _losses(task, n_tasks=2000, seed=0, specs=None) -> dict[str, float]:
    """Loss of each of the task's default baselines (or `specs`) and of predicting 0 on the first
    n_tasks tasks of `_batch(task)`. GD's optimal lr (optimal_gd_lr's closed form) is fitted on
    the remaining 18,000: optimal_gd_lr's own 65,536 eager draws cost seconds per family."""
    batch = jax.tree.map(lambda a: a[:n_tasks], _batch(task, seed=seed))
    out = {"zero": float(compare.loss(jnp.zeros_like(batch.y_query), batch.y_query))}
    for spec in specs or default_baselines(task):
        if spec == "gd":  # lr* = E[a y_q] / E[a^2] on the tasks not evaluated
            rest = jax.tree.map(lambda a: a[n_tasks:], _batch(task, seed=seed))
            a = solvers.gd_direction(rest.x_ctx, rest.y_ctx, rest.x_query)
            spec = f"gd(lr={float(jnp.sum(a * rest.y_query) / jnp.sum(a * a))})"
        predict, _ = compare.solver_predictor(spec, task, jax.random.key(seed + 1))
        y_hat = jax.jit(predict)(batch.x_ctx, batch.y_ctx, batch.x_query)
        out[spec.split("(lr=")[0]] = float(compare.loss(y_hat, batch.y_query))
    return out


# -- the plugin API ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", tasks.names())
def test_every_family_declares_registered_baselines(name):
    cls = tasks.family(name)
    assert isinstance(cls.baselines, tuple) and cls.baselines, f"{name} declares no baselines"
    declared = {solvers.parse_spec(spec)[0] for spec in cls.baselines}
    defaults = {solvers.parse_spec(spec)[0] for spec in default_baselines(cls())}
    assert defaults <= declared


def test_new_families_are_registered():
    assert set(NEW_FAMILIES) <= set(tasks.names())


def test_linear_defaults_keep_the_existing_behaviour_and_grow_with_noise_and_covariance():
    assert ExperimentConfig().compare_against == ("gd", "least_squares")
    assert experiments.get("tiny").compare_against == ("gd", "least_squares")
    noisy = ExperimentConfig(task=tasks.get("linear", noise_std=0.5, weight_std=1.0))
    assert noisy.compare_against == ("gd", "least_squares", "ridge(lam=0.025)", "ridge(lam=2.5)", "bayes_ridge")
    rotated = tasks.get("linear", d=3, input_dist="gaussian", covariance="rotated", condition_number=5.0)
    assert ExperimentConfig(task=rotated).compare_against == ("gd", "least_squares", "preconditioned_gd", "newton")


def test_config_default_follows_the_task_and_explicit_choices_stay():
    tiny = experiments.get("tiny")
    assert apply_overrides(tiny, ["task=sine"]).compare_against == ("kernel_ridge", "knn", "mean_label")
    assert apply_overrides(tiny, ["task.noise_std=0.1"]).compare_against[-1] == "bayes_ridge"
    chosen = apply_overrides(tiny, ["compare_against=gd,ridge(lam=0.1, steps=1)"])
    assert chosen.compare_against == ("gd", "ridge(lam=0.1, steps=1)")
    assert apply_overrides(chosen, ["task=sine"]).compare_against == ("gd", "ridge(lam=0.1, steps=1)")
    assert ExperimentConfig.from_dict(chosen.to_dict()) == chosen
    with pytest.raises(ValueError, match="unknown solver 'nope'"):
        ExperimentConfig(compare_against=("nope",))


def test_solver_predictor_precedence():
    """Explicit hparams beat the spec's, which beat the family's, which beat the generic ones."""
    task = tasks.get("relu_net")
    _, generic = compare.solver_predictor("knn", task, jax.random.key(0))
    assert generic == {"k": 3}
    _, spec = compare.solver_predictor("knn(k=5)", task, jax.random.key(0))
    assert spec == {"k": 5}
    _, explicit = compare.solver_predictor("knn(k=5)", task, jax.random.key(0), k=7)
    assert explicit == {"k": 7}
    _, pool = compare.solver_predictor("dmmse", tasks.get("linear_pool", pool_size=200), jax.random.key(0))
    assert pool["pool"] == "array[200, 8]" and pool["noise_std"] == 0.5
    with pytest.raises(ValueError, match="dmmse needs a pool"):
        compare.solver_predictor("dmmse", task, jax.random.key(0))


def test_icl_list_shows_each_familys_baselines(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in tasks.names():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        for spec in tasks.family(name).baselines:
            assert spec in line


def test_every_family_has_an_experiment_comparing_against_its_baselines():
    from icl.experiments import families

    covered = {config.task.family for config in families.CONFIGS}
    assert set(NEW_FAMILIES) | {"linear", "sine"} <= covered  # linear: noisy and ill-conditioned
    for config in families.CONFIGS:
        assert experiments.get(config.name) is config
        assert config.compare_against == default_baselines(config.task)
    by_name = {c.name: c for c in families.CONFIGS}
    assert "bayes_ridge" in by_name["family_noisy_linear"].compare_against
    assert {"preconditioned_gd", "newton"} <= set(by_name["family_ill_conditioned"].compare_against)


# -- the priors ----------------------------------------------------------------------------------------
SPARSE = tasks.get("sparse_linear")  # d = 10, k = 3, N = 8
POOL = tasks.get("linear_pool", d=4, n_ctx=6, pool_size=8, noise_std=0.5)
CLASSIFICATION = tasks.get("linear_classification")  # d = 10, N = 20
RELU = tasks.get("relu_net")  # d = 4, h = 100, N = 32
AR = tasks.get("autoregressive")  # d = 3, N = 20, sigma = 0.2


def test_sparse_prior():
    batch = _batch(SPARSE)
    nonzero = np.asarray(batch.w) != 0
    assert np.all(nonzero.sum(1) == 3)
    # each coordinate is in the support with probability k / d = 0.3 (std error 0.0032)
    np.testing.assert_allclose(nonzero.mean(0), 0.3, atol=0.015)
    np.testing.assert_allclose(batch.y_ctx, np.einsum("bnd,bd->bn", batch.x_ctx, batch.w), atol=1e-12)
    with pytest.raises(ValueError, match="k .* must be <= d"):
        tasks.get("sparse_linear", d=3, k=4)


def test_pool_prior():
    np.testing.assert_array_equal(POOL.pool, dataclasses.replace(POOL, n_ctx=9).pool)  # a function of the seed
    assert not np.allclose(POOL.pool, dataclasses.replace(POOL, pool_seed=1).pool)
    batch = _batch(POOL)
    w = np.asarray(batch.w)
    match = np.all(np.isclose(w[:, None, :], POOL.pool[None]), axis=-1)  # [B, M]
    assert np.all(match.sum(1) == 1)  # every task is one of the pool's
    np.testing.assert_allclose(match.mean(0), 1 / 8, atol=0.012)  # uniform over the pool (se 0.0023)
    residual = np.asarray(batch.y_ctx) - np.einsum("bnd,bd->bn", batch.x_ctx, w)
    assert abs(residual.std() - 0.5) < 0.005  # 120k draws: se ~0.001
    with pytest.raises(ValueError, match="noise_std must be > 0"):
        tasks.get("linear_pool", noise_std=0.0)


def test_classification_prior():
    clean = _batch(CLASSIFICATION)
    assert set(np.unique(clean.y_ctx)) == {-1.0, 1.0}
    np.testing.assert_array_equal(clean.y_ctx, np.where(np.einsum("bnd,bd->bn", clean.x_ctx, clean.w) >= 0, 1.0, -1.0))
    noisy = dataclasses.replace(CLASSIFICATION, n_ctx=5, flip_prob=0.2).sample(jax.random.key(0), 5000)
    flipped = np.asarray(noisy.y_ctx) != np.where(np.einsum("bnd,bd->bn", noisy.x_ctx, noisy.w) >= 0, 1.0, -1.0)
    assert abs(flipped.mean() - 0.2) < 0.01  # 25k draws: se 0.0025
    with pytest.raises(ValueError, match="flip_prob must be in"):
        tasks.get("linear_classification", flip_prob=0.5)


def test_relu_net_prior_scale():
    """a_j ~ N(0, 2/h) makes E[f(x)^2 | x] = |x|^2, the scale of a linear task with w ~ N(0, I)."""
    batch = _batch(RELU)
    ratio = float(jnp.mean(batch.y_ctx**2) / jnp.mean(jnp.sum(batch.x_ctx**2, -1)))
    assert abs(ratio - 1.0) < 0.05, ratio  # 20k independent networks: se ~0.015


def test_autoregressive_prior():
    """Windows slide along one series, labels follow the AR recursion, and the process is stable."""
    batch = _batch(AR)
    x, y, w = np.asarray(batch.x_ctx), np.asarray(batch.y_ctx), np.asarray(batch.w)
    np.testing.assert_array_equal(x[:, 1:, 0], y[:, :-1])  # the newest value of window i+1 is y_i
    np.testing.assert_array_equal(x[:, 1:, 1:], x[:, :-1, :-1])
    np.testing.assert_array_equal(batch.x_query[:, 0, 0], y[:, -1])
    residual = y - np.einsum("bnd,bd->bn", x, w)
    assert abs(residual.std() - 0.2) < 0.002  # 400k innovations: se 0.0002
    roots = [np.abs(np.roots(np.r_[1.0, -a])).max() for a in w[:200]]
    assert max(roots) < AR.root_radius + 1e-9
    with pytest.raises(ValueError, match="root_radius must be in"):
        tasks.get("autoregressive", root_radius=1.0)


# -- each family against its baselines (measured, fixed seeds) -----------------------------------------
def test_noisy_linear_bayes_ridge_is_best():
    got = _losses(tasks.get("linear", d=5, n_ctx=7, input_dist="gaussian", noise_std=0.5))
    others = [v for k, v in got.items() if k not in ("bayes_ridge", "zero")]
    assert got["bayes_ridge"] < min(others), got
    assert got["least_squares"] > 1.5 * got["bayes_ridge"], got  # N close to d: LS overfits the noise


def test_ill_conditioned_preconditioning_and_newton():
    task = tasks.get("linear", d=4, n_ctx=12, input_dist="gaussian", covariance="rotated", condition_number=20.0)
    got = _losses(task, specs=("gd", "least_squares", "preconditioned_gd", "newton(steps=40)"))
    assert got["preconditioned_gd"] < 0.9 * got["gd"], got
    assert got["least_squares"] < 1e-12 and got["newton(steps=40)"] < 1e-8, got  # noiseless, N > d


def test_sparse_lasso_beats_least_squares():
    got = _losses(SPARSE, n_tasks=1000)
    assert got["lasso"] < 0.25 * got["least_squares"] < got["zero"], got


def test_pool_dmmse_wins_on_the_pool_and_ridge_on_fresh_tasks():
    task = POOL
    on_pool = _losses(task)
    assert on_pool["dmmse"] < 0.8 * on_pool["ridge"], on_pool
    fresh = tasks.get("linear", d=4, n_ctx=6, input_dist="gaussian", noise_std=0.5)
    batch = fresh.sample(jax.random.key(3), 2000)
    y_dmmse = solvers.dmmse(batch.x_ctx, batch.y_ctx, batch.x_query, pool=task.pool, noise_std=0.5)
    y_ridge = solvers.bayes_ridge(batch.x_ctx, batch.y_ctx, batch.x_query, noise_std=0.5)
    assert compare.loss(y_ridge, batch.y_query) < 0.8 * compare.loss(y_dmmse, batch.y_query)


def test_classification_logistic_beats_least_squares():
    got = _losses(CLASSIFICATION)
    assert got["logistic_regression"] < 0.8 * got["least_squares"] < got["zero"], got


def test_autoregressive_least_squares_reaches_the_noise_floor():
    got = _losses(AR)
    floor = 0.5 * 0.2**2  # the innovation's variance / 2
    assert got["ridge"] < 1.25 * floor and got["least_squares"] < 1.25 * floor, got
    assert got["gd"] > 1.5 * got["least_squares"], got  # one GD step cannot undo the correlated inputs
    assert got["zero"] > 2 * floor, got  # the series is predictable beyond its noise


@pytest.mark.parametrize("name", ["relu_net", "sine"])
def test_nonlinear_families_kernel_ridge_is_best(name):
    got = _losses(tasks.get(name))
    assert got["kernel_ridge"] < 0.5 * min(v for k, v in got.items() if k != "kernel_ridge"), got


# -- a family written in this file: one class, one registration line ---------------------------------------
@dataclasses.dataclass(frozen=True)
class ToyAffine:
    """y = w . x + b: linear regression with an intercept, w ~ N(0, I), b ~ N(0, 1), x ~ N(0, I)."""

    baselines: ClassVar[tuple[str, ...]] = ("least_squares", "knn", "mean_label")

    d: int = 2
    n_ctx: int = 8
    n_query: int = 1

    def __post_init__(self):
        check_positive_int("toy_affine task", d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)

    def solver_hparams(self, name: str) -> dict:
        return {"k": 2} if name == "knn" else {}

    def sample(self, key, batch_size):
        key_x, key_w, key_b = jax.random.split(key, 3)
        x = jax.random.normal(key_x, (batch_size, self.n_ctx + self.n_query, self.d))
        w = jax.random.normal(key_w, (batch_size, self.d), x.dtype)
        y = jnp.einsum("bnd,bd->bn", x, w) + jax.random.normal(key_b, (batch_size, 1), x.dtype)
        n = self.n_ctx
        return Batch(x_ctx=x[:, :n], y_ctx=y[:, :n], x_query=x[:, n:], y_query=y[:, n:], w=w)


@pytest.fixture
def toy_family():
    tasks.register("toy_affine")(ToyAffine)  # the one registration line (an import line in icl/tasks/__init__.py)
    try:
        yield "toy_affine"
    finally:
        from icl.tasks import base

        base._REGISTRY.pop("toy_affine")


def test_a_new_family_trains_and_is_compared_with_no_other_edit(toy_family, tmp_path, capsys):
    config = ExperimentConfig(
        name="toy",
        task=tasks.get(toy_family),
        model=ModelConfig(n_layers=1, init_scale=0.02),
        optim=OptimConfig(name="adam", lr=1e-2),
        train=TrainConfig(steps=40, batch_size=64, eval_every=20, ckpt_every=40, eval_tasks=128, final_eval_tasks=500),
    )
    assert config.compare_against == ToyAffine.baselines  # picked up from the family
    summary = train.train(config, tmp_path / "run", progress=False, echo=lambda *_: None)
    table = summary["solvers"]
    assert list(table) == ["least_squares", "knn", "mean_label"]
    assert table["knn"]["hparams"] == {"k": 2}  # the family's hyper-parameters reach the comparison
    for row in table.values():
        assert np.isfinite(row["loss"]) and row["loss"] < summary["zero_loss"]
        assert np.all(np.isfinite(row["preds_diff"]))
    assert np.isfinite(summary["model"]["loss"][0]) and summary["model"]["loss"][0] < summary["zero_loss"]
    # the CLI, the shared tools and the every-prefix curve see it too
    assert cli.main(["list"]) == 0 and "toy_affine" in capsys.readouterr().out
    batch = tasks.get(toy_family).sample(jax.random.key(0), 500)
    curve = solvers.error_curve("least_squares", batch, jax.random.key(1), n_boot=200)
    assert curve["mean"][-1] < 0.7 * curve["mean"][0]  # more examples help
