"""Curricula in the trainer (`train.curriculum="garg"`, `train.loop_curriculum="yang"`): the step's
batch has its inactive input coordinates zeroed before labelling; the training loss is the loss on
the sequence cut after the active positions (float64, 1e-12); the looped loss is the mean over the
window's read-outs; a run with a curriculum resumes bit for bit; a misfit config is one line."""

import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icl import compare, curriculum, models, tasks, train
from icl.config import ExperimentConfig, OptimConfig, TrainConfig
from icl.trainer import Trainer, objective_loss

D, T, EVERY = 8, 17, 2  # Garg's preset at d = 8, k = 2: dims 5 -> 8 (+1), points 11 -> 17 (+2), every 2 steps


def config(task="linear", model=None, **train_kw) -> ExperimentConfig:
    kw = dict(k=3) if task == "sparse_linear" else {}
    return ExperimentConfig(
        name="curriculum",
        task=tasks.get(task, d=D, n_ctx=T - 1, n_query=1, **kw),
        model=model or models.get("gpt2", n_layers=1, width=16, n_heads=2, n_positions=T),
        optim=OptimConfig(name="adam", lr=1e-2),
        train=TrainConfig(**{**dict(steps=12, batch_size=8, eval_every=4, ckpt_every=4, eval_tasks=16, final_eval_tasks=32,
                                    objective="causal", curriculum="garg", curriculum_every=EVERY, dtype="float64"),
                             **train_kw}),
    )


def test_the_schedule_of_a_run():
    schedule = curriculum.of_run(config())
    assert schedule.data == curriculum.Curriculum(5, D, 1, 11, T, 2, EVERY) and schedule.loops is None
    assert curriculum.of_run(dataclasses.replace(config(), train=TrainConfig())) == curriculum.Schedule()
    assert [int(schedule.active_dims(s)) for s in (0, 1, 2, 5, 6, 100)] == [5, 5, 6, 7, 8, 8]


@pytest.mark.parametrize("task", ["linear", "sparse_linear", "relu_net", "decision_tree"])
def test_batches_have_inactive_coordinates_zeroed_before_labelling(task):
    trainer = Trainer(config(task))
    key = jax.random.key(3)
    for step, dims in ((0, 5), (3, 6), (6, 8)):
        batch = trainer.sample(key, step)
        x = jnp.concatenate([batch.x_ctx, batch.x_query], axis=1)
        assert np.all(np.asarray(x[..., dims:]) == 0) and np.all(np.asarray(x[..., :dims]) != 0)
        full = trainer.config.task.sample(jax.random.fold_in(key, step), 8)  # the same draw without a curriculum
        np.testing.assert_array_equal(x[..., :dims], jnp.concatenate([full.x_ctx, full.x_query], axis=1)[..., :dims])
        if task in ("linear", "sparse_linear"):  # labels are those of the truncated inputs
            y = jnp.concatenate([batch.y_ctx, batch.y_query], axis=1)
            np.testing.assert_allclose(y, jnp.einsum("btd,bd->bt", x, batch.w), rtol=0, atol=1e-12)
        if task == "sparse_linear":  # the support lies in the active coordinates, k of them
            assert np.all(np.asarray(batch.w[:, dims:]) == 0)
            assert np.all(np.sum(np.asarray(batch.w) != 0, axis=1) == 3)
    if task == "linear":  # the full dimension draws exactly the batch of a run without a curriculum
        batch, full = trainer.sample(key, 6), trainer.config.task.sample(jax.random.fold_in(key, 6), 8)
        jax.tree.map(np.testing.assert_array_equal, batch, full)


def test_the_loss_is_the_loss_on_the_active_positions():
    trainer = Trainer(config())
    params = jax.tree.map(lambda p: p[0], trainer.init()[0])
    model = trainer.spec.model(params)
    for step, points in ((0, 11), (2, 13), (5, 15), (6, 17), (50, 17)):
        batch = trainer.sample(jax.random.key(0), step)
        x, y = (a[:, :points] for a in batch.sequence())  # the sequence cut after the active positions
        want = compare.loss(model.predict_prefixes(x, y), y)
        np.testing.assert_allclose(trainer.loss(params, batch, jnp.int32(step)), want, rtol=1e-12)
    full = objective_loss("causal", model, batch)
    np.testing.assert_allclose(trainer.loss(params, batch, 50), full, rtol=1e-12)


