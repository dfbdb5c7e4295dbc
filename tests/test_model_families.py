"""The model-family contract (`icl.models.registry`): every registered family, at its default
(CPU-sized) config and for every objective it supports, predicts through the one interface,
never reads what it must not (the query's label, other queries, later positions), trains through
the real loop, resumes bit-for-bit, and compiles ahead of time (`icl aot`'s cpu target always;
TPU / GPU with the [aot] extra). A new family is picked up here with no edit to this file."""

import dataclasses
import importlib.util
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import aot, models, tasks, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig, apply_overrides

D, N, M = 3, 6, 2
CASES = [
    pytest.param(name, objective, id=f"{name}-{objective}")
    for name in models.names() for objective in models.family(name)().objectives()
]


def experiment(name: str, objective: str, **train_kw) -> ExperimentConfig:
    return ExperimentConfig(
        name=f"contract_{name}",
        task=tasks.get("linear", d=D, n_ctx=N, n_query=M),
        model=models.family(name)(),
        optim=OptimConfig(name="adam", lr=1e-2),
        train=TrainConfig(**{**dict(steps=30, batch_size=16, eval_every=10, ckpt_every=10, eval_tasks=32,
                                    final_eval_tasks=64, objective=objective, dtype="float64"), **train_kw}),
    )


def sequence(key, b=4, t=N + 1):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (b, t, D)), jax.random.normal(ky, (b, t))


def test_registry_lists_families_and_rejects_bad_names():
    assert "lsa" in models.names()
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        models.family("nope")
    with pytest.raises(ValueError, match="already registered"):
        models.register("lsa")(dataclasses.dataclass(frozen=True)(type("Again", (), {"build": None, "objectives": None})))
    with pytest.raises(ValueError, match="registered model family"):
        models.build(object(), 3)
    with pytest.raises(ValueError, match="--set 'model.nope'"):
        apply_overrides(ExperimentConfig(), ["model.nope=1"])


@pytest.mark.parametrize("name", models.names())
def test_config_round_trips_and_switches_family_from_the_command_line(name):
    config = apply_overrides(ExperimentConfig(), [f"model={name}"])
    assert type(config.model) is models.family(name)
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["model"]["family"] == name


@pytest.mark.parametrize("name", models.names())
def test_query_predictions_read_only_the_context_and_their_own_query(name):
    """predict -> [B, M]; the prediction of query m does not change with another query, and a
    single query [B, d] gives [B]."""
    model = models.build(models.family(name)(), D, jax.random.key(1))
    batch = tasks.get("linear", d=D, n_ctx=N, n_query=M).sample(jax.random.key(2), 4)
    y_hat = model.predict(batch.x_ctx, batch.y_ctx, batch.x_query)
    assert y_hat.shape == (4, M) and bool(jnp.all(jnp.isfinite(y_hat)))
    np.testing.assert_array_equal(model(batch), y_hat)
    moved = batch.x_query.at[:, 1].add(3.0)
    np.testing.assert_allclose(model.predict(batch.x_ctx, batch.y_ctx, moved)[:, 0], y_hat[:, 0], rtol=1e-12, atol=1e-14)
    single = model.predict(batch.x_ctx, batch.y_ctx, batch.x_query[:, 0])
    assert single.shape == (4,)
    np.testing.assert_allclose(single, y_hat[:, 0], rtol=1e-12, atol=1e-14)


CAUSAL = [name for name in models.names() if "causal" in models.family(name)().objectives()]


@pytest.mark.parametrize("name", CAUSAL)
def test_prefix_predictions_never_read_the_present_label_or_the_future(name):
    """d yhat_t / d y_s = 0 and d yhat_t / d x_s = 0 for s > t, d yhat_t / d y_t = 0; and the last
    position of predict_prefixes is the query prediction from the context before it."""
    model = models.build(models.family(name)(), D, jax.random.key(3))
    x, y = sequence(jax.random.key(4))
    t = x.shape[1]
    jac_y = jax.jacobian(lambda y_: model.predict_prefixes(x, y_)[0])(y)[:, 0]  # [T (output), T (input)]
    jac_x = jax.jacobian(lambda x_: model.predict_prefixes(x_, y)[0])(x)[:, 0]  # [T, T, d]
    allowed_y = np.tril(np.ones((t, t)), -1)  # y_s for s < t only
    allowed_x = np.tril(np.ones((t, t)))  # x_s for s <= t
    assert np.all(np.asarray(jac_y)[allowed_y == 0] == 0)
    assert np.all(np.asarray(jac_x)[allowed_x == 0] == 0)
    assert np.abs(np.asarray(jac_y)[allowed_y == 1]).max() > 0  # it does read the past
    last = model.predict(x[:, :-1], y[:, :-1], x[:, -1])
    np.testing.assert_allclose(model.predict_prefixes(x, y)[:, -1], last, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "objective"), CASES)
def test_trains_evaluates_and_resumes_bit_for_bit(tmp_path, name, objective):
    """Through `train.train`: the loss falls, the summary compares with the baselines, and a run
    stopped after its step-20 checkpoint and resumed ends with the parameters of an unbroken run."""
    config = experiment(name, objective)
    summary = train.train(config, tmp_path / "straight", progress=False)
    log = train.rundir.read_log(tmp_path / "straight")
    assert log[-1]["loss"] < log[0]["loss"]
    assert set(summary["solvers"]) == set(config.compare_against)
    assert np.isfinite(summary["model"]["loss"][0])
    broken = tmp_path / "broken"
    assert train.train(config, broken, until_step=25, progress=False) == {"stopped_at": 25}
    shutil.rmtree(broken / "checkpoints" / "25", ignore_errors=True)
    assert train.train(config, broken, progress=False)["resumed_from"] == 20
    straight = train.load_params(tmp_path / "straight")[1]
    jax.tree.map(np.testing.assert_array_equal, straight, train.load_params(broken)[1])


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


AOT_EXTRA = "needs the [aot] extra: pip install -e '.[test,aot]'"
TARGETS = [
    "cpu",
    pytest.param("tpu:v5e:2x2", marks=pytest.mark.skipif(not _installed("libtpu"), reason=AOT_EXTRA)),
    pytest.param("gpu:h100:1", marks=pytest.mark.skipif(
        not (_installed("jax_plugins.xla_cuda12") and _installed("nvidia.cuda_nvcc")), reason=AOT_EXTRA)),
]


@pytest.mark.parametrize(("name", "objective"), CASES)
@pytest.mark.parametrize("target", TARGETS)
def test_compiles_ahead_of_time(name, objective, target, request):
    if target.startswith("gpu") and objective != "causal":
        pytest.skip("GPU: the causal objective only, to keep CI short (both objectives compile for TPU)")
    if name == "gpt2" and target.startswith("gpu") and "--xla_gpu_enable_triton_gemm=false" not in os.environ.get("XLA_FLAGS", ""):
        # XLA:GPU (jax 0.10.2) cannot tile the read-in's dot (contraction d + 1 < 16) at "highest"
        # precision with Triton: "Couldn't find output tile sizes"; cuBLAS (the flag) compiles it
        request.applymarker(pytest.mark.xfail(raises=aot.AotCompileError, strict=True,
                                              reason="XLA:GPU Triton GEMM tiling; XLA_FLAGS=--xla_gpu_enable_triton_gemm=false"))
    config = experiment(name, objective, batch_size=8, eval_tasks=8, final_eval_tasks=8, dtype="float32")
    report = aot.compile_experiment(config, target, programs=("train", "eval"))
    assert {p.name for p in report.programs} >= {"train", "eval"}
