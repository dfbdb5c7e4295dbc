"""`python -m icl` is the `icl` command."""

import sys

from icl.cli import entry

sys.exit(entry())
