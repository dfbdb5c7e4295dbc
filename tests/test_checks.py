"""One-line input checks and the one-line form of errors."""

import numpy as np
import pytest

from icl import solvers, tasks
from icl.checks import check_int, check_number, first_line


def test_first_line():
    assert first_line(ValueError("a\nb")) == "a"
    assert first_line(ValueError("  \n")) == "ValueError"


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match=r"^owner: n must be an integer >= 1, got "):
        check_int("owner", n=value)


def test_check_int_and_number_accept():
    check_int("o", 0, a=0, b=np.int64(3))
    check_number("o", a=0.0, b=np.float32(2))
    check_number("o", positive=True, a=np.ones(3))  # arrays are left to the function


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_check_number_refuses(value):
    with pytest.raises(ValueError, match="must be >= 0 and finite"):
        check_number("o", x=value)
    with pytest.raises(ValueError, match="must be > 0 and finite"):
        check_number("o", positive=True, x=0.0)


def test_task_defaults_fill_only_what_is_open(key):
    task = tasks.get("linear", d=4, n_ctx=8, noise_std=0.5)
    assert solvers.task_defaults("ridge", task, key, {}) == {"lam": 0.25}
    assert solvers.task_defaults("ridge", task, key, {"lam": 1.0}) == {}
    assert solvers.task_defaults("knn", task, key, {}) == {"k": 3}
    lr = solvers.task_defaults("gd", task, key, {})["lr"]
    assert lr == pytest.approx(float(solvers.optimal_gd_lr(task, key)))
    with pytest.raises(ValueError, match="unknown solver"):
        solvers.task_defaults("nope", task, key, {})
    with pytest.raises(ValueError, match="needs a pool"):
        solvers.task_defaults("dmmse", task, key, {})
