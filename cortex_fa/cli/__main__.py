"""``python -m cortex_fa.cli``: the same as the ``cortex-fa`` command."""

import sys

from cortex_fa.cli import main

# The guard matters beyond style: servers that import modules by name (Panel's
# /components route) must not run the command line as a side effect.
if __name__ == "__main__":
    sys.exit(main())
