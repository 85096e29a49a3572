"""``python -m statarb_kit.cli``: the ``statarb`` command."""

import sys

from .main import main

sys.exit(main())
