"""The matmul precision policy (icl/precision.py), checked on the lowered StableHLO, so it holds for
TPU and GPU without one: every dot of the reference numerics is HIGHEST even when the caller jits
them under jax.default_matmul_precision("bfloat16"); training follows train.matmul_precision."""

import functools
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, constructions, experiments, models, probes, rundir, solvers, tasks, train, verify
from icl.config import ExperimentConfig, TrainConfig, apply_overrides

D, N = 3, 5
DOT = re.compile(r"stablehlo\.dot\w*")
PRECISION = re.compile(r"precision = \[(\w+), (\w+)\]")


def precisions(lowered) -> list[str]:
    """The precision of every dot in a lowered program ("HIGHEST", ...; the line if unreadable)."""
    text = lowered.as_text()
    assert "stablehlo.convolution" not in text  # only dots are counted
    out = []
    for line in text.splitlines():
        if DOT.search(line):
            match = PRECISION.search(line)
            out.append(match.group(1) if match and match.group(1) == match.group(2) else line.strip())
    return out


def dot_precisions(fn, *args, context="bfloat16") -> list[str]:
    """The precision of every dot of `jax.jit(fn)`, lowered by a caller under `context`."""
    with jax.default_matmul_precision(context):
        return precisions(jax.jit(fn).lower(*args))


@pytest.fixture(scope="module")
def batch():
    b = tasks.get("linear", d=D, n_ctx=N).sample(jax.random.key(0), 4)
    return jax.tree.map(lambda a: a.astype(jnp.float32), b)  # float32: the precision setting's domain


POOL = np.random.default_rng(0).normal(size=(6, D))
SOLVERS = {
    "gd": dict(lr=0.5, steps=2),
    "gd_plus_plus": dict(lr=0.5, gamma=0.05, steps=2),
    "preconditioned_gd": dict(gamma_matrix=0.1 * np.eye(D)),
    "least_squares": {},
    "ridge": dict(lam=0.1),
    "bayes_ridge": dict(noise_std=0.5),
    "newton": dict(steps=3),
    "lasso": dict(alpha=0.1, steps=3),
    "logistic_regression": dict(steps=2),
    "kernel_ridge": {},
    "averaging": {},
    "dmmse": dict(pool=POOL, noise_std=0.5),
}


def solve(name, hparams, b):
    return solvers.get(name)(b.x_ctx, b.y_ctx, b.x_query, **hparams)


def reference_functions(batch):
    """name -> function of the batch, for every reference entry point that does matmuls."""
    trained = models.build(models.ModelConfig(n_layers=2), D, 0)  # a plain (trained-kind) model
    args = lambda b: (b.x_ctx, b.y_ctx, b.x_query)
    fns = {f"solvers.{name}": functools.partial(solve, name, hp) for name, hp in SOLVERS.items()}
    gd_model = constructions.gd_model(D, N, lr=0.5, layers=2)
    pp_model = constructions.gd_plus_plus_model(D, N, lr=0.5, gamma=0.05, layers=2)
    fns |= {
        "gd_model (gram path)": lambda b: gd_model(b),
        "gd_model (token path)": lambda b: gd_model.layer_predictions(*args(b), path="tokens"),
        "gd_plus_plus_model": lambda b: pp_model(b),
        "solvers.gd_direction": lambda b: solvers.gd_direction(*args(b)),
        "solvers.prefix_predictions": lambda b: solvers.prefix_predictions("ridge(lam=0.1)", *args(b)),
        "vmap(solvers.gd)": lambda b: jax.vmap(lambda x: solvers.gd(x, b.y_ctx, b.x_query, lr=0.5))(jnp.stack([b.x_ctx] * 2)),
        "compare.compare (trained model vs gd)": lambda b: compare.compare(trained.predict, lambda *a: solvers.gd(*a, lr=0.5), b),
        "probes.implicit_fit (trained model)": lambda b: probes.implicit_fit(trained.predict, b.x_ctx, b.y_ctx, jnp.eye(D)).weights,
        "verify.max_errors": lambda b: verify.max_errors(b, 0.5, 2),
    }
    return fns


def test_reference_numerics_are_highest_under_a_bfloat16_caller(batch):
    found = {name: dot_precisions(fn, batch) for name, fn in reference_functions(batch).items()}
    print({name: len(p) for name, p in found.items()})  # pytest -s: how many dots each check covers
    assert [name for name, p in found.items() if not p] == []  # every check sees dots
    assert {name: len(p) - p.count("HIGHEST") for name, p in found.items() if p.count("HIGHEST") < len(p)} == {}


def test_the_check_sees_a_bfloat16_caller(batch):
    """Without the policy (a trained model called directly) every dot follows the caller: the
    check above would fail if a decorator were removed."""
    trained = models.build(models.ModelConfig(n_layers=2), D, 0)
    precisions = dot_precisions(lambda b: trained(b), batch)
    assert len(precisions) > 0 and precisions.count("HIGHEST") == 0
    assert set(dot_precisions(lambda b: trained(b), batch, context="highest")) == {"HIGHEST"}


@pytest.mark.parametrize("setting, expected", [(None, "HIGHEST"), ("default", "DEFAULT"), ("tensorfloat32", "HIGH")])
def test_train_chunk_follows_config_and_evaluation_is_highest(setting, expected):
    config = experiments.get("tiny")
    if setting is not None:
        config = apply_overrides(config, [f"train.matmul_precision={setting}"])
    trainer = train.Trainer(config)
    params, opt_state = trainer.init()
    keys, eval_batch = trainer.keys(), config.task.sample(jax.random.key(1), 8)
    with jax.default_matmul_precision("bfloat16"):  # the caller's setting does not leak in
        step = precisions(trainer._chunk.lower(params, opt_state, keys, 2, jnp.asarray(0, jnp.int32)))
        evaluation = precisions(trainer.evaluator(train.reference_solver(config)[0]).lower(params, eval_batch))
    assert len(step) > 0 and [p for p in step if p != expected] == []
    assert len(evaluation) > 0 and [p for p in evaluation if p != "HIGHEST"] == []


def test_matmul_precision_config_and_old_run_configs(tmp_path):
    assert TrainConfig().matmul_precision == "highest"
    with pytest.raises(ValueError, match="train: matmul_precision must be one of default, high, highest"):
        TrainConfig(matmul_precision="fast")
    config = experiments.get("tiny")
    saved = json.loads(config.to_json())
    del saved["train"]["matmul_precision"]  # a config.json written before the field existed
    assert ExperimentConfig.from_dict(saved) == config
    (tmp_path / train.CONFIG).write_text(json.dumps(saved))
    rundir.check_config(tmp_path, config, has_checkpoint=True)  # resumes: the missing field counts as its default
    with pytest.raises(train.CheckpointMismatch, match="train.matmul_precision"):
        rundir.check_config(tmp_path, has_checkpoint=True, config=apply_overrides(config, ["train.matmul_precision=default"]))