def test_the_looped_loss_is_the_mean_over_the_window():
    model_config = models.get("gpt2", n_layers=1, width=16, n_heads=2, n_positions=T, loops=12)
    cfg = config("relu_net", model_config, curriculum="none", loop_curriculum="yang")  # relu_net: 5 -> 12 loops, window 5
    trainer = Trainer(cfg)
    params = jax.tree.map(lambda p: p[0], trainer.init()[0])
    model = trainer.spec.model(params)
    batch = trainer.sample(jax.random.key(1), 0)
    x, y = batch.sequence()
    for step, b in ((0, 5), (499, 5), (500, 7), (2000, 12), (10**6, 12)):
        assert int(trainer.schedule.n_loops(step)[0]) == b
        per_loop = model.loop_predictions(x, y, b)  # [b, B, T]: the read-out after each loop
        want = np.mean([compare.loss(p, y) for p in per_loop[-5:]])
        np.testing.assert_allclose(trainer.loss(params, batch, jnp.int32(step)), want, rtol=1e-12)


def test_gradients_flow_through_the_window_only():
    """Yang et al.'s truncated backpropagation: with b = 12 loops and window 5, the loss's gradient
    equals the gradient of the window's loss with the state entering loop 8 held fixed."""
    model_config = models.get("gpt2", n_layers=1, width=16, n_heads=2, n_positions=T, loops=12)
    trainer = Trainer(config("relu_net", model_config, curriculum="none", loop_curriculum="yang"))
    params = jax.tree.map(lambda p: p[0], trainer.init()[0])
    batch = trainer.sample(jax.random.key(1), 0)
    x, y = batch.sequence()

    def truncated(p):
        preds = trainer.spec.model(p).loop_predictions(x, y, 12, grad_window=5)[-5:]
        return jnp.mean(jnp.stack([compare.loss(q, y) for q in preds]))

    got = jax.grad(trainer.loss)(params, batch, jnp.int32(10**6))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), got, jax.grad(truncated)(params))


@pytest.mark.parametrize("kind", ["garg", "yang"])
def test_a_run_with_a_curriculum_resumes_bit_for_bit(tmp_path, kind):
    if kind == "garg":
        cfg = config()
    else:
        model_config = models.get("gpt2", n_layers=1, width=16, n_heads=2, n_positions=T, loops=12)
        cfg = config("relu_net", model_config, curriculum="garg", loop_curriculum="yang", curriculum_every=3)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=8))
    summary = train.train(cfg, tmp_path / "straight", progress=False)
    assert np.isfinite(summary["model"]["loss"][0])
    broken = tmp_path / "broken"
    assert train.train(cfg, broken, until_step=6, progress=False) == {"stopped_at": 6}
    shutil.rmtree(broken / "checkpoints" / "6", ignore_errors=True)
    assert train.train(cfg, broken, progress=False)["resumed_from"] == 4
    jax.tree.map(np.testing.assert_array_equal, train.load_params(tmp_path / "straight")[1], train.load_params(broken)[1])


def test_misfit_curricula_are_one_line_errors():
    looped = models.get("gpt2", n_layers=1, width=16, n_heads=2, n_positions=T, loops=30)
    cases = [
        (dict(objective="query"), "needs train.objective='causal'"),
        (dict(curriculum="gag"), "curriculum must be one of none, garg"),
        (dict(curriculum_every=0), "curriculum_every"),
        (dict(curriculum="none", loop_curriculum="yang"), "needs a looped gpt2"),
    ]
    for train_kw, message in cases:
        with pytest.raises(ValueError, match=message):
            config(**train_kw)
    with pytest.raises(ValueError, match="needs points_end = k"):
        ExperimentConfig(task=tasks.get("linear", d=D, n_ctx=T, n_query=1), model=config().model,
                         train=TrainConfig(objective="causal", curriculum="garg"))
    with pytest.raises(ValueError, match="'sine' does not"):
        ExperimentConfig(task=tasks.get("sine", n_ctx=T - 1), model=config().model,
                         train=TrainConfig(objective="causal", curriculum="garg"))
    with pytest.raises(ValueError, match="set model.loops=12"):
        config("relu_net", looped, curriculum="none", loop_curriculum="yang")
    with pytest.raises(ValueError, match="this family does not take active_dims"):
        tasks.get("sine").sample(jax.random.key(0), 2, active_dims=1)
