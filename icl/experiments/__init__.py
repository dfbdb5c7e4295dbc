"""Named experiments: the default job, one run per task family, and every run of the paper's
figures and the follow-up claims. `icl list` shows them; `icl train NAME [--quick]` trains any one.

Every module of this package registers its configs (`registry.register`) when imported, and all
are imported here (`paper` first, then by name): a new study is one new module in this folder.
Their docstrings say the command, the runtime on a 2-core CPU and the numbers to reproduce.
"""

from __future__ import annotations

import importlib
import pkgutil

from icl.experiments.registry import DEFAULT, entry, get, names, register, scaled, studies

_MODULES = sorted((m.name for m in pkgutil.iter_modules(__path__) if m.name != "registry"), key=lambda n: (n != "paper", n))
for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["DEFAULT", "entry", "get", "names", "register", "scaled", "studies"]
