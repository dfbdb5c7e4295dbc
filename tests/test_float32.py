"""The default path, float32, checked as users run it: the `tiny` config at its default dtype
(float32) and sampler ("threefry_paired", whose 32-bit stream uses both words of each threefry
block) trained in-process by `icl.train.train` while the test process has x64 on (conftest).

  * the run is float32 and trains on the paired 32-bit stream (not float64, not plain
    jax.random), and its parameters equal, to the bit, those of the same config trained by the
    `icl train` command in a fresh process (x64 off); x64 is still on afterwards;
  * resuming from a mid-run checkpoint ends bit-for-bit like the uninterrupted run;
  * data parallelism over 2 CPU devices (a subprocess: XLA_FLAGS must precede jax) samples the
    same tasks to the bit and follows the 1-device run to float32 rounding (see TOLERANCE).

Under float64 the paired sampler's draws are plain jax.random's (a 64-bit value takes both words
of its block either way), so float64 tests alone never reach the stream every default run uses.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from icl import experiments, precision, train
from icl.config import apply_overrides
from icl.tasks import rng

SETS = ["train.steps=60", "train.eval_every=10", "train.ckpt_every=20", "train.final_eval_tasks=200"]


def config():
    return apply_overrides(experiments.get("tiny"), SETS)


def read_params(run_dir):
    return jax.tree.map(np.asarray, train.load_params(run_dir)[1])


def train_losses(run_dir) -> np.ndarray:
    return np.array([r["train_loss"] for r in train.rundir.read_log(run_dir) if "train_loss" in r])


def assert_bit_equal(a, b):
    """Same tree, dtypes and bytes (so -0.0 differs from 0.0, and float32 from float64)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run trained in this process (x64 on), in one piece, with the batch of step 0 recorded
    from inside the compiled step."""
    assert jax.config.jax_enable_x64  # conftest: the setting a float32 run must not inherit
    cfg = config()
    assert cfg.train.dtype == "float32" and cfg.train.sampler == "threefry_paired"  # the defaults
    seen = {}

    class Watched(train.Trainer):
        def sample(self, data_key, step):
            batch = super().sample(data_key, step)
            seen["dtype"], seen["impl"] = batch.x_ctx.dtype, str(jax.random.key_impl(data_key))
            jax.debug.callback(lambda s, x, y: seen.setdefault(int(s), (np.asarray(x), np.asarray(y))),
                               step, batch.x_ctx, batch.y_query)
            return batch

    out = tmp_path_factory.mktemp("float32") / "straight"
    patch = pytest.MonkeyPatch()
    patch.setattr(train, "Trainer", Watched)
    try:
        summary = train.train(cfg, out, progress=False, echo=lambda *_: None)
    finally:
        patch.undo()
    assert jax.config.jax_enable_x64  # the caller's setting, as it was
    return cfg, out, summary, seen


def test_in_process_float32_run_trains_on_the_paired_32_bit_stream(straight):
    cfg, out, summary, seen = straight
    assert seen["dtype"] == np.float32 and seen["impl"] == str(jax.random.key_impl(rng.key(0, "threefry_paired")))
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(read_params(out)))
    x_ctx, y_query = seen[0]  # step 0, as the compiled step drew it: [B, N, d] (one seed)
    x_ctx, y_query = x_ctx.reshape(-1, *x_ctx.shape[-3:])[0], y_query.reshape(-1, *y_query.shape[-2:])[0]

    def draw(sampler, dtype):
        with precision.at_dtype(dtype):
            key = jax.random.fold_in(jax.random.fold_in(rng.key(cfg.train.seed, sampler), 1), 0)
            return jax.tree.map(np.asarray, cfg.task.sample(key, cfg.train.batch_size))

    want = draw("threefry_paired", "float32")
    assert want.x_ctx.dtype == np.float32
    np.testing.assert_array_equal(x_ctx, want.x_ctx)
    np.testing.assert_array_equal(y_query, want.y_query)
    # the other streams are other tasks: plain jax.random, and the float64 stream (what the run
    # drew before its precision was scoped, with the test process's x64 on; its value j is built
    # from block j, whose first word is the paired 32-bit value 2j, so value 0 agrees to float32
    # rounding and the rest do not)
    for other in (draw("threefry", "float32"), draw("threefry_paired", "float64")):
        assert np.isclose(other.x_ctx.astype(np.float32), x_ctx, rtol=1e-6, atol=0).mean() < 0.01


def test_in_process_run_equals_the_cli_run_to_the_bit(straight, tmp_path):
    """The `icl train` command in a fresh process (x64 off, as users run it) and train.train in
    this process (x64 on) give the same float32 parameters, bit for bit."""
    cfg, out, summary, _ = straight
    cli_out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "icl", "train", "tiny", "--out", str(cli_out), "--no-progress",
           *(arg for s in SETS for arg in ("--set", s))]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((cli_out / "config.json").read_text()) == json.loads(cfg.to_json())
    assert_bit_equal(read_params(out), read_params(cli_out))
    np.testing.assert_array_equal(train_losses(out), train_losses(cli_out))
    cli_summary = json.loads((cli_out / "summary.json").read_text())
    assert cli_summary["model"] == summary["model"] and cli_summary["solvers"] == summary["solvers"]


def test_float32_resume_is_bit_identical(straight, tmp_path):
    """Stopped at step 50, its step-50 checkpoint lost (a kill between the two), resumed from step
    40: the parameters, the Adam state's effect and the logged losses after it equal the
    uninterrupted run's, bit for bit."""
    cfg, out, _, _ = straight
    broken = tmp_path / "broken"
    assert train.train(cfg, broken, until_step=50, progress=False, echo=lambda *_: None) == {"stopped_at": 50}
    shutil.rmtree(broken / "checkpoints" / "50")
    summary = train.train(cfg, broken, progress=False, echo=lambda *_: None)
    assert summary["resumed_from"] == 40 and jax.config.jax_enable_x64
    assert_bit_equal(read_params(out), read_params(broken))
    np.testing.assert_array_equal(train_losses(out), train_losses(broken))


