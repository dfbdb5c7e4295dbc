"""Data parallelism over 8 virtual CPU devices (a subprocess, since XLA_FLAGS must precede jax)."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, dataclasses, jax, numpy as np
    from icl import experiments
    from icl import train
    assert len(jax.devices()) == 8
    base = experiments.get("tiny")
    seen = []
    class Watched(train.Trainer):  # records the sharding of each step's batch at trace time
        def sample(self, data_key, step):
            batch = super().sample(data_key, step)
            jax.debug.inspect_array_sharding(batch.x_ctx, callback=seen.append)
            return batch
    def losses(**kw):
        cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, dtype="float64", **kw))
        trainer = Watched(cfg)
        seen.clear()
        params, opt_state = trainer.init()
        keys = trainer.keys()
        params, opt_state, losses = trainer.train_chunk(params, opt_state, keys, 0, 25)
        leaf = jax.tree.leaves(params)[0]
        return dict(
            losses=np.asarray(losses).tolist(),
            batch_spec=str(seen[0].spec), batch_devices=len(seen[0].device_set),
            param_spec=str(leaf.sharding.spec), mesh=dict(trainer.mesh.shape),
        )
    jax.config.update("jax_enable_x64", True)
    out = dict(
        single=losses(n_seeds=2, data_parallel=1),
        data8=losses(n_seeds=2, data_parallel=8),
        seeds2_data4=losses(n_seeds=2, seed_parallel=2, data_parallel=4),
    )
    print("RESULT " + json.dumps(out))
    """
)


def test_data_parallel_matches_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ", 1)[1])
    single = out["single"]["losses"]
    for name in ("data8", "seeds2_data4"):
        got = out[name]["losses"]
        for a, b in zip(got, single, strict=True):  # same curve to float64 tolerance (only the sum order differs)
            assert abs(a[0] - b[0]) <= 1e-9 * abs(b[0]) and abs(a[1] - b[1]) <= 1e-9 * abs(b[1])
    # the batch really is split: 8 shards over data, or 2 x 4 over seeds and data
    assert out["single"]["batch_devices"] == 1
    assert out["data8"]["mesh"] == {"seeds": 1, "data": 8} and out["data8"]["batch_devices"] == 8
    assert out["data8"]["batch_spec"] == "P(None, 'data')"  # [seed, batch, ...]: batch split 8 ways
    assert out["seeds2_data4"]["mesh"] == {"seeds": 2, "data": 4} and out["seeds2_data4"]["batch_devices"] == 8
    assert out["seeds2_data4"]["batch_spec"] == "P('seeds', 'data')"
    # parameters: split over seeds only (replicated over data)
    assert out["seeds2_data4"]["param_spec"] == "P('seeds',)"
