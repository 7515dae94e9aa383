"""The provenance ledger: one append-only, hash-chained SQLite row per exported file.

Each row's hash covers its fields and the previous row's hash, so editing or deleting any
row breaks the chain from there on (``visuels ledger verify``). Triggers refuse UPDATE and
DELETE; approvals and retouches are recorded as new rows pointing at their parent.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from pipelines.errors import VisuelsError
from pipelines.marking.phash import MATCH_DISTANCE, distance

GENESIS = "0" * 64
FIELDS = (
    "created",
    "file",
    "sha256",
    "phash",
    "watermark",
    "job_key",
    "model_hash",
    "lora_hash",
    "charter_hash",
    "prompt",
    "seed",
    "width",
    "height",
    "run_id",
    "parent_id",
    "approval",
)
INTEGER_FIELDS = ("seed", "width", "height", "parent_id")
COLUMNS = ", ".join(f"{name} {'INTEGER' if name in INTEGER_FIELDS else 'TEXT'}" for name in FIELDS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {COLUMNS},
    previous_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_watermark ON ledger (watermark);
CREATE INDEX IF NOT EXISTS ledger_job_key ON ledger (job_key);
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""


class LedgerError(VisuelsError):
    """The ledger cannot be opened, or its chain is broken."""


class LedgerEntry(BaseModel):
    created: str = ""
    file: str
    sha256: str
    phash: str
    watermark: str
    job_key: str
    model_hash: str
    lora_hash: str | None
    charter_hash: str
    prompt: str
    seed: int
    width: int
    height: int
    run_id: str | None = None
    parent_id: int | None = None
    approval: str = "pending"


def ledger_path(output_root: Path) -> Path:
    """``$VISUELS_LEDGER``, else ``ledger.sqlite`` in the output folder."""
    explicit = os.environ.get("VISUELS_LEDGER")
    return Path(explicit) if explicit else output_root / "ledger.sqlite"


def _row_hash(previous: str, values: dict) -> str:
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise LedgerError(path, None, f"not a usable ledger database ({exc})") from None
    try:
        yield connection
    finally:
        connection.close()


def append(path: Path, entry: LedgerEntry) -> int:
    """Add one row at the end of the chain; return its id. Safe with several writers."""
    values = entry.model_dump()
    values["created"] = values["created"] or datetime.now(UTC).isoformat(timespec="seconds")
    with _connect(path) as connection:
        connection.execute("BEGIN IMMEDIATE")  # one writer at a time reads the tip and appends
        try:
            tip = connection.execute("SELECT row_hash FROM ledger ORDER BY id DESC LIMIT 1").fetchone()
            previous = tip[0] if tip else GENESIS
            columns = ", ".join(FIELDS)
            placeholders = ", ".join("?" for _ in FIELDS)
            cursor = connection.execute(
                f"INSERT INTO ledger ({columns}, previous_hash, row_hash) VALUES ({placeholders}, ?, ?)",
                [values[name] for name in FIELDS] + [previous, _row_hash(previous, values)],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid)


def _rows(connection: sqlite3.Connection, where: str = "", parameters: tuple = ()) -> list[dict]:
    connection.row_factory = sqlite3.Row
    return [dict(row) for row in connection.execute(f"SELECT * FROM ledger {where} ORDER BY id", parameters)]


def verify_chain(path: Path) -> tuple[int, int | None]:
    """(rows checked, id of the first broken row or None)."""
    if not path.is_file():
        raise LedgerError(path, None, "ledger not found")
    with _connect(path) as connection:
        previous = GENESIS
        rows = _rows(connection)
        for row in rows:
            values = {name: row[name] for name in FIELDS}
            if row["previous_hash"] != previous or row["row_hash"] != _row_hash(previous, values):
                return len(rows), row["id"]
            previous = row["row_hash"]
        return len(rows), None


def latest_for_jobs(path: Path, job_keys: list[str]) -> dict[str, dict]:
    """The newest row of each job (its export, or the last review of it), in one query."""
    if not path.is_file() or not job_keys:
        return {}
    with _connect(path) as connection:
        connection.execute("CREATE TEMP TABLE wanted (job_key TEXT PRIMARY KEY)")
        connection.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(key,) for key in job_keys])
        rows = _rows(connection, "WHERE job_key IN (SELECT job_key FROM wanted)")
    return {row["job_key"]: row for row in rows}  # ordered by id: the newest row wins


def find(path: Path, watermark: str | None = None, phash: str | None = None) -> tuple[dict | None, str | None]:
    """The newest row with this watermark id, else the nearest perceptual hash; and how it was found."""
    if not path.is_file():
        return None, None
    with _connect(path) as connection:
        if watermark:
            rows = _rows(connection, "WHERE watermark = ?", (watermark,))
            if rows:
                return rows[-1], "watermark"
        if phash:
            scored = [(distance(phash, row["phash"]), row) for row in _rows(connection)]
            close = [item for item in scored if item[0] <= MATCH_DISTANCE]
            if close:
                return min(close, key=lambda item: item[0])[1], "perceptual hash"
    return None, None
