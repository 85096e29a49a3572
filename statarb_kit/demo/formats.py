"""Binance's public formats, written: kline dump files as the data site zips them, their
``.CHECKSUM`` files, the S3 bucket listing (ListObjects v1) and ``/fapi/v1/klines`` rows. The
offline demo site serves them, and so does the test suite's fake Binance."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping

import pandas as pd

#: The header row of a kline dump (files from 2022 on have it; older ones do not).
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                "taker_buy_quote_volume,ignore")
#: The columns of a bars frame, in a dump's order.
KLINE_COLUMNS = ["start", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
                 "taker_buy_volume", "taker_buy_quote_volume"]


def kline_zip(bars: pd.DataFrame, name: str, header: bool, microseconds: bool = False) -> bytes:
    """A kline dump as Binance zips it: one CSV named as the zip, with or without its header row,
    times in ms (or µs, as spot files since 2025)."""
    k = bars.copy()
    if microseconds:
        k["start"] *= 1000
        k["close_time"] = k["close_time"] * 1000 + 999
    k["ignore"] = 0
    text = k[[*KLINE_COLUMNS, "ignore"]].to_csv(index=False, header=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name.replace(".zip", ".csv"), (KLINE_HEADER + "\n" if header else "") + text)
    return buf.getvalue()


def checksum_file(path: str, data: bytes) -> bytes:
    """The ``.CHECKSUM`` the data site publishes beside ``path``: sha256, two spaces, the name."""
    return f"{hashlib.sha256(data).hexdigest()}  {path.rsplit('/', 1)[1]}\n".encode()


def bucket_listing(files: Mapping[str, bytes], prefix: str, delimiter: str, marker: str, page: int) -> bytes:
    """The S3 ListObjects (v1) answer over ``files`` (paths from "/"): the keys under ``prefix``
    and, with a ``delimiter``, the common prefixes, after ``marker``, ``page`` to a page
    (IsTruncated and NextMarker when there are more)."""
    keys, prefixes = set(), set()
    for path in files:
        key = path.lstrip("/")
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if delimiter and delimiter in rest:
            prefixes.add(prefix + rest[: rest.index(delimiter) + 1])
        else:
            keys.add(key)
    entries = [e for e in sorted([(k, "key") for k in keys] + [(p, "prefix") for p in prefixes]) if e[0] > marker]
    shown, more = entries[:page], len(entries) > page
    body = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            f"<Name>data.binance.vision</Name><Prefix>{prefix}</Prefix><Marker>{marker}</Marker>",
            f"<MaxKeys>{page}</MaxKeys><Delimiter>{delimiter}</Delimiter>",
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"]
    if more:
        body.append(f"<NextMarker>{shown[-1][0]}</NextMarker>")
    for name, kind in shown:
        body.append(f"<Contents><Key>{name}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                    f"<Size>{len(files['/' + name])}</Size></Contents>" if kind == "key"
                    else f"<CommonPrefixes><Prefix>{name}</Prefix></CommonPrefixes>")
    body.append("</ListBucketResult>")
    return "".join(body).encode()


def kline_rows(bars: pd.DataFrame) -> list[list]:
    """``/fapi/v1/klines`` rows of ``bars``: 12 values each, prices and volumes as strings."""
    return [[int(r.start), f"{r.open}", f"{r.high}", f"{r.low}", f"{r.close}", f"{r.volume}", int(r.close_time),
             f"{r.quote_volume}", int(r.trades), f"{r.taker_buy_volume}", f"{r.taker_buy_quote_volume}", "0"]
            for r in bars.itertuples()]
