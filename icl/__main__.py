"""`python -m icl` is the `icl` command."""

import sys

from icl.cli import main

sys.exit(main())
