"""How a run is laid out on the devices it finds: the CPU's cores as devices, and how many of them
share a run's batch when `train.data_parallel` is "auto" (the default).

XLA:CPU runs this project's small programs (batched 11 x 11 products, one op at a time) on one
core and leaves the others idle. Made JAX devices, the cores can each take a part of the batch;
measured on a 2-core CPU, 2026-12-07 (`benchmarks/bench_figures.py`, batch 2048, one seed,
train chunk steps/s, 2 devices over 1): two shared layers 1.16-1.20x, five separate clipped
layers 1.45x (five seeds: 1.45x), a softmax layer 1.11-1.32x, figure 5's classic tokens
1.15-1.27x; one linear layer 0.82-1.17x over four runs (a wash), and at batch 256 0.54x, at
batch 16 0.13x (each step then pays a cross-device reduction that costs more than its share of
the work); figure 4's MLP embedding 0.43x and MLP blocks 0.83x (their large products already
use every core; split, the two devices fight for them). Hence the rule of `auto_data_parallel`
and the model families' `splits_on_cpu`.

`use_cpu_cores()` is an application's choice, made once before JAX starts a backend: the `icl`
command (`icl.cli.entry`, also `python -m icl`), the figure and claim drivers and
`benchmarks/bench_figures.py` call it; the library never does (`icl.cli.main` called from Python
included), so a program that imports `icl` keeps its own device setup.
"""

from __future__ import annotations

import os

import jax

CPU_MIN_TASKS_PER_DEVICE = 1024  # below this share of the batch a CPU device costs more than it brings (see above)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def use_cpu_cores() -> int:
    """Make each usable core a JAX CPU device (`jax_num_cpu_devices`), unless the caller already
    chose (XLA_FLAGS' --xla_force_host_platform_device_count, JAX_NUM_CPU_DEVICES, or the config
    option set) or a backend has started (too late to choose). Returns the count it set, or 0.
    Harmless on an accelerator: the CPU devices are then not the ones a run uses."""
    from jax._src import xla_bridge

    chosen = ("--xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
              or "JAX_NUM_CPU_DEVICES" in os.environ or jax.config.jax_num_cpu_devices != -1)
    if chosen or xla_bridge.backends_are_initialized():
        return 0
    cores = usable_cores()
    jax.config.update("jax_num_cpu_devices", cores)
    return cores


def auto_data_parallel(model, batch_size: int, available: int, platform: str) -> int:
    """The devices a run's batch is split over when `train.data_parallel` is "auto".

    On a CPU: the most devices d <= `available` that divide the batch and leave each at least
    `CPU_MIN_TASKS_PER_DEVICE` tasks, if the model family says its step splits well over CPU
    cores (`splits_on_cpu()`, measured; a family without the method does not), else 1. On an
    accelerator: 1, as before the rule (`train.data_parallel=0` takes every device there)."""
    if platform != "cpu" or not getattr(model, "splits_on_cpu", lambda: False)():
        return 1
    fits = [d for d in range(1, available + 1) if batch_size % d == 0 and batch_size // d >= CPU_MIN_TASKS_PER_DEVICE]
    return max(fits, default=1)
