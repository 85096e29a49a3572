"""Settings for every test run, notebooks included (their kernels inherit this environment)."""

import os

# The dashboard notebook shows itself this many seconds under nbval, then stops its session.
os.environ.setdefault("STATARB_PREVIEW_S", "4")
