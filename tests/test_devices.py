"""The CPU's cores as devices and `train.data_parallel="auto"` (icl.devices): the rule, the config
field, the command line's layout, and a run resumed on another layout."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from icl import devices, experiments, models
from icl.config import TrainConfig, apply_overrides
from icl.devices import CPU_MIN_TASKS_PER_DEVICE, auto_data_parallel

LSA = models.get("lsa", n_layers=2)
ICL = [sys.executable, "-m", "icl"]


@pytest.mark.parametrize("batch, available, expected", [
    (2048, 2, 2), (2048, 1, 1), (2048, 8, 2),  # at most batch / 1024 devices
    (4096, 8, 4), (4096, 3, 2), (3072, 4, 3), (3072, 2, 2),  # the most devices that divide the batch
    (1024, 2, 1), (256, 2, 1), (16, 8, 1), (2047, 2, 1),
])
def test_auto_splits_a_large_batch_of_an_attention_stack_over_cpu_cores(batch, available, expected):
    got = auto_data_parallel(LSA, batch, available, "cpu")
    assert got == expected
    assert batch % got == 0 and (got == 1 or batch // got >= CPU_MIN_TASKS_PER_DEVICE)


def test_auto_keeps_one_device_where_a_split_was_measured_slower_or_not_measured():
    for model in (models.get("lsa"), models.get("lsa", n_layers=2, embed_dim=8), models.get("lsa", n_layers=2, mlp=True),
                  models.get("gpt2"), models.get("mamba")):
        assert auto_data_parallel(model, 4096, 4, "cpu") == 1, model
    for platform in ("gpu", "tpu"):
        assert auto_data_parallel(LSA, 4096, 4, platform) == 1
    assert LSA.splits_on_cpu() and models.get("lsa", attention="softmax").splits_on_cpu()


def test_data_parallel_field():
    assert TrainConfig().data_parallel == "auto"
    config = experiments.get("tiny")
    assert apply_overrides(config, ["train.data_parallel=2", "train.batch_size=8"]).train.data_parallel == 2
    assert apply_overrides(config, ["train.data_parallel=0"]).train.data_parallel == 0
    assert apply_overrides(config, ["train.data_parallel=auto"]).train.data_parallel == "auto"
    assert apply_overrides(config, ["train.data_parallel=1", "train.data_parallel=auto"]).train.data_parallel == "auto"
    for bad, message in (("two", "expected 'auto' or an integer >= 0"), ("-1", "expected 'auto' or an integer >= 0"),
                         ("3", "must be divisible by data_parallel")):
        with pytest.raises(ValueError, match=message):
            apply_overrides(config, [f"train.data_parallel={bad}", "train.batch_size=8"])
    with pytest.raises(ValueError, match="data_parallel must be 'auto' or an integer >= 0, got 'two'"):
        TrainConfig(data_parallel="two")  # as a config.json could say
    assert TrainConfig(data_parallel="2", batch_size=8).data_parallel == 2
    saved = json.loads(config.to_json())
    assert saved["train"]["data_parallel"] == "auto"
    assert type(config).from_dict(saved) == config


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def test_use_cpu_cores_makes_each_core_a_device_unless_the_caller_chose():
    probe = ("from icl import devices; set_ = devices.use_cpu_cores(); import jax; "
             "print(set_, jax.device_count(), devices.use_cpu_cores())")
    cores = devices.usable_cores()

    def run(**env):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_env(**env), timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return [int(v) for v in out.stdout.split()]

    assert run() == [cores, cores, 0]  # the second call: the backend has started, too late to choose
    assert run(JAX_NUM_CPU_DEVICES="1") == [0, 1, 0]
    assert run(XLA_FLAGS="--xla_force_host_platform_device_count=3") == [0, 3, 0]


def test_the_command_line_splits_a_large_batch_over_two_cores_and_resumes_on_another_layout(tmp_path):
    """`icl train` with two CPU devices: a run of a two-layer stack stopped on one device resumes
    on both ("auto" splits its batch of 2,048: the summary's mesh, the log's event; the layout does
    not name the run) and ends where an uninterrupted one-device run does, up to float rounding of
    the gradient's sum. (Which models "auto" keeps on one device: the tests above.)"""
    common = ["--no-progress"] + [part for s in ("model.n_layers=2", "train.steps=20", "train.eval_every=10", "train.ckpt_every=10",
                                                  "train.eval_tasks=64", "train.final_eval_tasks=64") for part in ("--set", s)]

    def train(out, *extra, devices=2):
        done = subprocess.run([*ICL, "train", "paper_1layer", *common, "--out", str(out), *extra], capture_output=True,
                              text=True, env=_env(JAX_NUM_CPU_DEVICES=str(devices)), timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((out / "summary.json").read_text()) if "--until-step" not in extra else None

    whole = train(tmp_path / "one", "--set", "train.data_parallel=1")
    assert whole["mesh"] == {"seeds": 1, "data": 1}
    moved = tmp_path / "moved"
    train(moved, "--set", "train.data_parallel=1", "--until-step", "10")
    resumed = train(moved)  # auto: 2 devices
    assert resumed["mesh"] == {"seeds": 1, "data": 2} and resumed["resumed_from"] == 10
    events = [json.loads(line) for line in (moved / "log.jsonl").read_text().splitlines() if '"event"' in line]
    assert events == [{"event": "resumed", "step": 10, "mesh": {"seeds": 1, "data": 2}}]
    a, b = (np.asarray(s["model"]["loss"]) for s in (resumed, whole))
    np.testing.assert_allclose(a, b, rtol=1e-4)  # float32: the two sums of the gradient differ in rounding
    assert resumed["solvers"]["gd"]["loss"] == whole["solvers"]["gd"]["loss"]


def test_auto_meets_the_mesh():
    """`make_mesh` follows the rule with the devices it is given, and `cli.main` called from
    Python leaves this process's devices alone (only the `icl` command makes cores devices)."""
    import jax

    from icl import cli
    from icl.trainer import make_mesh

    assert cli.main(["list"]) == 0
    config = experiments.get(experiments.DEFAULT)  # one linear layer: one device under "auto"
    assert dict(make_mesh(config).shape) == {"seeds": 1, "data": 1}
    two = dataclasses.replace(config, model=dataclasses.replace(config.model, n_layers=2))
    cpus = jax.devices("cpu")
    assert dict(make_mesh(two, cpus[:1]).shape)["data"] == 1
    if len(cpus) >= 2:  # a process made with several CPU devices
        assert dict(make_mesh(two, cpus[:2]).shape)["data"] == 2
    zero = dataclasses.replace(config, train=dataclasses.replace(config.train, data_parallel=0))
    assert dict(make_mesh(zero).shape)["data"] == len(jax.devices())  # 0: every device
