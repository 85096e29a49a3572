"""Binance's public dump files (data.binance.vision): a zip holding one CSV, or the CSV itself.
The one reader of that container, for trades, klines and funding dumps alike."""

from __future__ import annotations

import zipfile
from pathlib import Path


def dump_bytes(path: str | Path, error: type[Exception]) -> bytes:
    """The CSV bytes of a dump: the one CSV inside a zip, or a plain CSV file. ``error`` (the
    caller's file error type) for a corrupt or unreadable file, or a zip that does not hold
    exactly one CSV; its message names the file."""
    path = Path(path)
    try:
        if path.suffix != ".zip":
            return path.read_bytes()
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".csv")]
            if len(names) != 1:
                raise error(f"{path}: expected one CSV inside the zip, found {names}")
            return z.read(names[0])
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
