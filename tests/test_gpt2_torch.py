"""Garg et al.'s PyTorch checkpoints as `icl.models.gpt2.GPT2` (`icl.models.gpt2_torch`): the
converted model's outputs against Hugging Face `transformers`' GPT2Model run as their
TransformerModel runs it (read-in, inputs_embeds, read-out at the x tokens), on random weights
(every tensor ~ N(0, 0.2^2), LayerNorm gains and biases included) in float32 (1e-4) and float64
(1e-10); the one-line errors; a round trip through torch.save, config.yaml and load_garg; and a
run directory that `icl.runs.load` and `icl compare` read. Needs torch and transformers
(`pip install 'icl-gd[torch]'`); skipped without them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch: pip install 'icl-gd[torch]'")
transformers = pytest.importorskip("transformers", reason="needs transformers: pip install 'icl-gd[torch]'")

from icl import precision, runs  # noqa: E402
from icl.models import gpt2_torch  # noqa: E402

# (n_layers, width, n_heads, d, n_positions, T): two configs, T = n_positions and T < n_positions
CONFIGS = [(2, 32, 2, 5, 11, 11), (3, 64, 4, 3, 8, 6)]
STD = 0.2


class GargTransformer(torch.nn.Module):
    """Their TransformerModel's structure and forward (src/models.py): read-in, GPT2Model on
    inputs_embeds with 2P positions and no dropout, read-out, predictions at the x tokens."""

    def __init__(self, n_dims, n_positions, n_embd, n_layer, n_head):
        super().__init__()
        config = transformers.GPT2Config(n_positions=2 * n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
        self._read_in = torch.nn.Linear(n_dims, n_embd)
        self._backbone = transformers.GPT2Model(config)
        self._read_out = torch.nn.Linear(n_embd, 1)

    def forward(self, xs, ys):  # xs [B, T, d], ys [B, T] -> [B, T]
        b, t, d = xs.shape
        ys_wide = torch.cat([ys.view(b, t, 1), torch.zeros(b, t, d - 1, dtype=xs.dtype)], dim=2)  # [B, T, d]
        zs = torch.stack([xs, ys_wide], dim=2).view(b, 2 * t, d)  # x_1, (y_1, 0..0), x_2, ...
        out = self._backbone(inputs_embeds=self._read_in(zs)).last_hidden_state  # [B, 2T, W]
        return self._read_out(out)[:, ::2, 0]


def torch_model(n_layers, width, n_heads, d, n_positions, seed=0):
    """Their model with every tensor of its state dict redrawn ~ N(0, STD^2), in eval mode."""
    torch.manual_seed(seed)
    model = GargTransformer(d, n_positions, width, n_layers, n_heads)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.normal_(0.0, STD)
    return model.eval()


def sequences(d, t, seed=1, b=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, t, d)), rng.standard_normal((b, t))


def torch_predictions(model, x, y, dtype):
    model = model.to(dtype)
    with torch.no_grad():
        return model(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)).numpy()


def jax_predictions(state_dict, d, n_heads, x, y, dtype):
    """predict_prefixes of the converted model, computed at `dtype`; and predict at the last x."""
    with precision.at_dtype(dtype):
        config, params = gpt2_torch.params_from_state_dict(state_dict, d, n_heads, dtype=dtype)
        model = gpt2_torch.model_from_params(config, d, params)
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        prefixes = np.asarray(model.predict_prefixes(x, y))
        query = np.asarray(model.predict(x[:, :-1], y[:, :-1], x[:, -1:]))[:, 0]
    return prefixes, query


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-4), ("float64", 1e-10)])
@pytest.mark.parametrize("sizes", CONFIGS, ids=lambda s: "L{}_W{}_H{}_d{}_P{}_T{}".format(*s))
def test_matches_hugging_face_gpt2(sizes, dtype, tol):
    n_layers, width, n_heads, d, n_positions, t = sizes
    model = torch_model(n_layers, width, n_heads, d, n_positions)
    x, y = sequences(d, t)
    want = torch_predictions(model, x, y, getattr(torch, dtype))
    prefixes, query = jax_predictions(model.state_dict(), d, n_heads, x, y, dtype)
    assert prefixes.shape == want.shape == (x.shape[0], t)
    assert np.std(want) > 0.01  # outputs that vary, by far more than the float32 tolerance
    assert max_diff(prefixes, want) <= tol
    assert max_diff(query, want[:, -1]) <= tol  # one-pass queries: the same prediction at x_T


def test_key_prefixes_and_ignored_buffers():
    """"module." (DataParallel) and bare backbone keys give the same parameters; wte and the
    causal-mask buffers older transformers saved are ignored."""
    model = torch_model(2, 32, 2, 5, 11)
    sd = model.state_dict()
    variants = [
        {f"module.{k}": v for k, v in sd.items()},
        {k.removeprefix("_backbone."): v for k, v in sd.items()},
        {**sd, "_backbone.h.0.attn.bias": torch.ones(1, 1, 22, 22), "_backbone.h.1.attn.masked_bias": torch.tensor(-1e4)},
    ]
    config, want = gpt2_torch.params_from_state_dict(sd, 5, 2)
    assert (config.n_layers, config.width, config.n_heads, config.n_positions, config.mlp_ratio) == (2, 32, 2, 11, 4)
    for variant in variants:
        got_config, got = gpt2_torch.params_from_state_dict(variant, 5, 2)
        assert got_config == config
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), got, want))


def _one_line_error(state_dict, match, d=5, n_heads=2):
    with pytest.raises(ValueError, match=match) as info:
        gpt2_torch.params_from_state_dict(state_dict, d, n_heads)
    assert "\n" not in str(info.value)


def test_bad_state_dicts_give_one_line_errors():
    sd = dict(torch_model(2, 32, 2, 5, 11).state_dict())
    _one_line_error({k: v for k, v in sd.items() if k != "_backbone.h.1.mlp.c_fc.bias"}, "missing key 'h.1.mlp.c_fc.bias'")
    _one_line_error({k: v for k, v in sd.items() if not k.startswith("_read_out")}, "missing key '_read_out")
    _one_line_error({**sd, "_read_out.weight": torch.zeros(1, 33)}, r"'_read_out.weight' has shape \(1, 33\), expected \(1, 32\)")
    _one_line_error({**sd, "_backbone.h.0.attn.c_attn.weight": torch.zeros(96, 32)}, "'h.0.attn.c_attn.weight' has shape")
    _one_line_error({**sd, "_backbone.wpe.weight": torch.zeros(21, 32)}, "wpe.weight")
    _one_line_error({**sd, "_backbone.h.2.ln_1.weight": torch.zeros(32)}, "missing key 'h.2.ln_1.bias'")
    _one_line_error({**sd, "_backbone.h.0.extra": torch.zeros(1)}, "unexpected key")
    _one_line_error(sd, "inputs of d = 5, not 4", d=4)
    with pytest.raises(ValueError, match="divisible"):
        gpt2_torch.params_from_state_dict(sd, 5, 3)


CONFIG_YAML = """\
model:
  family: gpt2
  n_dims: {d}
  n_embd: {width}
  n_head: {n_heads}
  n_layer: {n_layers}
  n_positions: {n_positions}
