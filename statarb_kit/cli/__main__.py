"""``python -m statarb_kit.cli``: the ``statarb`` command."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
