"""Checks of user input that fail with one readable line, and the one-line form of any error.

Every public entry point validates its plain-Python arguments with these (arrays and traced values
pass untouched, so functions stay jittable); the CLI prints `first_line(error)`.
"""

from __future__ import annotations

import numpy as np


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_int(owner: str, minimum: int = 1, **values) -> None:
    """ValueError "<owner>: <name> must be an integer >= <minimum>, got ..." unless every value is
    an int (not a bool) >= minimum."""
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def check_number(owner: str, positive: bool = False, **values) -> None:
    """ValueError for a value given as a Python or NumPy number that is not finite or is < 0
    (<= 0 when `positive`); arrays and traced values pass, so jit still works."""
    for name, value in values.items():
        if isinstance(value, (int, float, np.integer, np.floating)) and not (
            np.isfinite(value) and (value > 0 if positive else value >= 0)
        ):
            raise ValueError(f"{owner}: {name} must be {'> 0' if positive else '>= 0'} and finite, got {value!r}")
