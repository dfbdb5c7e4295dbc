"""In-context regression task families behind one registry.

    task = tasks.get("linear", d=10, n_ctx=10)   # tasks.names() lists the families
    batch = task.sample(key, batch_size)          # x_ctx [B,N,d], y_ctx [B,N], x_query [B,M,d], ...

A new family is one file with a frozen dataclass decorated `@register("name")` and one import
line below.
"""

from icl.tasks.base import Batch, Task, family, get, names, register

# registration: one import line per family (the README's recipe; isort leaves this file alone)
from icl.tasks import linear, sine  # noqa: F401  registers the families
from icl.tasks import sparse  # noqa: F401  registers the family
from icl.tasks import pool  # noqa: F401  registers the family
from icl.tasks import classification  # noqa: F401  registers the family
from icl.tasks import relu_net  # noqa: F401  registers the family
from icl.tasks import autoregressive  # noqa: F401  registers the family
from icl.tasks import linear_distractors  # noqa: F401  registers the family
from icl.tasks import decision_tree  # noqa: F401  registers the family
from icl.tasks import mixture  # noqa: F401  registers the family
from icl.tasks import noise_mixture  # noqa: F401  registers the family
from icl.tasks import kernel_gp  # noqa: F401  registers the family

__all__ = ["Batch", "Task", "family", "get", "names", "register"]
