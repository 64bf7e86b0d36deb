"""Export events to JSON Lines, CSV or Parquet, and read such exports back.

Every format carries every field, so an export can be verified on its own
(:func:`load_export` + :func:`~dosewise.ledger.events.verify_rows`). JSON Lines
holds the payload as a JSON object; CSV and Parquet hold it as its canonical JSON
text (column ``payload``). Times are the stored ISO 8601 UTC strings.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from dosewise.errors import InputError
from dosewise.ledger.events import COLUMNS, Event

__all__ = ["FORMATS", "export_events", "load_export"]

FORMATS = ("jsonl", "csv", "parquet")
_BATCH = 50_000


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise InputError(f"unknown export format; choose one of {', '.join(FORMATS)}", field="format",
                         value=format)


def _parquet_schema() -> Any:
    import pyarrow as pa

    fields = [pa.field(name, pa.string()) for name in COLUMNS]
    fields[0] = pa.field("seq", pa.int64(), nullable=False)
    return pa.schema(fields)


def export_events(events: Iterable[Event], path: str | Path, format: str = "jsonl") -> int:
    """Stream ``events`` to ``path`` in ``format``; returns the number written."""
    _check_format(format)
    path = Path(path)
    n = 0
    if format == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for ev in events:
                fh.write(json.dumps(ev.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False))
                fh.write("\n")
                n += 1
    elif format == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for ev in events:
                writer.writerow(ev.to_row())
                n += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _parquet_schema()
        with pq.ParquetWriter(path, schema) as writer:
            it = iter(events)
            while batch := [ev.to_row() for ev in islice(it, _BATCH)]:
                columns = list(zip(*batch, strict=True))
                writer.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=schema))
                n += len(batch)
            if n == 0:
                writer.write_table(schema.empty_table())
    return n


def _iter_rows(path: Path, format: str) -> Iterator[tuple[Any, ...]]:
    if format == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    d = json.loads(line)
                    d["payload"] = json.dumps(d["payload"], sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False)
                    yield tuple(d[c] for c in COLUMNS)
    elif format == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            if tuple(header) != COLUMNS:
                raise InputError("not a dosewise ledger export", file=str(path), field="header", value=header)
            for rec in reader:
                # csv has no null: empty cells of optional columns are None
                yield tuple(int(v) if i == 0 else (v if v != "" or i in (7,) else None)
                            for i, v in enumerate(rec))
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for batch in table.to_batches(_BATCH):
            cols = [batch.column(name).to_pylist() for name in COLUMNS]
            yield from zip(*cols, strict=True)


def load_export(path: str | Path, format: str | None = None) -> list[Event]:
    """Read an export back into events (format from the suffix unless given)."""
    path = Path(path)
    fmt = format or path.suffix.lstrip(".").lower()
    _check_format(fmt)
    return [Event.from_row(row) for row in _iter_rows(path, fmt)]
