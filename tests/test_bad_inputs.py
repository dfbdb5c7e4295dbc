"""Bad input gets one readable line naming the argument, never a traceback from inside JAX: the
`icl` command (exit code 2, one line on stderr) and the Python API (a ValueError)."""

import dataclasses

import jax
import numpy as np
import pytest

from icl import cli, solvers, tasks


def _one_line_error(capsys, argv) -> str:
    """Run `icl argv`; assert exit code 2 and one line on stderr; return that line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_inputs") / "run"
    assert cli.main(["train", "tiny", "--no-progress", "--set", "train.steps=10", "--out", str(out)]) == 0
    return out


# 1. solver specs: `icl compare --against` checks them as `icl train` checks compare_against
def test_compare_refuses_an_unknown_hyper_parameter_naming_it_and_the_valid_ones(run_dir, capsys):
    capsys.readouterr()
    line = _one_line_error(capsys, ["compare", str(run_dir), "--tasks", "20", "--against", "gd,ridge(foo=1)"])
    assert "--against: 'ridge(foo=1)'" in line and "'foo'" in line and "hyper-parameters: lam, features" in line
    assert not (run_dir / "compare.json").exists()


def test_compare_refuses_an_empty_value_naming_the_spec(run_dir, capsys):
    capsys.readouterr()
    line = _one_line_error(capsys, ["compare", str(run_dir), "--tasks", "20", "--against", "ridge(lam=)"])
    assert "solver spec 'ridge(lam=)': lam has no value" in line


def test_compare_refuses_a_value_the_solver_cannot_use(run_dir, capsys):
    capsys.readouterr()
    line = _one_line_error(capsys, ["compare", str(run_dir), "--tasks", "20", "--against", "ridge(lam=abc)"])
    assert "--against: 'ridge(lam=abc)' does not work on the linear task" in line


def test_train_and_the_api_refuse_the_same_specs(tmp_path, capsys, key):
    line = _one_line_error(capsys, ["train", "tiny", "--no-progress", "--set", "train.steps=5",
                                    "--set", "compare_against=ridge(foo=1)", "--out", str(tmp_path / "a")])
    assert "compare_against: 'ridge(foo=1)'" in line and "hyper-parameters: lam, features" in line
    line = _one_line_error(capsys, ["train", "tiny", "--no-progress", "--set", "train.steps=5",
                                    "--set", "compare_against=ridge(lam=)", "--out", str(tmp_path / "b")])
    assert "'ridge(lam=)': lam has no value" in line
    with pytest.raises(ValueError, match=r"least_squares\(\) got an unexpected keyword argument 'lam'; "
                                         r"its hyper-parameters: features$"):
        solvers.bind("least_squares", {"lam": 1.0})
    assert solvers.hparam_names("knn") == ("k", "features")  # mask is prefix evaluation's, not a hyper-parameter


# 2. task config numbers must be finite
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_train_refuses_a_non_finite_task_number(tmp_path, capsys, value):
    out = tmp_path / "run"
    line = _one_line_error(capsys, ["train", "tiny", "--no-progress", "--set", f"task.weight_std={value}", "--out", str(out)])
    assert line.startswith("error: linear task: weight_std must be finite, got ")
    assert not out.exists()


@pytest.mark.parametrize("family, field, value", [
    ("linear", "input_scale", float("inf")),
    ("linear", "noise_std", float("nan")),
    ("sine", "amplitude_range", (0.1, float("inf"))),
    ("linear_pool", "weight_std", float("inf")),
    ("linear_distractors", "distractor_std", float("nan")),
])
def test_every_family_refuses_non_finite_numbers(family, field, value):
    with pytest.raises(ValueError, match=f"^{family} task: {field} must be finite"):
        tasks.get(family, **{field: value})
    with pytest.raises(ValueError, match=f"^{family} task: {field} must be finite"):
        dataclasses.replace(tasks.get(family), **{field: value})


# 3. gd's w0 of the wrong shape
def test_gd_refuses_a_w0_of_the_wrong_shape():
    x, y, xq = np.ones((2, 5, 3)), np.ones((2, 5)), np.ones((2, 1, 3))
    for w0 in (np.zeros(4), np.zeros((3, 3)), np.zeros((2, 4))):
        with pytest.raises(ValueError, match=r"^gd: w0 must be \[d\] = \(3,\) or \[batch, d\] = \(2, 3\), got shape"):
            solvers.gd(x, y, xq, lr=0.1, w0=w0)
    shared, per_task = solvers.gd(x, y, xq, lr=0.1, w0=np.ones(3)), solvers.gd(x, y, xq, lr=0.1, w0=np.ones((2, 3)))
    np.testing.assert_allclose(shared, per_task)
    jitted = jax.jit(lambda w: solvers.gd(x, y, xq, lr=0.1, w0=w))
    np.testing.assert_allclose(jitted(np.ones(3)), shared)
    with pytest.raises(ValueError, match="gd: w0 must be"):
        jitted(np.ones(4))


# 5. a number as the key of a task's sample
@pytest.mark.parametrize("family", ["linear", "sine"])
def test_sample_refuses_a_number_as_key(family):
    task = tasks.get(family, n_ctx=5)
    with pytest.raises(ValueError, match=rf"^{family}\.sample: key must be a JAX random key, e.g\. jax\.random\.key\(0\)"):
        task.sample(0, 4)
    with pytest.raises(ValueError, match=r"jax\.random\.key\(3\)"):
        task.sample(np.int64(3), 4)
    assert task.sample(jax.random.key(0), 4).x_ctx.shape[:2] == (4, 5)
    assert task.sample(jax.random.PRNGKey(0), 4).x_ctx.shape[:2] == (4, 5)  # raw uint32 keys still work
