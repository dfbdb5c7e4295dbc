"""The shared contract every registered task family passes, plus the linear family's prior."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import solvers, tasks
from icl.tasks import base
from icl.tasks.base import Batch, default_baselines

FAMILY_DEFAULTS = {name: {} for name in tasks.names()}  # a new family is tested with its defaults


@pytest.mark.parametrize("name", tasks.names())
def test_contract(name):
    task = tasks.get(name, **FAMILY_DEFAULTS[name])
    b, n, m, d = 5, task.n_ctx, task.n_query, task.d
    batch = task.sample(jax.random.key(1), b)
    assert batch.x_ctx.shape == (b, n, d) and batch.y_ctx.shape == (b, n)
    assert batch.x_query.shape == (b, m, d) and batch.y_query.shape == (b, m)
    assert batch.w is None or batch.w.shape[0] == b
    for leaf in jax.tree.leaves(batch):
        assert leaf.dtype == jnp.float64  # follows the default float dtype (x64 in tests)
        assert bool(jnp.all(jnp.isfinite(leaf)))
    again = task.sample(jax.random.key(1), b)
    other = task.sample(jax.random.key(2), b)
    jax.tree.map(np.testing.assert_array_equal, batch, again)  # a pure function of the key
    assert not np.allclose(batch.x_ctx, other.x_ctx) and not np.allclose(batch.y_ctx, other.y_ctx)
    # tasks in a batch differ (whole label rows, so discrete labels such as +-1 signs qualify too)
    assert len({np.asarray(row).tobytes() for row in batch.y_ctx}) == b
    sampled = jax.jit(task.sample, static_argnums=1)(jax.random.key(1), b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-12), batch, sampled)
    # its baselines name registered solvers and feature maps (what `icl train` will compare with)
    for spec in (*getattr(type(task), "baselines", ()), *default_baselines(task)):
        solvers.parse_spec(spec)


@dataclasses.dataclass(frozen=True)
class _Misspelled:
    """A family whose baselines hold a typo (a class attribute, set per test)."""

    baselines: ClassVar[tuple[str, ...]] = ("least_squares", "lest_squares")
    d: int = 2
    n_ctx: int = 4
    n_query: int = 1

    def sample(self, key, batch_size):
        x = jax.random.normal(key, (batch_size, self.n_ctx + self.n_query, self.d))
        return Batch.split(x, x[..., 0], self.n_ctx)


@pytest.mark.parametrize("baselines, match", [
    (("least_squares", "lest_squares"), "task family 'misspelled': baseline 'lest_squares': unknown solver 'lest_squares'"),
    (("ridge(lam=0.1)", "least_squares(features=sqare)"),
     "task family 'misspelled': baseline 'least_squares.features=sqare.'.*unknown feature map 'sqare'"),
])
def test_a_misspelled_baseline_is_refused_at_registration(baselines, match):
    cls = type("Misspelled", (_Misspelled,), {"baselines": baselines, "__module__": __name__})
    cls = dataclasses.dataclass(frozen=True)(cls)
    with pytest.raises(ValueError, match=match):
        tasks.register("misspelled")(cls)
    assert "misspelled" not in tasks.names()


def test_baselines_of_families_registered_before_the_solvers_are_checked_when_they_load():
    """Tasks sit below solvers: a family registered before `icl.solvers` installs its check is
    checked then; a `default_baselines()` method's result is checked when it is asked for."""
    saved = list(base._BASELINE_CHECK)
    base._BASELINE_CHECK.clear()  # as before icl.solvers is imported
    try:
        tasks.register("misspelled")(dataclasses.dataclass(frozen=True)(type("M", (_Misspelled,), {"__module__": __name__})))
        with pytest.raises(ValueError, match="task family 'misspelled': baseline 'lest_squares': unknown solver"):
            base.install_baseline_check(solvers.check_baselines)
    finally:
        base._REGISTRY.pop("misspelled", None)
        base._BASELINE_CHECK[:] = saved
    assert base._BASELINE_CHECK == [solvers.check_baselines]

    @dataclasses.dataclass(frozen=True)
    class Dynamic(_Misspelled):
        baselines: ClassVar[tuple[str, ...]] = ("least_squares",)
        family: ClassVar[str] = "dynamic"

        def default_baselines(self):
            return ("least_squares", "rigde(lam=1)")

    with pytest.raises(ValueError, match="task family 'dynamic': baseline 'rigde.lam=1.': unknown solver 'rigde'"):
        default_baselines(Dynamic())


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown task family 'nope'.*linear.*sine"):
        tasks.get("nope")
    with pytest.raises(ValueError, match="no parameter.*n_contexts.*its parameters are"):
        tasks.get("linear", n_contexts=3)
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        tasks.get("linear", d=0)
    with pytest.raises(ValueError, match="n_ctx must be an integer >= 1"):
        tasks.get("linear", n_ctx=0)
    with pytest.raises(ValueError, match="already registered"):
        tasks.register("linear")(type(tasks.get("linear")))


