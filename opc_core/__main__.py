"""``python -m opc_core ...``: the headless command line."""

import sys

from opc_core.cli.main import main

sys.exit(main())
