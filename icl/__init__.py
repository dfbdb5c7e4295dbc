"""icl-gd: do transformers trained on in-context regression implement gradient descent?

    from icl import tasks, models, solvers, constructions
"""

from icl import constructions, models, solvers, tasks

__version__ = "0.1.0"
__all__ = ["constructions", "models", "solvers", "tasks"]
