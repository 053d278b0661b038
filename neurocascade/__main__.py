"""`python -m neurocascade ...`: the same command line as the `neurocascade` script (neurocascade.cli)."""

import sys

from neurocascade.cli import main

sys.exit(main(prog_name="neurocascade"))
