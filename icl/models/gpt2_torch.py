"""Garg et al. (2022)'s released PyTorch checkpoints as this repo's GPT-2 (`icl.models.gpt2`).

Their model (github.com/dtsip/in-context-learning, src/models.py `TransformerModel`) is

    _read_in  = nn.Linear(n_dims, n_embd)
    _backbone = transformers.GPT2Model(GPT2Config(n_positions=2 P, n_embd=W, n_layer=L, n_head=H,
                                                  dropouts 0, use_cache=False))
    _read_out = nn.Linear(n_embd, 1)

on the same interleaved tokens x_1, (y_1, 0..0), x_2, ... with the prediction read at the x
tokens, so its weights map one to one onto `GPT2` (`loops = 0`). A checkpoint is their run
directory's `state.pt` (a dict: "model_state_dict", "optimizer_state_dict", "train_step") or a
`model_<step>.pt` (the bare state dict), with the run's `config.yaml` beside it (model.n_dims,
n_positions, n_embd, n_layer, n_head). The mapping (`params_from_state_dict`; keys relative to
the backbone, torch `nn.Linear` weights are [out, in], Hugging Face `Conv1D` weights [in, out]):

    read_in_kernel [d, W]          = _read_in.weight.T            ([W, d] in torch)
    read_in_bias [W]               = _read_in.bias
    positions [2P, W]              = wpe.weight
    layers[l].ln_1.scale / .bias   = h.l.ln_1.weight / .bias
    layers[l].qkv_kernel [W, 3W]   = h.l.attn.c_attn.weight       (Conv1D: columns q | k | v, heads contiguous)
    layers[l].qkv_bias [3W]        = h.l.attn.c_attn.bias
    layers[l].proj_kernel [W, W]   = h.l.attn.c_proj.weight
    layers[l].proj_bias [W]        = h.l.attn.c_proj.bias
    layers[l].ln_2.scale / .bias   = h.l.ln_2.weight / .bias
    layers[l].fc_kernel [W, rW]    = h.l.mlp.c_fc.weight
    layers[l].fc_bias [rW]         = h.l.mlp.c_fc.bias
    layers[l].out_kernel [rW, W]   = h.l.mlp.c_proj.weight
    layers[l].out_bias [W]         = h.l.mlp.c_proj.bias
    ln_f.scale / .bias             = ln_f.weight / .bias
    read_out_kernel [W]            = _read_out.weight[0]          ([1, W] in torch)
    read_out_bias []               = _read_out.bias[0]

Ignored: `wte.weight` (the token embedding; the model runs on `inputs_embeds`) and the causal-mask
buffers `h.l.attn.bias` / `h.l.attn.masked_bias` that older `transformers` saved. Keys may carry
a "module." prefix (DataParallel), and the backbone's keys their "_backbone." prefix or none.
L, W, P and r are read from the shapes; H cannot be (it only splits W) and comes from the caller
or config.yaml. GELU (tanh form) and LayerNorm eps 1e-5 are GPT-2's in both codes;
tests/test_gpt2_torch.py checks the outputs against `transformers`' GPT2Model on random weights.

    from icl.models.gpt2_torch import load_garg, write_run
    model = load_garg("models/linear_regression/pretrained")     # a GPT2: model.predict_prefixes(x, y)
    write_run("models/linear_regression/pretrained", "runs/garg_linear_pretrained")
    # then: icl compare runs/garg_linear_pretrained --against least_squares

or `python -m icl.models.gpt2_torch CHECKPOINT OUT_DIR`. Reading a .pt file needs torch
(`pip install 'icl-gd[torch]'`); torch is imported inside the functions that read one, so
importing `icl` never needs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl.models.gpt2 import GPT2, GPT2Config

_OWNER = "garg checkpoint"
TORCH_HINT = "pip install 'icl-gd[torch]'"
# Keys of their state dict with no counterpart here (see the module docstring).
IGNORED = re.compile(r"wte\.weight|h\.\d+\.attn\.(bias|masked_bias)")
# Garg et al.'s task names -> `icl.experiments.garg.task` kinds.
GARG_TASKS = {"linear_regression": "linear", "sparse_linear_regression": "sparse",
              "relu_2nn_regression": "relu", "decision_tree": "tree"}


class TorchMissing(ImportError, ValueError):
    """torch is not installed (an ImportError, and a ValueError like the converter's other errors)."""


def _torch():
    try:
        import torch
    except ImportError:
        raise TorchMissing(f"{_OWNER}: reading a PyTorch checkpoint needs torch: {TORCH_HINT}") from None
    return torch


# -- the state dict -----------------------------------------------------------------------------
def canonical_keys(state_dict) -> dict:
    """The state dict with keys as the mapping names them: "module." dropped, the backbone's
    keys without "_backbone." ("h.0.ln_1.weight", "wpe.weight"), read-in and read-out as
    "_read_in.weight" etc.; ignored keys (`IGNORED`) left out."""
    out = {}
    for key, value in state_dict.items():
        name = str(key).removeprefix("module.").removeprefix("_backbone.")
        if not IGNORED.fullmatch(name):
            out[name] = value
    return out


def _to_numpy(value) -> np.ndarray:
    """A torch tensor (any device; bfloat16 / float16 widened to float32) or an array as numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError:  # a dtype numpy lacks (bfloat16)
            return value.float().numpy()
    return np.asarray(value)


def _take(sd: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """sd[key] as numpy with the expected shape, or a one-line ValueError."""
    if key not in sd:
        raise ValueError(f"{_OWNER}: missing key {key!r} (is this a Garg et al. TransformerModel state dict?)")
    array = _to_numpy(sd[key])
    if array.shape != shape:
        raise ValueError(f"{_OWNER}: {key!r} has shape {array.shape}, expected {shape}")
    return array


def _shape_of(sd: dict, key: str, ndim: int) -> tuple[int, ...]:
    if key not in sd:
        raise ValueError(f"{_OWNER}: missing key {key!r} (is this a Garg et al. TransformerModel state dict?)")
    shape = tuple(sd[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{_OWNER}: {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def infer_sizes(sd: dict) -> dict:
    """(d, W, P, L, r) from the shapes of a canonical state dict: read-in [W, d], wpe [2P, W],
    layers h.0 .. h.(L-1), c_fc [W, rW]."""
    width, d = _shape_of(sd, "_read_in.weight", 2)
    rows, wpe_width = _shape_of(sd, "wpe.weight", 2)
    if wpe_width != width or rows % 2:
        raise ValueError(f"{_OWNER}: 'wpe.weight' has shape {(rows, wpe_width)}, expected [2 n_positions, {width}]")
    layers = {int(m.group(1)) for key in sd if (m := re.match(r"h\.(\d+)\.", key))}
    if not layers:
        raise ValueError(f"{_OWNER}: no transformer layers (keys 'h.<i>.*') in the state dict")
    fc_in, hidden = _shape_of(sd, "h.0.mlp.c_fc.weight", 2)
    if fc_in != width or hidden % width:
        raise ValueError(f"{_OWNER}: 'h.0.mlp.c_fc.weight' has shape {(fc_in, hidden)}, expected [{width}, r * {width}]")
    return dict(d=d, width=width, n_positions=rows // 2, n_layers=max(layers) + 1, mlp_ratio=hidden // width)


def _layer_params(sd: dict, i: int, w: int, hidden: int) -> dict:
    """Layer i's parameters (see the mapping in the module docstring)."""
    p = f"h.{i}."
    return {
        "ln_1": {"scale": _take(sd, p + "ln_1.weight", (w,)), "bias": _take(sd, p + "ln_1.bias", (w,))},
        "qkv_kernel": _take(sd, p + "attn.c_attn.weight", (w, 3 * w)),  # Conv1D [in, out]: no transpose
        "qkv_bias": _take(sd, p + "attn.c_attn.bias", (3 * w,)),
        "proj_kernel": _take(sd, p + "attn.c_proj.weight", (w, w)),
        "proj_bias": _take(sd, p + "attn.c_proj.bias", (w,)),
        "ln_2": {"scale": _take(sd, p + "ln_2.weight", (w,)), "bias": _take(sd, p + "ln_2.bias", (w,))},
        "fc_kernel": _take(sd, p + "mlp.c_fc.weight", (w, hidden)),
        "fc_bias": _take(sd, p + "mlp.c_fc.bias", (hidden,)),
        "out_kernel": _take(sd, p + "mlp.c_proj.weight", (hidden, w)),
        "out_bias": _take(sd, p + "mlp.c_proj.bias", (w,)),
    }


def _expected_keys(n_layers: int) -> set[str]:
    per_layer = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                 "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                 "mlp.c_proj.weight", "mlp.c_proj.bias"]
    outer = ["_read_in.weight", "_read_in.bias", "wpe.weight", "ln_f.weight", "ln_f.bias", "_read_out.weight", "_read_out.bias"]
    return set(outer) | {f"h.{i}.{k}" for i in range(n_layers) for k in per_layer}


def params_from_state_dict(state_dict, d: int, n_heads: int, dtype=None) -> tuple[GPT2Config, dict]:
    """(config, params) of their TransformerModel's state dict (torch tensors or arrays, keys as
    in the module docstring): `config` a plain GPT2Config (L, W, P, r read from the shapes, H =
    `n_heads`), `params` the pure-dict tree of `config.build(d)` (`nnx.to_pure_dict(nnx.state(
    model, nnx.Param))`) as arrays of `dtype` (default: JAX's default float). A one-line
    ValueError for a missing key, an unexpected key or a shape that does not fit."""
    sd = canonical_keys(state_dict)
    sizes = infer_sizes(sd)
    if sizes["d"] != d:
        raise ValueError(f"{_OWNER}: '_read_in.weight' has shape {(sizes['width'], sizes['d'])}: inputs of d = {sizes['d']}, not {d}")
    unexpected = sorted(set(sd) - _expected_keys(sizes["n_layers"]))
    if unexpected:
        raise ValueError(f"{_OWNER}: {len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    config = GPT2Config(n_layers=sizes["n_layers"], width=sizes["width"], n_heads=n_heads,
                        n_positions=sizes["n_positions"], mlp_ratio=sizes["mlp_ratio"])
    w, hidden, p = config.width, config.mlp_ratio * config.width, config.n_positions
    params = {
        "read_in_kernel": _take(sd, "_read_in.weight", (w, d)).T,  # [d, W]
        "read_in_bias": _take(sd, "_read_in.bias", (w,)),
        "positions": _take(sd, "wpe.weight", (2 * p, w)),  # [2P, W]
        "layers": {i: _layer_params(sd, i, w, hidden) for i in range(config.n_layers)},
        "ln_f": {"scale": _take(sd, "ln_f.weight", (w,)), "bias": _take(sd, "ln_f.bias", (w,))},
        "read_out_kernel": _take(sd, "_read_out.weight", (1, w))[0],  # [W]
        "read_out_bias": _take(sd, "_read_out.bias", (1,))[0],  # []
    }
    dtype = jnp.result_type(float) if dtype is None else dtype
    return config, jax.tree.map(lambda a: jnp.asarray(a, dtype), params)


def model_from_params(config: GPT2Config, d: int, params: dict) -> GPT2:
    """The GPT2 of `config` for d-dimensional inputs with the pure-dict `params` (no random init
    is computed: the model's structure comes from `nnx.eval_shape`)."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: config.build(d)))
    wanted = jax.tree.map(lambda a: tuple(a.shape), nnx.to_pure_dict(state))
    given = jax.tree.map(lambda a: tuple(a.shape), params)
    if wanted != given:
        raise ValueError(f"{_OWNER}: the parameter tree does not fit GPT2Config {config} at d = {d}")
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


# -- config.yaml ----------------------------------------------------------------------------------
def _scalar(text: str):
    """A plain YAML scalar: int, float, bool, null, '{}' (empty mapping) or a (quoted) string."""
    text = text.strip()
    if text in ("", "~", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text == "{}":
        return {}
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def parse_block_yaml(text: str) -> dict:
    """The nested mappings of a block-style YAML file (what `yaml.dump(..., default_flow_style=
    False)` writes: "key: value" lines nested by indentation), scalars by `_scalar`. List items
    and continuation lines of long strings are skipped: enough for the keys this module reads."""
    root: dict = {}
    stack = [(-1, root)]  # (indent, mapping)
    for line in text.splitlines():
        stripped = line.split(" #")[0].rstrip()
        match = re.match(r"^(\s*)([^\s:#'\"-][^:]*):(?:\s+(.*))?$", stripped)
        if not match:
            continue  # blank, comment, list item, continuation line
        indent, key, value = len(match.group(1)), match.group(2).strip(), match.group(3)
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        if value is None or value.strip() == "":
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = _scalar(value)
    return root


def read_config_yaml(path: Path) -> dict:
    """Their run's config.yaml as nested dicts: PyYAML's safe_load where installed, else
    `parse_block_yaml`."""
    text = Path(path).read_text()
    try:
        import yaml
    except ImportError:
        return parse_block_yaml(text)
    return yaml.safe_load(text)


def _get(conf: dict, dotted: str, path: Path):
    value = conf
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{_OWNER}: {path} has no {dotted}")
        value = value[part]
    return value


# -- checkpoint files ---------------------------------------------------------------------------
def locate(path: str | Path) -> tuple[Path, Path]:
    """(checkpoint file, config.yaml) of a run directory (its state.pt) or of a .pt file (the
    config.yaml beside it)."""
    path = Path(path)
    checkpoint = path / "state.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        raise ValueError(f"{_OWNER}: no checkpoint file {checkpoint}")
    config = checkpoint.parent / "config.yaml"
    if not config.is_file():
        raise ValueError(f"{_OWNER}: no config.yaml beside {checkpoint} (it holds model.n_head)")
    return checkpoint, config


def read_state_dict(checkpoint: Path) -> tuple[dict, int | None]:
    """(model state dict, training step or None) of a state.pt ({"model_state_dict": ...,
    "train_step": ...}) or a model_<step>.pt (the bare state dict), loaded on the CPU with
    `weights_only=True` (tensors and containers only; no code is unpickled)."""
    torch = _torch()
    try:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  torch raises many kinds for a file it cannot read
        raise ValueError(f"{_OWNER}: torch cannot read {checkpoint}: {type(error).__name__}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{_OWNER}: {checkpoint} holds a {type(obj).__name__}, not a state dict")
    if "model_state_dict" in obj:
        step = obj.get("train_step")
        return obj["model_state_dict"], None if step is None else int(step)
    match = re.fullmatch(r"model_(\d+)\.pt", checkpoint.name)
    return obj, int(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class GargCheckpoint:
    """A checkpoint read: the GPT2Config, input dimension d, parameters (pure dict), training
    step (None if the file does not say) and their config.yaml (nested dicts)."""

    config: GPT2Config
    d: int
    params: dict
    step: int | None
    conf: dict

    def model(self) -> GPT2:
        return model_from_params(self.config, self.d, self.params)


def read_garg(path: str | Path, dtype=None) -> GargCheckpoint:
    """Read a checkpoint (`locate`) and its config.yaml; the shapes must agree with the yaml's
    model.n_dims, n_positions, n_embd and n_layer."""
    checkpoint, yaml_path = locate(path)
    conf = read_config_yaml(yaml_path)
    want = {k: _get(conf, f"model.{k}", yaml_path) for k in ("n_dims", "n_positions", "n_embd", "n_layer", "n_head")}
    state_dict, step = read_state_dict(checkpoint)
    config, params = params_from_state_dict(state_dict, want["n_dims"], want["n_head"], dtype)
    got = {"n_positions": config.n_positions, "n_embd": config.width, "n_layer": config.n_layers}
    for key, value in got.items():
        if value != want[key]:
            raise ValueError(f"{_OWNER}: {checkpoint} has {key} = {value}, its config.yaml says {want[key]}")
    return GargCheckpoint(config, want["n_dims"], params, step, conf)


def load_garg(path: str | Path, dtype=None) -> GPT2:
    """Their model in a run directory (state.pt) or a state.pt / model_<step>.pt file, with its
    config.yaml beside it, as a GPT2 (parameters of `dtype`, default JAX's default float)."""
    return read_garg(path, dtype).model()


# -- as a run directory -------------------------------------------------------------------------
def garg_task(conf: dict, d: int):
    """This repo's task for their config.yaml's training.task, at T = training.curriculum.
    points.end pairs (what their eval.py evaluates at): `icl.experiments.garg.task`."""
    from icl.experiments.garg import task

    name = conf.get("training", {}).get("task")
    kwargs = conf.get("training", {}).get("task_kwargs") or {}
    if name not in GARG_TASKS:
        raise ValueError(f"{_OWNER}: task {name!r} has no counterpart here ({', '.join(GARG_TASKS)}); pass task= explicitly")
    fixed = {"relu_2nn_regression": ("hidden_layer_size", 100), "decision_tree": ("depth", 4)}.get(name)
    if fixed and kwargs.get(fixed[0], fixed[1]) != fixed[1]:
        raise ValueError(f"{_OWNER}: {name} with {fixed[0]} = {kwargs[fixed[0]]} has no counterpart here; pass task= explicitly")
    n_points = conf.get("training", {}).get("curriculum", {}).get("points", {}).get("end")
    if not isinstance(n_points, int):
        raise ValueError(f"{_OWNER}: config.yaml has no training.curriculum.points.end; pass task= explicitly")
    return task(GARG_TASKS[name], d, n_points, n_points, kwargs.get("sparsity", 3))


def run_config(checkpoint: GargCheckpoint, task=None, name: str | None = None):
    """The ExperimentConfig a run directory of `checkpoint` records: its model, `task` (default
    `garg_task`), Adam at their learning rate without clipping, their batch size, the causal
    objective, their curriculum (`train.curriculum="garg"`, where the task fits it), train.steps =
    the checkpoint's step (at least 1)."""
    from icl.config import ExperimentConfig, OptimConfig, TrainConfig

    task = garg_task(checkpoint.conf, checkpoint.d) if task is None else task
    if task.d != checkpoint.d:
        raise ValueError(f"{_OWNER}: the task has d = {task.d}, the model d = {checkpoint.d}")
    training = checkpoint.conf.get("training", {})
    optim = OptimConfig(name="adam", lr=float(training.get("learning_rate", 1e-4)), grad_clip=0.0)
    train = TrainConfig(steps=max(checkpoint.step or 0, 1), batch_size=int(training.get("batch_size", 64)), objective="causal")
    name = name or f"garg_{training.get('task', 'model')}"
    try:  # they trained with their curriculum; a task it does not fit (T != k d + 1) records none
        return ExperimentConfig(name=name, task=task, model=checkpoint.config, optim=optim,
                                train=dataclasses.replace(train, curriculum="garg"))
    except ValueError:
        return ExperimentConfig(name=name, task=task, model=checkpoint.config, optim=optim, train=train)


def write_run(path: str | Path, out_dir: str | Path, task=None, name: str | None = None) -> Path:
    """Write their checkpoint as a run directory that `icl compare` and `icl.runs.load` read:
    config.json (`run_config`) and checkpoints/<step>/ (orbax: the parameters as one seed [1, ...],
    and a freshly initialised Adam state; theirs is not carried over). No summary.json or
    log.jsonl: their training log is not in the checkpoint, and the held-out table is what
    `icl compare` computes. `out_dir` must not hold a checkpoint yet. Returns `out_dir`."""
    import orbax.checkpoint as ocp

    from icl import precision, rundir
    from icl.trainer import Trainer

    out_dir = Path(out_dir)
    if (out_dir / "checkpoints").exists() and any((out_dir / "checkpoints").iterdir()):
        raise ValueError(f"{_OWNER}: {out_dir} already holds checkpoints; use a new directory")
    checkpoint = read_garg(path, "float32")
    config = run_config(checkpoint, task, name)
    with precision.at_dtype(config.train.dtype):
        _, opt_state = Trainer(config, jax.local_devices()[:1]).init()  # the structure load_params restores
        params = jax.tree.map(lambda a: jnp.asarray(a)[None], checkpoint.params)  # [1, ...]: one seed
        out_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(out_dir / rundir.CONFIG, config.to_json())
        manager = rundir.manager(out_dir)
        try:
            manager.save(checkpoint.step or 0, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state}), force=True)
            manager.wait_until_finished()
        finally:
            manager.close()
    return out_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a Garg et al. (2022) PyTorch checkpoint as an icl run directory.")
    parser.add_argument("checkpoint", help="their run directory (state.pt + config.yaml) or a .pt file beside a config.yaml")
    parser.add_argument("out_dir", help="the run directory to write (then: icl compare OUT_DIR --against least_squares)")
    parser.add_argument("--name", default=None, help="the run's config name (default garg_<their task>)")
    args = parser.parse_args(argv)
    print(f"wrote {write_run(args.checkpoint, args.out_dir, name=args.name)}")


if __name__ == "__main__":
    main()
