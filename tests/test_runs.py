"""The runs API on a real tiny run: load, curves, per-seed models, seed stacking, train_in_pieces."""

import dataclasses

import jax
import numpy as np
import pytest

from icl import experiments, runs, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=40, eval_every=20, ckpt_every=20, n_seeds=2))
    run_dir = tmp_path_factory.mktemp("run")
    summary, run = runs.train_run(config, run_dir)
    return config, run_dir, summary, run


def test_load_gives_config_summary_log_and_params(tiny_run):
    config, run_dir, summary, run = tiny_run
    loaded = runs.load(run_dir)
    assert loaded.config == config and loaded.step == 40 and loaded.summary == summary
    steps, losses = loaded.curve("loss")
    assert steps == [0, 20, 40] and len(losses[0]) == 2  # a value per seed
    models = loaded.models()
    batch = config.task.sample(jax.random.key(3), 8)
    assert len(models) == 2 and models[0](batch).shape == batch.y_query.shape  # [B, M]
    np.testing.assert_array_equal(jax.tree.leaves(loaded.params)[0], jax.tree.leaves(run.params)[0])


def lsa_closed_form(layer: dict, batch, absolute: bool = False) -> np.ndarray:
    """One linear 1-head LSA layer on paired tokens e_i = [x_i, y_i] and a query e_q = [x_q, 0],
    from its checkpointed weights alone (numpy float64): with A = W_q W_k^T and B = W_v W_o (row
    convention) the query's label slot moves by sum_i (e_q A e_i^T) (e_i B)_y, the sum over the N
    context tokens, and the model predicts minus that: y_hat = -sum_i (e_q A e_i^T) (e_i B)_y
    (docs/math.md, "Reading a trained layer"). absolute=True: the same sum of the products'
    absolute values, |q| |k|^T etc. (the scale of float rounding errors)."""
    q, k, v, o = (np.asarray(layer[name][0], np.float64) for name in ("query", "key", "value", "out"))
    e = np.concatenate([np.asarray(batch.x_ctx), np.asarray(batch.y_ctx)[..., None]], -1)  # [B, N, d+1]
    e_q = np.concatenate([np.asarray(batch.x_query), np.zeros((*batch.x_query.shape[:2], 1))], -1)  # [B, M, d+1]
    if absolute:
        q, k, v, o, e, e_q = map(np.abs, (q, k, v, o, e, e_q))
        return np.einsum("bmi,il,jl,bnj,bnk,kp,p->bm", e_q, q, k, e, e, v, o[:, -1])
    a, b = q @ k.T, v @ o
    return -np.einsum("bmi,ij,bnj,bnk,k->bm", e_q, a, e, e, b[:, -1])


def test_models_predict_what_the_checkpointed_weights_compute(tiny_run):
    """runs.load(...).models()[s] is seed s's trained model: its predictions equal the closed form
    of the one-layer LSA computed from slice s of the checkpoint's parameters. Tolerance: the run is
    float32, so the model computes in float32: each prediction is a sum of products whose rounding
    is at most a few float32 epsilons (2^-23 ~ 1.2e-7) times the sum of the products' absolute
    values (`lsa_closed_form(..., absolute=True)`); 16 epsilons of that is <= 2e-6 here (largest
    prediction ~0.2, measured error <= 6e-9), under 1 % of the difference between the two seeds'
    models and far below that between two checkpoints (checked: a wrong model fails)."""
    config, run_dir, *_ = tiny_run
    loaded = runs.load(run_dir)
    batch = config.task.sample(jax.random.key(3), 16)
    params = jax.tree.map(np.asarray, loaded.params)
    want = [lsa_closed_form(jax.tree.map(lambda x, s=s: x[s], params)["layers"][0], batch) for s in range(2)]
    assert np.abs(want[0] - want[1]).max() > 1e-3 * np.abs(want[0]).max()  # the seeds' models differ
    for s, model in enumerate(loaded.models()):
        layer = jax.tree.map(lambda x, s=s: x[s], params)["layers"][0]
        bound = 16 * 2.0**-23 * lsa_closed_form(layer, batch, absolute=True)  # [B, M]
        assert bound.max() < 0.01 * np.abs(want[0] - want[1]).max()  # the tolerance is far below the effect
        err = np.abs(np.asarray(model(batch)) - want[s])
        assert np.all(err <= bound), f"seed {s}: |model - closed form| {err.max():.3g} above the float32 bound"
    earlier = np.asarray(runs.load(run_dir, step=20).models()[0](batch))  # the step-20 checkpoint: another model
    assert np.abs(earlier - want[0]).max() > 1e-3 * np.abs(want[0]).max()


def test_stack_unstack_round_trip(tiny_run):
    config, *_ = tiny_run
    stacked = runs.initial_params(config)
    per_seed = runs.unstack_seeds(stacked, config.train.n_seeds)
    assert len(per_seed) == 2
    for got, want in zip(jax.tree.leaves(runs.stack_seeds(per_seed)), jax.tree.leaves(stacked), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(jax.tree.leaves(per_seed[1])[0], jax.tree.leaves(train.init_params(config, config.train.seed + 1))[0])


def test_train_in_pieces_measures_each_step_once(tmp_path):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=40, eval_every=20, ckpt_every=20))
    calls = []

    def measure(step, params):
        calls.append(step)
        return float(np.sum(np.abs(jax.tree.leaves(params)[0])))

    first = runs.train_in_pieces(config, tmp_path, [0, 20, 40], measure, "m.json", init=lambda: runs.initial_params(config))
    again = runs.train_in_pieces(config, tmp_path, [0, 20, 40], measure, "m.json")
    assert calls == [0, 20, 40] and first == again and set(first) == {"0", "20", "40"}


def test_float64_run_restores_the_callers_precision(tmp_path):
    config = experiments.get("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=20, eval_every=20, ckpt_every=20, dtype="float64"))
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        train.train(config, tmp_path, progress=False, echo=lambda *_: None)
        assert jax.config.jax_enable_x64 is False
    finally:
        jax.config.update("jax_enable_x64", before)
