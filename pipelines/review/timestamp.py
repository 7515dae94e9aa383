"""Time-stamping exported pictures later, before they are published (``visuels timestamp``).

A picture exported without a time-stamp authority (none configured, or unreachable that night)
gets an update manifest with an RFC 3161 time-stamp of its manifest
(``visuels.marking.c2pa_manifest.time_stamp``): the pixels, the watermark and the original
manifest stay as they were. The new bytes are recorded like any export: a ledger row pointing at
the file's previous row, and its outputs row moved to the new sha256 and size in the same
transaction, so ``verify`` finds the file recorded and a re-run renders nothing again. A stamp
written whose record was not (the process killed between the two) is recorded by the next run.

A copy of an export (the approved folder's, one sent by mail) is not stamped apart from it: that
would record bytes that are not where the record says the picture is, and the next render would
make it again. The export is stamped where it lies, and the copy is given its stamped bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from visuels._internal.atomic import staged
from visuels.errors import ExportError
from visuels.inputs.images import ImageInputError, read_file, read_picture_and_xmp
from visuels.marking.c2pa_manifest import ManifestState, read_manifest_state, time_stamp
from visuels.marking.keys import SigningFiles
from visuels.marking.mark import MIME_TYPES
from visuels.marking.phash import perceptual_hash
from visuels.record import ledger, manifest
from visuels.record.database import Database
from visuels.review.decisions import export_of_approved_copy
from visuels.review.derivatives import FILE_TYPES


@dataclass(frozen=True)
class TimeStamped:
    file: str
    sha256: str
    signed_at: str | None  # the time-stamp authority's time
    already: bool  # it had one: nothing written, nothing recorded
    copy_of: str | None = None  # the export a copy was given the stamped bytes of


def time_stamp_file(
    path: Path, database: Database, signing: SigningFiles, output_root: Path | None = None
) -> TimeStamped:
    """Time-stamp one exported file in place and record it; a file that is not a recorded export
    raises :class:`ImageInputError`. A copy of an export found under ``output_root``, where the
    record says it is, stamps that export and takes its bytes."""
    data = read_file(path, "file")
    file_type = FILE_TYPES.get(path.suffix.lower())
    if file_type is None:
        raise ImageInputError(path, "file", "not a PNG, JPEG or WebP picture")
    mime_type = MIME_TYPES[file_type]
    digest = hashlib.sha256(data).hexdigest()
    row = ledger.by_sha256(database, digest)
    if row is not None and (export := _export_of_copy(row, path, output_root)) is not None:
        return _stamp_a_copy(path, export, row, database, signing, output_root)
    before = read_manifest_state(path, signing.trust_anchors)
    if row is None:
        stamped_of = _stamp_left_unrecorded(path, data, digest, before, database)
        if stamped_of is None:
            raise ImageInputError(path, "file", "no ledger record of these bytes: only exported files are time-stamped")
        recorded = _record(stamped_of, data, database)  # not where another run recorded it first
        return TimeStamped(str(path), digest, before.signed_at, already=not recorded)
    if before.signed_at:
        return TimeStamped(str(path), digest, before.signed_at, already=True)
    stamped = time_stamp(data, mime_type, path.name, signing)
    exported_at = _exported_at(database, row["job_key"], digest)
    with staged(path) as file:
        try:
            file.path.write_bytes(stamped)
        except OSError as exc:
            raise ExportError(path, None, "cannot write it: {reason}", reason=exc.strerror or str(exc)) from None
        if exported_at is not None:  # the record's new bytes keep its export's time: not read again
            manifest.stamp_as_exported(file.path, exported_at)
        # Published inside the transaction: a stamp whose record fails is found again by a re-run
        # (_stamp_left_unrecorded), the picture's old bytes then being gone.
        if not _record(row, stamped, database, publish=file.publish):  # another run stamped it meanwhile
            state = read_manifest_state(path, signing.trust_anchors)
            return TimeStamped(str(path), hashlib.sha256(read_file(path, "file")).hexdigest(), state.signed_at, True)
    sha256 = hashlib.sha256(stamped).hexdigest()
    return TimeStamped(str(path), sha256, read_manifest_state(path, signing.trust_anchors).signed_at, already=False)


def _export_of_copy(row: dict, path: Path, output_root: Path | None) -> Path | None:
    """The export ``path`` is a copy of, where ``row`` (its bytes' record) says the export lies
    under ``output_root``, or beside the approved folder ``path`` is in; None where ``path`` is that
    file, or the export is not there to be stamped instead."""
    places = [ledger.recorded_place(row, output_root)] if output_root is not None else []
    places.append(export_of_approved_copy(path, row["file"]) or path)
    for place in places:
        try:
            if place.is_file() and not place.samefile(path):
                return place
        except OSError:
            continue
    return None


def _stamp_a_copy(
    path: Path, export: Path, row: dict, database: Database, signing: SigningFiles, output_root: Path | None
) -> TimeStamped:
    """Stamp ``export`` (or find it stamped already), then give the copy ``path`` its bytes, when
    they are the record's newest of the picture ``row`` records; else the copy is left as it is,
    and said (the export was changed since: saved over, say)."""
    stamped = time_stamp_file(export, database, signing, output_root)
    newest = ledger.by_job_key(database, row["job_key"])
    if newest is None or newest["sha256"] != stamped.sha256:
        raise ImageInputError(
            path,
            "file",
            "a copy of {export}, which has changed since it was exported: time-stamp that file once it is"
            " rendered again",
            export=str(export),
        )
    if row["sha256"] == stamped.sha256:  # the copy's bytes, read already: the stamped ones
        return TimeStamped(str(path), stamped.sha256, stamped.signed_at, already=True, copy_of=str(export))
    data = read_file(export, "file")
    if hashlib.sha256(data).hexdigest() != stamped.sha256:  # changed between the two reads: written again
        raise ImageInputError(
            path, "file", "a copy of {export}, which changed meanwhile: try again", export=str(export)
        )
    exported_at = _exported_at(database, row["job_key"], stamped.sha256)
    with staged(path) as file:
        try:
            file.path.write_bytes(data)
        except OSError as exc:
            raise ExportError(path, None, "cannot write it: {reason}", reason=exc.strerror or str(exc)) from None
        if exported_at is not None:  # as an approved copy is given it: not read again by the report
            manifest.stamp_as_exported(file.path, exported_at)
        file.publish()
    return TimeStamped(str(path), stamped.sha256, stamped.signed_at, already=False, copy_of=str(export))


def _exported_at(database: Database, job_key: str, sha256: str) -> str | None:
    """When the output of ``job_key`` was exported, where its record holds the bytes ``sha256``: the
    time its file and copies are given (``manifest.stamp_as_exported``), so that planning and the
    report need not read them again. None where the record says otherwise (rendered again since)."""
    with database.reading() as connection:
        recorded = manifest.recorded_of(connection, [job_key]).get(job_key)
    return recorded.created if recorded is not None and recorded.sha256 == sha256 else None


def _record(row: dict, stamped: bytes, database: Database, publish: Callable[[], None] | None = None) -> bool:
    """Record ``stamped`` as the new bytes of the file ``row`` recorded: a ledger row pointing at
    it, and its outputs row moved to them, in one transaction (``publish`` run inside it). False,
    nothing recorded or published, where another run (another machine) recorded new bytes first."""
    sha256 = hashlib.sha256(stamped).hexdigest()
    renewed = ("created", "sha256", "parent_id")
    kept = {name: row[name] for name in ledger.LedgerEntry.model_fields if name not in renewed}
    entry = ledger.LedgerEntry(**kept, sha256=sha256, parent_id=row["id"])  # the same picture, its new bytes
    with database.transaction() as connection:
        if ledger.has_new_bytes(connection, row):
            return False
        ledger_id = ledger.append(connection, entry)
        manifest.replace_file(connection, row["sha256"], sha256, len(stamped), ledger_id)
        if publish is not None:
            publish()
    return True


def _stamp_left_unrecorded(
    path: Path, data: bytes, digest: str, state: ManifestState, database: Database
) -> dict | None:
    """The row of the recorded file that ``path`` is the time-stamped version of, when the stamp
    was written in place but its record was not (killed between the two): a valid manifest with a
    time-stamp, naming the watermark of a row of this file's name whose bytes are no longer here,
    over the same pixels (their perceptual hash). None for anything else."""
    if state.state not in ("Trusted", "Valid") or not state.signed_at or state.soft_binding is None:
        return None
    row = ledger.by_watermark(database, state.soft_binding)
    if row is None or row["sha256"] == digest or Path(row["file"]).name != path.name:
        return None
    pixels = np.asarray(read_picture_and_xmp(path, "file", data)[0])  # the bytes read already, in RGB
    return row if perceptual_hash(pixels) == row["phash"] else None
