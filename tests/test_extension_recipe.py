"""The docs' recipe for extending the project (README "Add a task family", docs/architecture.md
"How to add"), followed step by step without editing a file of the repository: a family and a
solver in a module of their own (written to tmp_path and imported, registered through the public
API), trained and compared through the command, in this process. Every assertion is a step of the
recipe; the test fails if one stops working."""

import importlib.util
import json
import sys
import textwrap

import jax
import numpy as np
import pytest

from icl import cli, rundir, solvers, tasks
from icl.config import ExperimentConfig

MODULE = '''
"""A toy extension: quadratic regression y = w . x^2 and a kernel-average learner."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from icl import solvers
from icl.precision import highest
from icl.tasks.base import Batch, check_inputs, check_non_negative, check_positive_int, register


@highest
def toy_kernel_mean(x_ctx, y_ctx, x_query, *, mask=None, bandwidth=1.0):
    """Nadaraya-Watson: y_hat(x_q) = sum_i m_i k_i y_i / sum_i m_i k_i,
    k_i = exp(-|x_i - x_q|^2 / (2 bandwidth^2)), m_i = mask (1 = present)."""
    x_ctx, y_ctx, x_query, squeeze = check_inputs(x_ctx, y_ctx, x_query)
    mask = jnp.ones_like(y_ctx) if mask is None else mask
    dist2 = jnp.sum((x_query[:, :, None, :] - x_ctx[:, None, :, :]) ** 2, axis=-1)  # [B, M, N]
    logits = -dist2 / (2 * bandwidth**2) + jnp.log(mask)[:, None, :]
    y_hat = jnp.einsum("bmn,bn->bm", jax.nn.softmax(logits, axis=-1), y_ctx)
    return y_hat[:, 0] if squeeze else y_hat


solvers.register("toy_kernel_mean", toy_kernel_mean, {"bandwidth": lambda task, _key: float(task.d) ** 0.5})


@register("toy_quadratic")
@dataclasses.dataclass(frozen=True)
class ToyQuadratic:
    """y = w . x^2 + noise, w ~ N(0, I), x ~ N(0, I)."""

    baselines: ClassVar[tuple[str, ...]] = ("least_squares(features=square)", "toy_kernel_mean", "gd")

    d: int = 2
    n_ctx: int = 6
    n_query: int = 1
    noise_std: float = 0.0

    def __post_init__(self):
        check_positive_int("toy_quadratic task", d=self.d, n_ctx=self.n_ctx, n_query=self.n_query)
        check_non_negative("toy_quadratic task", noise_std=self.noise_std)

    def sample(self, key, batch_size):
        key_x, key_w, key_noise = jax.random.split(key, 3)
        x = jax.random.normal(key_x, (batch_size, self.n_ctx + self.n_query, self.d))
        w = jax.random.normal(key_w, (batch_size, self.d), x.dtype)
        y = jnp.einsum("bnd,bd->bn", x**2, w) + self.noise_std * jax.random.normal(key_noise, x.shape[:2], x.dtype)
        return Batch.split(x, y, self.n_ctx, w=w)
'''