out_dir: ../models/linear_regression/0b3c7a4e
test_run: false
training:
  batch_size: 64
  curriculum:
    dims:
      end: {d}
      inc: 1
      interval: 2000
      start: {d}
    points:
      end: {n_positions}
      inc: 2
      interval: 2000
      start: {n_positions}
  data: gaussian
  learning_rate: 0.0001
  resume_id: null
  task: linear_regression
  task_kwargs: {{}}
  train_steps: 5001
wandb:
  entity: your-entity
  log_every_steps: 100
  name: linear_regression_toy
  notes: 'a long note that yaml.dump wraps

    onto a second line: with a colon'
  project: in-context-training
"""


def garg_run_dir(tmp_path, sizes, step=7, bare=False):
    """A directory as their train.py leaves it: config.yaml and state.pt (or model_<step>.pt)."""
    n_layers, width, n_heads, d, n_positions, _ = sizes
    model = torch_model(n_layers, width, n_heads, d, n_positions)
    (tmp_path / "config.yaml").write_text(
        CONFIG_YAML.format(d=d, width=width, n_heads=n_heads, n_layers=n_layers, n_positions=n_positions))
    if bare:
        path = tmp_path / f"model_{step}.pt"
        torch.save(model.state_dict(), path)
    else:
        path = tmp_path / "state.pt"
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict(), "train_step": step}, path)
    return path, model


def test_block_yaml_parser_reads_their_config():
    text = CONFIG_YAML.format(d=5, width=32, n_heads=2, n_layers=2, n_positions=11)
    conf = gpt2_torch.parse_block_yaml(text)
    assert conf["model"] == {"family": "gpt2", "n_dims": 5, "n_embd": 32, "n_head": 2, "n_layer": 2, "n_positions": 11}
    assert conf["training"]["curriculum"]["points"]["end"] == 11
    assert conf["training"]["task_kwargs"] == {} and conf["training"]["resume_id"] is None
    assert conf["training"]["learning_rate"] == 1e-4 and conf["test_run"] is False
    assert conf["wandb"]["project"] == "in-context-training"
    yaml = pytest.importorskip("yaml")
    assert {k: conf[k] for k in ("model", "training")} == {k: yaml.safe_load(text)[k] for k in ("model", "training")}


@pytest.mark.parametrize("bare", [False, True], ids=["state.pt", "model_step.pt"])
def test_round_trip_through_torch_save(tmp_path, bare):
    sizes = CONFIGS[0]
    path, model = garg_run_dir(tmp_path, sizes, bare=bare)
    x, y = sequences(sizes[3], sizes[5], seed=2)
    want = torch_predictions(model, x, y, torch.float64)
    checkpoint = gpt2_torch.read_garg(tmp_path if not bare else path, "float64")
    assert checkpoint.step == 7 and checkpoint.d == sizes[3]
    with precision.at_dtype("float64"):
        got = np.asarray(checkpoint.model().predict_prefixes(jnp.asarray(x), jnp.asarray(y)))
        got_loaded = np.asarray(gpt2_torch.load_garg(path, "float64").predict_prefixes(jnp.asarray(x), jnp.asarray(y)))
    assert max_diff(got, want) <= 1e-10 and max_diff(got_loaded, want) <= 1e-10


def test_files_give_one_line_errors(tmp_path):
    sizes = CONFIGS[0]
    with pytest.raises(ValueError, match="no checkpoint file"):
        gpt2_torch.load_garg(tmp_path)
    path, _ = garg_run_dir(tmp_path, sizes)
    (tmp_path / "config.yaml").write_text(CONFIG_YAML.format(d=5, width=32, n_heads=2, n_layers=3, n_positions=11))
    with pytest.raises(ValueError, match="n_layer = 2, its config.yaml says 3"):
        gpt2_torch.load_garg(path)
    (tmp_path / "config.yaml").write_text("model:\n  n_dims: 5\n")
    with pytest.raises(ValueError, match="has no model.n_positions"):
        gpt2_torch.load_garg(path)
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(ValueError, match="no config.yaml"):
        gpt2_torch.load_garg(path)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "config.yaml").write_text(CONFIG_YAML.format(d=5, width=32, n_heads=2, n_layers=2, n_positions=11))
    with pytest.raises(ValueError, match="torch cannot read"):
        gpt2_torch.load_garg(tmp_path / "broken.pt")


def test_run_directory_for_runs_and_compare(tmp_path, capsys):
    from icl import cli

    sizes = CONFIGS[0]
    (tmp_path / "garg").mkdir()
    _, model = garg_run_dir(tmp_path / "garg", sizes)
    out = gpt2_torch.write_run(tmp_path / "garg", tmp_path / "run")
    run = runs.load(out)
    assert run.step == 7 and run.summary is None
    assert run.config.task.d == sizes[3] and run.config.task.n_ctx + run.config.task.n_query == sizes[4]
    x, y = sequences(sizes[3], sizes[5], seed=3)
    want = torch_predictions(model, x, y, torch.float32)
    with precision.at_dtype("float32"):
        got = np.asarray(run.models()[0].predict_prefixes(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)))
    assert max_diff(got, want) <= 1e-4
    assert cli.main(["compare", str(out), "--against", "least_squares", "--tasks", "64"]) == 0
    assert "least_squares" in capsys.readouterr().out and (out / "compare.json").exists()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        gpt2_torch.write_run(tmp_path / "garg", out)
