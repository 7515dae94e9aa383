"""What is done and where: the outputs table of the database of record, per job key.

Export adds an entry in the same transaction as the file's ledger row. Planning reads a
campaign's entries in one query and skips the jobs whose file is on disk as it was exported.
``manifest.json`` is only an export of these entries for people, written at the end of a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from contextlib import closing, suppress
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Connection, Select, delete, func, insert, select, update
from visuels._internal.atomic import write_with
from visuels._internal.collector import cycles_collected_after
from visuels._internal.hashing import sha256_file
from visuels.record.database import READ_AT_ONCE, Database, in_parts, outputs_table

MANIFEST_NAME = "manifest.json"


class RecordedFile(NamedTuple):
    """What planning needs of an output's row to tell whether its file is still the one exported."""

    file: str
    size: int
    sha256: str
    created: str  # ISO 8601, to the second


def add(connection: Connection, key: str, campaign: str, entry: dict) -> None:
    """Record (or replace) the output of job ``key``, in the caller's write transaction."""
    connection.execute(delete(outputs_table).where(outputs_table.c.job_key == key))
    connection.execute(
        insert(outputs_table).values(
            job_key=key,
            campaign=campaign,
            file=entry["file"],
            sha256=entry["sha256"],
            size=entry["size"],
            watermark=entry["watermark"],
            thumbnail=entry["thumbnail"],
            compliance=json.dumps(entry["compliance"], ensure_ascii=False),
            inputs=json.dumps(entry["inputs"], ensure_ascii=False),
            created=entry["created"],
            ledger_id=entry["ledger_id"],
        )
    )


def replace_file(connection: Connection, old_sha256: str, sha256: str, size: int, ledger_id: int) -> None:
    """The output whose file had ``old_sha256`` now has these bytes (time-stamped later), in the
    caller's write transaction; planning then finds it done at its new size."""
    connection.execute(
        update(outputs_table)
        .where(outputs_table.c.sha256 == old_sha256)
        .values(sha256=sha256, size=size, ledger_id=ledger_id)
    )


_RECORDED = select(
    outputs_table.c.job_key, outputs_table.c.file, outputs_table.c.size, outputs_table.c.sha256, outputs_table.c.created
)


def recorded_files(database: Database, campaign: str) -> dict[str, RecordedFile]:
    """Each recorded output of a campaign by job key: all that planning needs, in one light query."""
    with database.reading() as connection:
        rows = connection.execute(_RECORDED.where(outputs_table.c.campaign == campaign))
        return {key: RecordedFile(*rest) for key, *rest in rows}


def campaign_state(database: Database, campaign: str) -> tuple[int, int | None]:
    """How far a campaign's record has come: its outputs, and the newest ledger row among them
    (an export, a re-export or a time-stamp adds a newer one). What was written from it is behind
    once this moves."""
    table = outputs_table
    with database.reading() as connection:
        query = select(func.count(), func.max(table.c.ledger_id)).where(table.c.campaign == campaign)
        count, newest = connection.execute(query).one()
        return count, newest


def recorded_of(connection: Connection, keys: Collection[str]) -> dict[str, RecordedFile]:
    """The recorded outputs of these job keys, in the caller's transaction."""
    found: dict[str, RecordedFile] = {}
    for part in in_parts(sorted(keys)):
        rows = connection.execute(_RECORDED.where(outputs_table.c.job_key.in_(part)))
        found |= {key: RecordedFile(*rest) for key, *rest in rows}
    return found


@cycles_collected_after()
def entries(database: Database, campaign: str, keys: Collection[str] | None = None) -> dict[str, dict]:
    """Every recorded output of a campaign (or those of ``keys``), by job key, as ``manifest.json``
    lists them."""
    with database.reading() as connection:
        if keys is None:
            return dict(
                _entries(connection, select(outputs_table).where(outputs_table.c.campaign == campaign), campaign)
            )
        found: dict[str, dict] = {}
        for part in in_parts(sorted(keys)):
            # Asked by key alone: with the campaign in the query, SQLite (no statistics) walks the
            # campaign's index and reads all its rows for each part: 21 s for a region's review.
            found.update(_entries(connection, select(outputs_table).where(outputs_table.c.job_key.in_(part)), campaign))
        return found


def each_entry(database: Database, campaign: str) -> Iterator[tuple[str, dict]]:
    """Every recorded output of a campaign as (job key, entry), read a few hundred rows at a time:
    for a caller that keeps only part of each (a region's records whole weigh a gigabyte). The read
    stays open until the last is taken."""
    with database.reading() as connection:
        yield from _entries(connection, select(outputs_table).where(outputs_table.c.campaign == campaign), campaign)


