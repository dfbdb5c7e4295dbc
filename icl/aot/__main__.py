"""`python -m icl.aot ...`: the same as `icl aot ...`."""

import sys

from icl.aot.command import main

sys.exit(main())
