import sys

from cortex_fa.cli import main

sys.exit(main())
