"""The provenance ledger: one append-only, hash-chained row per exported file, in the database of record.

Each row's hash covers its fields and the previous row's hash, so editing or deleting any
row breaks the chain from there on (``visuels ledger verify``). On SQLite, triggers refuse
UPDATE and DELETE; approvals and retouches are recorded as new rows pointing at their parent.
Rows are appended inside the caller's write transaction, so a file's ledger row and its outputs
row are committed together.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Connection, func, insert, select
from visuels.record.database import LEDGER_FIELDS, READ_AT_ONCE, Database, in_parts, ledger_table

GENESIS = "0" * 64


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
    key_visual: str | None = None  # a declined format's key visual: the job key of its format's file
    model_licence: str | None = None  # the licence id of the model that made it (None: unknown, or before)
    licence_override: str | None = None  # the campaign's reason to publish under a licence that refuses it
    noise_mark: str | None = None  # the starting-noise mark's payload (16 hex digits); None: not drawn from one


# Fields added after the chain began: hashed only when set, so the rows written before keep their hash.
LATER_FIELDS = ("key_visual", "model_licence", "licence_override", "noise_mark")


def _row_hash(previous: str, values: dict) -> str:
    values = {name: value for name, value in values.items() if value is not None or name not in LATER_FIELDS}
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{canonical}".encode()).hexdigest()


def append(connection: Connection, entry: LedgerEntry) -> int:
    """Add one row at the end of the chain, in the caller's write transaction; return its id."""
    values = entry.model_dump()
    values["created"] = values["created"] or datetime.now(UTC).isoformat(timespec="seconds")
    _one_appender(connection)
    tip = connection.execute(select(ledger_table.c.row_hash).order_by(ledger_table.c.id.desc()).limit(1)).first()
    previous = tip[0] if tip else GENESIS
    row = {name: values[name] for name in LEDGER_FIELDS}
    result = connection.execute(
        insert(ledger_table).values(**row, previous_hash=previous, row_hash=_row_hash(previous, row))
    )
    return int(result.inserted_primary_key[0])


def _rows(database: Database, *conditions: object) -> list[dict]:
    with database.reading() as connection:
        return _rows_in(connection, *conditions)


def _rows_in(connection: Connection, *conditions: object) -> list[dict]:
    query = select(ledger_table).where(*conditions).order_by(ledger_table.c.id)
    return [dict(row._mapping) for row in connection.execute(query)]


def verify_chain(database: Database) -> tuple[int, int | None]:
    """(rows checked, id of the first broken row or None), the rows read ``READ_AT_ONCE`` at a time."""
    previous, checked = GENESIS, 0
    with database.reading() as connection:
        query = select(ledger_table).order_by(ledger_table.c.id)
        for row in connection.execution_options(yield_per=READ_AT_ONCE).execute(query):
            checked += 1
            values = {name: getattr(row, name) for name in LEDGER_FIELDS}
            if row.previous_hash != previous or row.row_hash != _row_hash(previous, values):
                return checked + _count_after(connection, row.id), row.id
            previous = row.row_hash
    return checked, None


def _count_after(connection: Connection, row_id: int) -> int:
    query = select(func.count()).select_from(ledger_table).where(ledger_table.c.id > row_id)
    return int(connection.execute(query).scalar_one())


def newest_id(database: Database) -> int:
    """The id of the ledger's newest row (0 when empty): it changes whenever an output is recorded or
    replaced, a file is made from one, or a decision is taken, as each appends a row (appenders
    are serialised, so ids follow the order of commits)."""
    with database.reading() as connection:
        return connection.execute(select(func.max(ledger_table.c.id))).scalar() or 0


def latest_for_jobs(database: Database, job_keys: list[str]) -> dict[str, dict]:
    """The newest row of each job (its export, or the last review of it)."""
    latest: dict[str, dict] = {}
    for part in in_parts(job_keys):
        for row in _rows(database, ledger_table.c.job_key.in_(part)):
            latest[row["job_key"]] = row  # ordered by id: the newest row wins
    return latest


def approvals(database: Database, job_keys: list[str]) -> dict[str, str]:
    """The approval of each job's newest row ("pending" until a designer decides): the only
    column of the ledger that keeping the approved folder in line needs."""
    found: dict[str, str] = {}
    table = ledger_table
    with database.reading() as connection:
        for part in in_parts(job_keys):
            query = select(table.c.job_key, table.c.approval).where(table.c.job_key.in_(part)).order_by(table.c.id)
            found.update({key: approval for key, approval in connection.execute(query)})  # the newest row wins
    return found


def by_watermark(database: Database, watermark: str) -> dict | None:
    """The newest row whose file carries this watermark id."""
    rows = _rows(database, ledger_table.c.watermark == watermark)
    return rows[-1] if rows else None


def drawn_from_marked_noise(database: Database, watermark: str) -> bool | None:
    """Whether the picture of this watermark id was drawn from noise carrying the starting-noise
    mark, or edited from one that was (a retouch keeps most of it); None: the ledger does not know
    the watermark. False: an export from a photo, or from before the mark."""
    row = by_watermark(database, watermark)
    if row is None:
        return None
    while row is not None:
        if row["noise_mark"] is not None:
            return True
        parents = _rows(database, ledger_table.c.id == row["parent_id"]) if row["parent_id"] is not None else []
        row = parents[0] if parents else None
    return False


