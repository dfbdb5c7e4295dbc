"""The hardware targets of `icl aot` and their compile-only devices: TPU topologies from libtpu,
NVIDIA GPUs from the PJRT CUDA plugin with a device description file in this folder (H100 SXM5:
`h100.txtpb`), this machine's CPU. TPU and GPU need the extra: `pip install -e '.[aot]'`."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from icl.checks import first_line

EXTRA_HINT = "pip install -e '.[aot]'"
TARGET_DIR = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Target:
    """A hardware target: `platform` "tpu", "cuda" or "cpu", the topology, extra arguments of
    `get_topology_desc` and (GPU) the device description file in icl/aot/."""

    name: str
    platform: str
    topology: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    target_config: str = ""  # file name under icl/aot/
    about: str = ""


TARGETS: dict[str, Target] = {
    "tpu:v5e:2x2": Target("tpu:v5e:2x2", "tpu", "v5e:2x2", about="TPU v5e (v5 lite), 4 chips, 1 core each"),
    "tpu:v4:2x2x1": Target("tpu:v4:2x2x1", "tpu", "v4:2x2x1", (("chip_config_name", "megacore"),),
                           about="TPU v4, 4 chips as 4 megacore devices (as JAX sees a v4-8)"),
    "gpu:h100:4": Target("gpu:h100:4", "cuda", "1x1x4", target_config="h100.txtpb", about="4 NVIDIA H100 SXM5 80 GB on one host"),
    "gpu:h100:1": Target("gpu:h100:1", "cuda", "1x1x1", target_config="h100.txtpb", about="1 NVIDIA H100 SXM5 80 GB"),
    "cpu": Target("cpu", "cpu", about="this machine's CPU devices (no extra needed)"),
}


def parse_target(name: str) -> Target:
    """A target by name: one of `TARGETS`, `tpu:<version>:<topology>` (e.g. tpu:v5e:4x4,
    tpu:v4:2x2x2, tpu:v5p:2x2x1) or `gpu:h100:<n>` (n GPUs on one host)."""
    if name in TARGETS:
        return TARGETS[name]
    parts = name.split(":")
    if len(parts) == 3 and parts[0] == "tpu" and re.fullmatch(r"v\w+", parts[1]) and re.fullmatch(r"\d+(x\d+)*", parts[2]):
        options = (("chip_config_name", "megacore"),) if parts[1] == "v4" else ()
        return Target(name, "tpu", f"{parts[1]}:{parts[2]}", options)
    if len(parts) == 3 and parts[:2] == ["gpu", "h100"] and parts[2].isdigit() and int(parts[2]) >= 1:
        return Target(name, "cuda", f"1x1x{int(parts[2])}", target_config="h100.txtpb")
    raise ValueError(
        f"aot: unknown target {name!r}; known: {', '.join(TARGETS)}, or tpu:<version>:<topology> "
        "(e.g. tpu:v5e:4x4), gpu:h100:<n>"
    )


# -- target devices -------------------------------------------------------------------------------
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def _missing(what: str) -> ValueError:
    return ValueError(f"aot: {what} is not installed; install the extra: {EXTRA_HINT}")


def _tpu_devices(target: Target) -> list:
    if not _installed("libtpu"):
        raise _missing("libtpu (TPU compiler)")
    from jax.experimental import topologies

    try:
        return list(topologies.get_topology_desc(target.topology, "tpu", **dict(target.options)).devices)
    except Exception as error:  # libtpu's messages are JaxRuntimeError / RuntimeError
        raise ValueError(f"aot: libtpu does not know the topology {target.topology!r}: {first_line(error)}") from error


def _ensure_cuda_plugin() -> None:
    """Register JAX's CUDA PJRT plugin for compiling, on a machine with no GPU or CUDA runtime.

    The plugin's `initialize()` refuses to register without a CUDA runtime (its version check)
    unless JAX_SKIP_CUDA_CONSTRAINTS_CHECK is set or JAX_PLATFORMS excludes cuda. If JAX already
    discovered its plugins (and the check dropped this one), initialise it again with the check
    skipped; compiling needs no runtime, only the compiler inside the plugin and ptxas."""
    from jax._src import xla_bridge as xb

    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
    xb._discover_and_register_pjrt_plugins()  # no-op once done
    if "cuda" in xb._topology_factories:
        return
    import jax_plugins.xla_cuda12 as plugin

    os.environ["JAX_SKIP_CUDA_CONSTRAINTS_CHECK"] = "1"
    plugin.initialize()
    if "cuda" not in xb._topology_factories:
        raise ValueError("aot: the JAX CUDA plugin did not register its compiler; reinstall the extra: " + EXTRA_HINT)


def _gpu_devices(target: Target) -> list:
    for module, what in (("jax_plugins.xla_cuda12", "jax-cuda12-plugin (XLA:GPU compiler)"),
                         ("nvidia.cuda_nvcc", "nvidia-cuda-nvcc-cu12 (ptxas)")):
        if not _installed(module):
            raise _missing(what)
    _ensure_cuda_plugin()
    from jax.experimental import topologies

    config_text = (TARGET_DIR / target.target_config).read_text()
    return list(topologies.get_topology_desc(target.name, "cuda", target_config=config_text, topology=target.topology).devices)


@functools.cache
def target_devices(target: Target) -> tuple:
    """The (compile-only) devices of a target."""
    import jax

    if target.platform == "tpu":
        return tuple(_tpu_devices(target))
    if target.platform == "cuda":
        return tuple(_gpu_devices(target))
    return tuple(jax.devices("cpu"))
