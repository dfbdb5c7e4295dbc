"""Joining a multi-process run (several hosts, or several processes on one host).

Every process runs the same command; `initialize()` connects them through `jax.distributed`, after
which `jax.devices()` lists every process's devices and one program spans them all (the run's
(seeds, data) mesh is laid over the global device list; see `icl.train.make_mesh`).

How the cluster is found, in order:
  1. `JAX_COORDINATOR_ADDRESS` (host:port of process 0), `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`
     and optionally `JAX_LOCAL_DEVICE_IDS` (comma-separated): read here and passed explicitly,
     since `jax.distributed.initialize` reads only the address from the environment;
  2. otherwise JAX's own cluster detection (SLURM, Open MPI, TPU pod slices, ...).

On CPU hosts the cross-process collectives use gloo (JAX's default CPU client has none across
processes); set `JAX_CPU_COLLECTIVES_IMPLEMENTATION` to choose another. GPU and TPU backends use
their own (NCCL, ICI/DCN) and ignore this setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np

from icl.checks import first_line

ADDRESS, COUNT, INDEX, LOCAL_DEVICES = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_LOCAL_DEVICE_IDS"


def _int(env: Mapping[str, str], name: str, low: int) -> int:
    text = env.get(name, "")
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def cluster_from_env(env: Mapping[str, str] = os.environ) -> dict:
    """The keyword arguments of `jax.distributed.initialize` that the environment names explicitly
    ({} when `JAX_COORDINATOR_ADDRESS` is unset: JAX then detects SLURM, MPI or a TPU pod)."""
    if not env.get(ADDRESS):
        if env.get(COUNT) or env.get(INDEX):
            raise ValueError(f"{COUNT} / {INDEX} are set but {ADDRESS} (host:port of process 0) is not")
        return {}
    address = env[ADDRESS]
    if ":" not in address:
        raise ValueError(f"{ADDRESS} must be host:port, got {address!r}")
    missing = [name for name in (COUNT, INDEX) if not env.get(name)]
    if missing:
        raise ValueError(f"{ADDRESS} is set, so {' and '.join(missing)} must be set too (every process: the same count, its own index)")
    count, index = _int(env, COUNT, 1), _int(env, INDEX, 0)
    if index >= count:
        raise ValueError(f"{INDEX} ({index}) must be smaller than {COUNT} ({count})")
    out = {"coordinator_address": address, "num_processes": count, "process_id": index}
    if env.get(LOCAL_DEVICES):
        try:
            out["local_device_ids"] = [int(i) for i in env[LOCAL_DEVICES].split(",")]
        except ValueError:
            raise ValueError(f"{LOCAL_DEVICES} must be comma-separated integers, got {env[LOCAL_DEVICES]!r}") from None
    return out


def initialize(env: Mapping[str, str] = os.environ) -> None:
    """Connect this process to the others (see the module docstring); call before any JAX work."""
    kwargs = cluster_from_env(env)
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in env:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as error:  # one line, not JAX's traceback
        where = f" (coordinator {kwargs['coordinator_address']})" if kwargs else ""
        raise ValueError(f"could not join the multi-process run{where}: {first_line(error)}") from error


def is_main() -> bool:
    """True in the process that writes files and prints (process 0)."""
    return jax.process_index() == 0


def to_host(tree):
    """NumPy copies of a tree of arrays; an array spread over several processes' devices is
    gathered first (every process gets the whole array)."""
    from jax.experimental import multihost_utils

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            x = multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(x)

    return jax.tree.map(fetch, tree)