def test_covariance_errors():
    with pytest.raises(ValueError, match="positive definite"):
        tasks.get("linear", d=2, input_dist="gaussian", covariance=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="must be 3 x 3"):
        tasks.get("linear", d=3, input_dist="gaussian", covariance=np.eye(2))
    with pytest.raises(ValueError, match="needs input_dist='gaussian'"):
        tasks.get("linear", covariance="rotated")
    with pytest.raises(ValueError, match="condition_number must be >= 1"):
        tasks.get("linear", input_dist="gaussian", condition_number=0.5)


@pytest.mark.parametrize(
    "params",
    [
        dict(input_dist="uniform", input_range=0.5),
        dict(input_dist="uniform", input_range=1.0, input_scale=2.0),
        dict(input_dist="gaussian"),
        dict(input_dist="gaussian", covariance="diagonal", condition_number=10.0),
        dict(input_dist="gaussian", covariance="rotated", condition_number=10.0, covariance_seed=3),
        dict(input_dist="gaussian", covariance=((2.0, 0.5, 0.0), (0.5, 1.0, 0.0), (0.0, 0.0, 0.5))),
    ],
)
def test_linear_prior(params):
    """Empirical input covariance matches `input_covariance`; noiseless labels are w . x."""
    task = tasks.get("linear", d=3, n_ctx=20, **params)
    batch = task.sample(jax.random.key(3), 20000)
    x = np.asarray(batch.x_ctx).reshape(-1, 3)
    sigma = task.input_covariance
    # 400k samples: the covariance estimate's std is ~ sqrt(2/400k) * scale ~ 0.3% of the scale.
    np.testing.assert_allclose(np.cov(x.T), sigma, atol=0.02 * np.abs(sigma).max())
    np.testing.assert_allclose(batch.y_ctx, np.einsum("bnd,bd->bn", batch.x_ctx, batch.w), atol=1e-12)
    if params.get("condition_number", 1.0) > 1:
        eig = np.linalg.eigvalsh(sigma)
        np.testing.assert_allclose(eig.max() / eig.min(), params["condition_number"], rtol=1e-9)
        np.testing.assert_allclose(np.trace(sigma), 3.0, rtol=1e-9)


def test_linear_noise_and_weights():
    task = tasks.get("linear", d=4, n_ctx=8, weight_std=2.0, noise_std=0.3)
    batch = task.sample(jax.random.key(4), 20000)
    residual = batch.y_ctx - jnp.einsum("bnd,bd->bn", batch.x_ctx, batch.w)
    assert abs(float(residual.std()) - 0.3) < 0.005  # 160k draws: std error ~0.0005
    assert abs(float(batch.w.std()) - 2.0) < 0.03


def test_sine_parameters_are_independent():
    """The official code draws amplitude and phase from one key (perfectly correlated); we don't."""
    task = tasks.get("sine", n_ctx=40)
    batch = task.sample(jax.random.key(5), 4000)
    # Recover amplitude and phase per task from the noiseless context by least squares on
    # y = a cos(phi) sin(x) + a sin(phi) cos(x).
    x, y = np.asarray(batch.x_ctx[..., 0]), np.asarray(batch.y_ctx)
    feats = np.stack([np.sin(x), np.cos(x)], -1)  # [B, N, 2]
    coef = np.stack([np.linalg.lstsq(f, t, rcond=None)[0] for f, t in zip(feats, y, strict=True)])
    amplitude, phase = np.hypot(*coef.T), np.arctan2(coef[:, 1], coef[:, 0])
    assert amplitude.min() > 0.09 and amplitude.max() < 5.01
    assert phase.min() > -1e-6 and phase.max() < np.pi + 1e-6
    assert abs(np.corrcoef(amplitude, phase)[0, 1]) < 0.05  # independent draws: |r| ~ 0.016