def noise_marks(database: Database) -> list[int]:
    """Every starting-noise payload the ledger records, once each."""
    with database.reading() as connection:
        query = select(ledger_table.c.noise_mark).where(ledger_table.c.noise_mark.is_not(None)).distinct()
        return sorted(int(value, 16) for (value,) in connection.execute(query))


def nearest_by_phash(database: Database, phash: str, within: int) -> dict | None:
    """The row whose perceptual hash is nearest ``phash``, at most ``within`` bits from it (the
    oldest of equals): a picture whose watermark is gone. Every row's hash is compared, read
    ``READ_AT_ONCE`` at a time with its id only; the row found is read whole."""
    wanted, nearest = int(phash, 16), None
    with database.reading() as connection:
        query = select(ledger_table.c.id, ledger_table.c.phash).where(ledger_table.c.phash != "").order_by("id")
        for row_id, other in connection.execution_options(yield_per=READ_AT_ONCE).execute(query):
            apart = (wanted ^ int(other, 16)).bit_count()
            if apart <= within and (nearest is None or apart < nearest[0]):
                nearest = (apart, row_id)
    return _rows(database, ledger_table.c.id == nearest[1])[0] if nearest else None


def by_sha256(database: Database, sha256: str) -> dict | None:
    """The newest row recording a file with exactly these bytes."""
    rows = _rows(database, ledger_table.c.sha256 == sha256)
    return rows[-1] if rows else None


def recorded_place(row: dict, output_root: Path | None) -> Path:
    """Where a row says its file was written: relative to the output folder, unless absolute."""
    recorded = Path(row["file"])
    return recorded if recorded.is_absolute() or output_root is None else output_root / recorded


def _one_appender(connection: Connection) -> None:
    """One appender at a time, readers never blocked: without it two transactions would read the
    same tip (SQLite's writers are serialised by BEGIN IMMEDIATE already)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE ledger IN SHARE ROW EXCLUSIVE MODE")


def has_new_bytes(connection: Connection, row: dict) -> bool:
    """Whether a later row of the same picture records other bytes than ``row``'s (a time-stamp
    added to them), read in the caller's write transaction as the next appender (two runs
    stamping one file at once: the second finds the first's row)."""
    _one_appender(connection)
    query = select(ledger_table.c.id).where(
        ledger_table.c.parent_id == row["id"],
        ledger_table.c.job_key == row["job_key"],
        ledger_table.c.sha256 != row["sha256"],
    )
    return connection.execute(query.limit(1)).first() is not None


def decided_in_run(connection: Connection, job_keys: list[str], run_id: str) -> bool:
    """Whether review run ``run_id`` recorded its decision on these jobs already, read in the
    caller's write transaction as the next appender (one run's answer applied twice at once: the
    second finds the first's rows). A run's decisions are recorded whole: one job's tells (read by
    its job key's index, not by a walk of the ledger under its lock)."""
    _one_appender(connection)
    query = select(ledger_table.c.id).where(
        ledger_table.c.job_key == job_keys[0], ledger_table.c.run_id == run_id, ledger_table.c.approval != "pending"
    )
    return connection.execute(query.limit(1)).first() is not None


def with_job_key_as_appender(connection: Connection, job_key: str) -> list[dict]:
    """Every row recorded under ``job_key``, oldest first, read in the caller's write transaction as
    the next appender (one edit marked by two processes at once: the second finds the first's row)."""
    _one_appender(connection)
    return _rows_in(connection, ledger_table.c.job_key == job_key)


def by_job_key(database: Database, job_key: str) -> dict | None:
    rows = with_job_key(database, job_key)
    return rows[-1] if rows else None


def with_job_key(database: Database, job_key: str) -> list[dict]:
    """Every row recorded under ``job_key``, oldest first (an edit finalized as PNG, then as JPEG)."""
    return _rows(database, ledger_table.c.job_key == job_key)


def derivatives(database: Database, job_keys: list[str]) -> dict[str, list[dict]]:
    """The retouches and outside edits made from the exports of ``job_keys`` (rows pointing at one of
    their rows with a key of their own; review decisions keep the export's key), by export key,
    oldest first."""
    made_from = ledger_table.alias("made_from")
    found: dict[str, list[dict]] = {}
    with database.reading() as connection:
        for part in in_parts(job_keys):
            query = (
                select(made_from.c.job_key.label("original_key"), ledger_table)
                .join(made_from, ledger_table.c.parent_id == made_from.c.id)
                .where(made_from.c.job_key.in_(part))
                .where(ledger_table.c.job_key != made_from.c.job_key)
                .order_by(ledger_table.c.id)
            )
            for row in connection.execute(query):
                values = dict(row._mapping)
                found.setdefault(values.pop("original_key"), []).append(values)
    return found


def lineage(database: Database, row: dict) -> list[dict]:
    """``row``, then the row it points at, and so on back to the first export: reviews, retouches, edits."""
    chain = [row]
    seen = {row["id"]}
    while chain[-1]["parent_id"] is not None and chain[-1]["parent_id"] not in seen:
        parents = _rows(database, ledger_table.c.id == chain[-1]["parent_id"])
        if not parents:
            break
        chain.append(parents[0])
        seen.add(parents[0]["id"])
    return chain
