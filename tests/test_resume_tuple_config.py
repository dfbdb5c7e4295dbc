"""A run directory of a task with tuple fields (sine's ranges) resumes: the saved config.json holds
lists, which must compare equal to the config's tuples."""

import dataclasses

from icl import experiments, tasks, train


def test_resume_with_tuple_task_fields(tmp_path):
    base = experiments.get("tiny")
    config = dataclasses.replace(
        base, name="tuples", task=tasks.get("sine", n_ctx=4, amplitude_range=(0.1, 0.5)), compare_against=("gd",),
        train=dataclasses.replace(base.train, steps=20, eval_every=10, ckpt_every=10, final_eval_tasks=100),
    )
    assert train.train(config, tmp_path, until_step=10, progress=False, echo=lambda *_: None) == {"stopped_at": 10}
    summary = train.train(config, tmp_path, progress=False, echo=lambda *_: None)
    assert summary["steps"] == 20 and summary["resumed_from"] == 10
