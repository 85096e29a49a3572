"""Files shipped with the package."""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidParameter


def notebook_path(name: str = "dashboard.ipynb") -> Path:
    """A notebook shipped with the package (wheel installs) or beside it (source checkouts)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "notebooks" / name, package.parent / "notebooks" / name):
        if candidate.is_file():
            return candidate
    raise InvalidParameter(f"notebook {name!r} is not installed with statarb_kit")
