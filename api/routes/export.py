"""A vehicle's stored messages over a time window as a file: CSV or Parquet (scope
``export``), one row per message, the columns of
:data:`roadledger.db.telemetry_read.EXPORT_COLUMNS`, in ``(ts, seq)`` order.

CSV is streamed as it is read from a server-side cursor, so memory stays one batch whatever
the window holds. Parquet is written batch by batch (one row group each) into an anonymous
temporary file first (a Parquet file ends with its index), then streamed from it; a failure
while reading the rows is then still an error answer rather than a truncated file.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from typing import IO, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.access import require_access
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.time_window import TimeWindow, WindowDep
from contracts.access import Scope
from roadledger.db.telemetry_read import EXPORT_COLUMNS, export_batches

__all__ = ["router"]

router = APIRouter(prefix="/v1/vehicles", tags=["vehicle data"], responses=ERROR_RESPONSES)

EXPORT = "GET /v1/vehicles/{device_id}/export"
_CHUNK = 1 << 20
_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("seq", pa.int64()),
        ("ts_ms", pa.int64()),
        ("recv_ms", pa.int64()),
        ("odo_m", pa.int64()),
        ("lat_e7", pa.int32()),
        ("lon_e7", pa.int32()),
        ("spd_cms", pa.int32()),
        ("hdg_cdeg", pa.int32()),
        ("segment_id", pa.int32()),
        ("leaf_hash", pa.string()),
    ]
)
assert tuple(_SCHEMA.names) == EXPORT_COLUMNS
_MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


async def _csv(pool: PoolDep, device_id: str, window: TimeWindow) -> AsyncIterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    yield out.getvalue().encode()
    async for rows in export_batches(pool, device_id, window.from_ms, window.to_ms):
        out.seek(0)
        out.truncate()
        writer.writerows(rows)  # None is written as an empty field
        yield out.getvalue().encode()


async def _parquet(pool: PoolDep, device_id: str, window: TimeWindow) -> IO[bytes]:
    import tempfile

    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stream once sent
    try:
        with pq.ParquetWriter(spool, _SCHEMA) as parquet:
            async for rows in export_batches(pool, device_id, window.from_ms, window.to_ms):
                table = pa.Table.from_pylist(
                    [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows], _SCHEMA
                )
                await asyncio.to_thread(parquet.write_table, table)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    # A sync iterator: Starlette reads it in a worker thread, off the event loop.
    with spool:
        while chunk := spool.read(_CHUNK):
            yield chunk


@router.get(
    "/{device_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {_MEDIA["csv"]: {}, _MEDIA["parquet"]: {}}}},
)
async def export(
    device_id: str,
    window: WindowDep,
    principal: PrincipalDep,
    pool: PoolDep,
    format: Literal["csv", "parquet"] = Query(default="csv", description="File format"),
) -> StreamingResponse:
    """Every stored message of the vehicle in ``[from_ms, to_ms)`` as CSV (streamed) or
    Parquet, named ``<device_id>_<from_ms>_<to_ms>.<format>`` (scope ``export``)."""
    await require_access(pool, principal, device_id, Scope.EXPORT, action=EXPORT)
    name = f"{device_id}_{window.from_ms}_{window.to_ms}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        body = _csv(pool, device_id, window)
        return StreamingResponse(body, media_type=_MEDIA["csv"], headers=headers)
    spool = await _parquet(pool, device_id, window)
    return StreamingResponse(_chunks(spool), media_type=_MEDIA["parquet"], headers=headers)