@pytest.fixture
def extension(tmp_path):
    """Write the module and import it (the import line a family in icl/tasks/ would get); undo
    both registrations afterwards."""
    path = tmp_path / "toy_extension.py"
    path.write_text(textwrap.dedent(MODULE))
    spec = importlib.util.spec_from_file_location("toy_extension", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_extension"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        from icl.tasks import base

        base._REGISTRY.pop("toy_quadratic", None)
        solvers._REGISTRY.pop("toy_kernel_mean", None)
        sys.modules.pop("toy_extension", None)


def test_the_documented_recipe_adds_a_family_and_a_solver(extension, tmp_path, monkeypatch, capsys):
    # registries: tasks.get builds it, its baselines are the default comparison, `icl list` shows both
    task = tasks.get("toy_quadratic", d=2)
    assert "toy_kernel_mean" in solvers.names() and "toy_quadratic" in tasks.names()
    assert ExperimentConfig(task=task).compare_against == extension.ToyQuadratic.baselines
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "toy_quadratic" in listing and "least_squares(features=square)*" in listing and "toy_kernel_mean" in listing

    # train from the command line: the family, the MLP embedding, a name for the run
    monkeypatch.chdir(tmp_path)
    command = ["train", "tiny", "--no-progress", "--set", "task=toy_quadratic", "--set", "model.embed_dim=8",
               "--set", "model.embed_hidden=16", "--set", "name=toy_mlp", "--set", "train.steps=40",
               "--set", "train.final_eval_tasks=400"]
    assert cli.main(command) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("toy_mlp-") and f"-> runs/{run_dir.name}" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"]["family"] == "toy_quadratic" and config["model"]["embed_dim"] == 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary["solvers"]) == list(extension.ToyQuadratic.baselines)
    rows = summary["solvers"]
    assert rows["least_squares(features=square)"]["loss"] < 1e-6 * summary["zero_loss"]  # noiseless, N = 6 >= d: exact
    assert rows["toy_kernel_mean"]["hparams"] == {"bandwidth": pytest.approx(2**0.5)}  # its declared default
    assert np.isfinite(summary["model"]["loss"][0])

    # compare: by default against the run's baselines; any spec, features and the new solver included
    assert cli.main(["compare", str(run_dir), "--tasks", "300"]) == 0
    assert list(json.loads((run_dir / "compare.json").read_text())["solvers"]) == list(extension.ToyQuadratic.baselines)
    against = "toy_kernel_mean(bandwidth=0.5),ridge(lam=0.1,features=poly2)"
    assert cli.main(["compare", str(run_dir), "--tasks", "300", "--against", against]) == 0
    table = json.loads((run_dir / "compare.json").read_text())["solvers"]
    assert table["toy_kernel_mean(bandwidth=0.5)"]["hparams"] == {"bandwidth": 0.5}
    assert table["ridge(lam=0.1,features=poly2)"]["hparams"] == {"lam": 0.1, "features": "poly2"}
    # another table on the finished run: the same directory, only the table recomputed
    assert cli.main([*command, "--set", "compare_against=toy_kernel_mean"]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    assert list(json.loads((run_dir / "summary.json").read_text())["solvers"]) == ["toy_kernel_mean"]
    assert [r["step"] for r in rundir.read_log(run_dir) if "event" not in r] == [0, 20, 40]

    # every prefix: the new solver by its mask, least squares on the squares exact from d examples on
    batch = task.sample(jax.random.key(0), 200)
    preds = solvers.prefix_predictions("toy_kernel_mean(bandwidth=0.7)", batch.x_ctx, batch.y_ctx, batch.x_query)
    for n in (1, 4):
        np.testing.assert_allclose(preds[:, n - 1], extension.toy_kernel_mean(
            batch.x_ctx[:, :n], batch.y_ctx[:, :n], batch.x_query, bandwidth=0.7), rtol=1e-10, atol=1e-12)
    curve = solvers.error_curve("least_squares(features=square)", batch, jax.random.key(1), n_boot=100)
    assert curve["mean"][0] > 0.1 and np.all(curve["mean"][1:] < 1e-12)


def test_a_misspelled_baseline_in_the_recipe_fails_at_import_naming_the_family(tmp_path):
    path = tmp_path / "toy_typo.py"
    path.write_text(textwrap.dedent(MODULE).replace('"toy_kernel_mean", "gd")', '"toy_kernel_maen", "gd")')
                    .replace('solvers.register("toy_kernel_mean"', 'solvers.register("toy_kernel_mean2"'))
    spec = importlib.util.spec_from_file_location("toy_typo", path)
    try:
        with pytest.raises(ValueError, match="task family 'toy_quadratic': baseline 'toy_kernel_maen': unknown solver"):
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        assert "toy_quadratic" not in tasks.names()
    finally:
        solvers._REGISTRY.pop("toy_kernel_mean2", None)
