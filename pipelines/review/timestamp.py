"""Time-stamping exported pictures later, before they are published (``visuels timestamp``).

A picture exported without a time-stamp authority (none configured, or unreachable that night)
gets an update manifest with an RFC 3161 time-stamp of its manifest
(``visuels.marking.c2pa_manifest.time_stamp``): the pixels, the watermark and the original
manifest stay as they were. The new bytes are recorded like any export: a ledger row pointing at
the file's previous row, and its outputs row moved to the new sha256 and size in the same
transaction, so ``verify`` finds the file recorded and a re-run renders nothing again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from visuels._internal.atomic import staged
from visuels.errors import ExportError
from visuels.inputs.images import ImageInputError, read_file
from visuels.marking.c2pa_manifest import read_manifest_state, time_stamp
from visuels.marking.keys import SigningFiles
from visuels.marking.mark import MIME_TYPES
from visuels.record import ledger, manifest
from visuels.record.database import Database
from visuels.review.derivatives import FILE_TYPES


@dataclass(frozen=True)
class TimeStamped:
    file: str
    sha256: str
    signed_at: str | None  # the time-stamp authority's time
    already: bool  # it had one: nothing written, nothing recorded


def time_stamp_file(path: Path, database: Database, signing: SigningFiles) -> TimeStamped:
    """Time-stamp one exported file in place and record it; a file that is not a recorded export
    raises :class:`ImageInputError`."""
    data = read_file(path, "file")
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        raise ImageInputError(path, "file", "not a PNG, JPEG or WebP picture")
    mime_type = MIME_TYPES[file_type]
    digest = hashlib.sha256(data).hexdigest()
    row = ledger.by_sha256(database, digest)
    if row is None:
        raise ImageInputError(path, "file", "no ledger record of these bytes: only exported files are time-stamped")
    before = read_manifest_state(path, signing.trust_anchors)
    if before.signed_at:
        return TimeStamped(str(path), digest, before.signed_at, already=True)
    stamped = time_stamp(data, mime_type, path.name, signing)
    sha256 = hashlib.sha256(stamped).hexdigest()
    renewed = ("created", "sha256", "parent_id")
    kept = {name: row[name] for name in ledger.LedgerEntry.model_fields if name not in renewed}
    entry = ledger.LedgerEntry(**kept, sha256=sha256, parent_id=row["id"])  # the same picture, its new bytes
    with staged(path) as file:
        try:
            file.path.write_bytes(stamped)
        except OSError as exc:
            raise ExportError(path, None, "cannot write it: {reason}", reason=exc.strerror or str(exc)) from None
        with database.transaction() as connection:
            ledger_id = ledger.append(connection, entry)
            manifest.replace_file(connection, digest, sha256, len(stamped), ledger_id)
            file.publish()  # inside the transaction: a file on disk is always a recorded one
    return TimeStamped(str(path), sha256, read_manifest_state(path, signing.trust_anchors).signed_at, already=False)