def test_a_float64_run_in_a_float32_process_is_scoped(tmp_path):
    """The other direction, with x64 off process-wide (the `icl` command's setting): a float64 run
    stopped, resumed from its checkpoint (orbax restores on its own threads, which see only the
    process-wide setting) and loaded is float64 throughout, and x64 is off after each call."""
    cfg = apply_overrides(config(), ["train.dtype=float64", "train.steps=20"])
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        assert train.train(cfg, tmp_path, until_step=10, progress=False, echo=lambda *_: None) == {"stopped_at": 10}
        assert not jax.config.jax_enable_x64
        assert train.train(cfg, tmp_path, progress=False, echo=lambda *_: None)["resumed_from"] == 10
        assert not jax.config.jax_enable_x64
        params = train.load_params(tmp_path)[1]
        assert not jax.config.jax_enable_x64
        assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype(np.float64)}
        # the float64 run's losses carry float64 digits: not float32 values widened
        losses = train_losses(tmp_path)
        assert (losses.astype(np.float32).astype(np.float64) != losses).all()
    finally:
        jax.config.update("jax_enable_x64", before)


# -- two CPU devices ------------------------------------------------------------------------------
# The 1-device run and the data-parallel run on 2 devices (each half of the batch on its own
# device, the gradient summed across them) draw the same tasks: the samplers are counter-based,
# checked to the bit below. The batch mean in the loss and its gradient is then summed in another
# order (two half-batch partial sums, then one add across devices), so each step's gradient differs
# by float32 rounding, a few units of 2^-24 ~ 6e-8 relative, and Adam carries that forward.
# Measured after 60 steps (2026-12-07, jax 0.10.2, 2-core CPU): the largest relative gap
# max|a - b| / max|b| of the logged training losses 5.9e-8, of the four parameter arrays 8.2e-8,
# 1.0e-7, 1.4e-7, 1.8e-7; the final table's loss equal. TOLERANCE is 10x the largest, room for
# another XLA's reduction order. What it guards against: a run on other tasks (a broken split, a
# shard drawn from another key, measured by training on plain jax.random's stream instead) moves
# the losses by 21 % and the parameters by 9 % to 63 %, 1e5 times the tolerance.
TOLERANCE = 2e-6

SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, numpy as np
    from pathlib import Path
    from icl import experiments, train
    from icl.config import apply_overrides
    assert len(jax.devices()) == 2 and not jax.config.jax_enable_x64
    out, sets = Path(sys.argv[1]), sys.argv[2:]
    result = {}
    batches = {}
    for dp in (1, 2):
        cfg = apply_overrides(experiments.get("tiny"), [*sets, f"train.data_parallel={dp}"])
        trainer = train.Trainer(cfg)
        batch = jax.jit(lambda keys: trainer.sample(keys[0], 7))(trainer.keys())
        batches[dp] = np.asarray(batch.x_ctx)
        result[f"batch_devices_{dp}"] = len(batch.x_ctx.sharding.device_set)
        summary = train.train(cfg, out / f"dp{dp}", progress=False, echo=lambda *_: None)
        result[f"mesh_{dp}"] = dict(train.Trainer(cfg).mesh.shape)
        params = train.load_params(out / f"dp{dp}")[1]
        result[f"params_{dp}"] = [np.asarray(p).tolist() for p in jax.tree.leaves(params)]
        result[f"dtype_{dp}"] = sorted({str(p.dtype) for p in jax.tree.leaves(params)})
        result[f"loss_{dp}"] = [r["train_loss"] for r in train.rundir.read_log(out / f"dp{dp}") if "train_loss" in r]
        result[f"final_{dp}"] = summary["model"]["loss"]
    result["same_batch"] = bool(np.array_equal(batches[1], batches[2]))
    print("RESULT " + json.dumps(result))
    """
)


def relative_gap(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_two_devices_follow_one_device_in_float32(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_ENABLE_X64", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), *SETS], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["mesh_1"] == {"seeds": 1, "data": 1} and out["mesh_2"] == {"seeds": 1, "data": 2}
    assert out["batch_devices_1"] == 1 and out["batch_devices_2"] == 2  # the batch really is split
    assert out["same_batch"]  # the same tasks to the bit on 1 and 2 devices
    assert out["dtype_1"] == out["dtype_2"] == ["float32"]
    gaps = {"loss": relative_gap(out["loss_2"], out["loss_1"]), "final": relative_gap(out["final_2"], out["final_1"]),
            **{f"param{i}": relative_gap(a, b) for i, (a, b) in enumerate(zip(out["params_2"], out["params_1"], strict=True))}}
    print("relative gaps, 2 devices vs 1:", gaps)
    assert max(gaps.values()) <= TOLERANCE, gaps