def _entries(connection: Connection, query: Select, campaign: str) -> Iterator[tuple[str, dict]]:
    """The query's outputs rows of ``campaign`` as entries, ``READ_AT_ONCE`` rows read at a time."""
    for row in connection.execution_options(yield_per=READ_AT_ONCE).execute(query):
        if row.campaign != campaign:
            continue
        yield (
            row.job_key,
            {
                "file": row.file,
                "sha256": row.sha256,
                "size": row.size,
                "watermark": row.watermark,
                "created": row.created,
                "thumbnail": row.thumbnail,
                "ledger_id": row.ledger_id,
                "compliance": json.loads(row.compliance),
                "inputs": json.loads(row.inputs),
            },
        )


def is_done(output_root: Path, relative_path: str, recorded: RecordedFile | None) -> bool:
    """Recorded, and its file is on disk, as it was exported, where the job wants it.

    Without hashing thousands of pictures on every nightly run: a file of another size is not the
    export (truncated, replaced, edited); one of its size is hashed only where its modification
    time is not its record's (``stamp_as_exported``): written to since (an edit saved in place, a
    byte changed), copied or touched. Found the same, it is given its record's time back: a copied
    folder is hashed once, not on every run.
    """
    if recorded is None or recorded.file != relative_path:
        return False
    path = output_root / relative_path
    try:
        status = path.stat()
        if status.st_size != recorded.size:
            return False
        written = exported_time_ns(recorded.created)
        if written is not None and status.st_mtime_ns == written:
            return True
        if sha256_file(path) != recorded.sha256:
            return False
    except FileNotFoundError:
        return False
    with suppress(OSError):  # a folder this user may read but not change: hashed again next time
        stamp_as_exported(path, recorded.created)
    return True


def stamp_as_exported(path: Path, created: str) -> None:
    """Give an exported file, or its approved copy, its record's time (``created``) as its
    modification time, as `cp -p` keeps a file's time: any later write to it changes that, even
    within the same second, which is what ``is_done`` and the approved folder look for."""
    if (written := exported_time_ns(created)) is not None:
        os.utime(path, ns=(written, written))


def exported_time_ns(created: str) -> int | None:
    """The modification time ``stamp_as_exported`` gives: when the picture was exported, to the
    second, from the record; None for a time the record cannot give."""
    try:
        return int(datetime.fromisoformat(created).timestamp()) * 1_000_000_000
    except (TypeError, ValueError, OverflowError):
        return None


def manifest_path(output_root: Path, campaign_slug: str) -> Path:
    return output_root / campaign_slug / MANIFEST_NAME


def _manifest_pieces(
    database: Database, campaign_slug: str, campaign_name: str, current: Collection[str]
) -> Iterator[str]:
    """``manifest.json``'s text, an entry at a time, in the order of the job keys: the text
    ``json.dumps(..., indent=2)`` makes of the whole, which a region's campaign would hold in memory
    several times over (3 KB an entry)."""
    yield '{\n  "campaign": ' + json.dumps(campaign_name, ensure_ascii=False) + ',\n  "files": {'
    listed = False
    with database.reading() as connection:
        query = select(outputs_table).where(outputs_table.c.campaign == campaign_slug).order_by(outputs_table.c.job_key)
        for key, entry in _entries(connection, query, campaign_slug):
            text = json.dumps({**entry, "current": key in current}, indent=2, ensure_ascii=False)
            # An entry is two levels deep; JSON strings hold no raw line break, so each line is one of its own.
            yield ",\n    " if listed else "\n    "
            yield json.dumps(key, ensure_ascii=False) + ": " + text.replace("\n", "\n    ")
            listed = True
    yield "\n  }\n}\n" if listed else "}\n}\n"


def write_manifest_json(
    database: Database, output_root: Path, campaign_slug: str, campaign_name: str, current: Collection[str]
) -> Path:
    """Export the campaign's entries as ``manifest.json``, for people and other tools. ``current``:
    the keys of the campaign as the run planned it; an entry outside them (``"current": false``) is
    an earlier version, kept and recorded, from before a change to the campaign's texts or settings."""
    target = manifest_path(output_root, campaign_slug)

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as file:
            file.writelines(_manifest_pieces(database, campaign_slug, campaign_name, current))

    write_with(target, write)
    return target


def manifest_is_up_to_date(
    database: Database, output_root: Path, campaign_slug: str, campaign_name: str, current: Collection[str]
) -> bool:
    """Whether ``manifest.json`` says what the record and ``current`` say now: a run killed after its
    last file, or a trial run that planned other keys (another model), leaves it behind. Read a
    piece at a time against what it would be written as, up to the first difference."""
    try:
        with (
            manifest_path(output_root, campaign_slug).open("rb") as written,
            closing(_manifest_pieces(database, campaign_slug, campaign_name, current)) as pieces,
        ):
            for piece in pieces:
                expected = piece.encode("utf-8")
                if written.read(len(expected)) != expected:
                    return False
            return written.read(1) == b""
    except FileNotFoundError:
        return False
