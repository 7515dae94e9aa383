"""Human review of a run's outputs: publish the approved files, record every decision.

Approved files are copied to ``<output>/<campaign>/approved/`` (same sub-path); each decision,
approval or rejection with its comment, is a new ledger row pointing at the export's row, so
the ledger tells who decided what about which file, and the chain stays append-only.

Publishing and recording are one unit. The copies are written first under temporary names (a
full disk fails here: nothing published, nothing recorded); then one transaction appends every
decision and, before it commits, moves the copies into place (renames, which need no room). A
transaction that fails takes the moved copies back. A kill between the renames and the commit
can still leave approved copies with no decision: the approved folder is derived from the
record, and ``sync_approved`` (run before each review and by each report) removes any copy the
record does not approve and copies again any approved one that is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator
from visuels._internal.atomic import StagedFile, keep_copy, make_folders, remove_if_leftover, staged
from visuels._internal.collector import cycles_collected_after
from visuels._internal.hashing import sha256_file
from visuels._internal.i18n import RecordedText, joined
from visuels.errors import ExportError, InvalidValueError, ReviewError, Text
from visuels.inputs.slugs import slugify
from visuels.planning import fairness
from visuels.planning.jobs import KEY_PREFIX_LENGTH
from visuels.postprocess import findings
from visuels.postprocess.coherence import read_coherence
from visuels.record import manifest
from visuels.record.database import Database, database_url, is_missing
from visuels.record.ledger import (
    LedgerEntry,
    append,
    approvals,
    by_job_key,
    by_sha256,
    decided_in_run,
    latest_for_jobs,
    recorded_place,
)
from visuels.record.review_batches import (
    awaiting_decision,
    forget_review,
    pictures_of_review,
    record_review,
    review_sizes,
)

log = logging.getLogger(__name__)

APPROVED_FOLDER = "approved"
SET_ASIDE_FOLDER = "set-aside"  # what approved/ held that no record approves, unmarked: kept, not published
COPY_CHUNK = 1 << 20  # approving streams each file: a run of posters never sits in memory at once


class ReviewDecision(BaseModel):
    """A reviewer's answer: the files to reject, each with a reason; every other file is approved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rejected: list[str] = Field(
        default_factory=list,
        description="Files to reject, by their short id (the contact sheet's bold code); none: approve everything.",
    )
    comment: str = Field(
        default="", max_length=2000, description="Why they are rejected (for those without a comment of their own)."
    )
    comments: dict[str, str] = Field(
        default_factory=dict, description="A comment per rejected file, by short id (the studio fills this in)."
    )
    reviewer: str = Field(default="", max_length=200, description="Who reviewed (name or e-mail).")

    @model_validator(mode="after")
    def _consistent(self) -> ReviewDecision:
        stray = [name for name in self.comments if name not in self.rejected]
        if stray:
            raise InvalidValueError("a comment for {stray}, which is not rejected", stray=stray[0])
        silent = [name for name in self.rejected if not (self.comments.get(name, "").strip() or self.comment.strip())]
        if silent:
            raise InvalidValueError("the rejection of {silent} needs a comment", silent=silent[0])
        return self

    def reason(self, name: str) -> str:
        return (self.comments.get(name, "").strip() or self.comment.strip())[:2000]


class ReviewOutcome(BaseModel):
    approved: list[str]
    rejected: list[str]
    approved_folder: Path


def _within_campaign(relative_path: str, campaign_slug: str) -> str:
    """``<campaign>/<commune>/<format>/<file>`` -> ``<commune>/<format>/<file>``, the form reviewers see."""
    prefix = f"{campaign_slug}/"
    return relative_path[len(prefix) :] if relative_path.startswith(prefix) else relative_path


def export_of_approved_copy(copy: Path, recorded_file: str) -> Path | None:
    """Where the export an approved copy was made of lies, found from the copy's own place (the
    approved copy of ``<campaign>/<sub path>`` is ``<campaign>/approved/<sub path>``), whatever the
    database; None where ``copy`` is not in an approved folder as a copy of ``recorded_file``."""
    campaign, _, within = recorded_file.partition("/")
    sub = Path(within).parts
    parts = copy.absolute().parts
    if not sub or len(parts) < len(sub) + 2 or parts[-len(sub) - 2 :] != (campaign, APPROVED_FOLDER, *sub):
        return None
    return Path(*parts[: -len(sub) - 1], *sub)


def outside_approved(path: Path, recorded_file: str) -> Path:
    """``path``, or for an approved copy the export it was made of: what is written beside an
    output (its layered file, retouched variants) never goes into approved/, which holds only
    approved files (the next report would set it aside, its record then naming a file gone)."""
    export = export_of_approved_copy(path, recorded_file)
    return export if export is not None and export.parent.is_dir() else path


def short_id(key: str) -> str:
    """How reviewers name a file: its key's first characters, as in its file name."""
    return key[:KEY_PREFIX_LENGTH]


@contextmanager
def _record(output_root: Path) -> Iterator[Database | None]:
    """The output folder's database of record; None where nothing was ever recorded (a folder
    moved or mistyped: looking into it makes no database there)."""
    url = database_url(output_root)
    if is_missing(url):
        yield None
        return
    database = Database(url)
    try:
        yield database
    finally:
        database.close()


def campaign_folder(output_root: Path, given: str, field: Text) -> str:
    """The campaign's folder under the output folder: as given, or the one its name makes ("Été
    2027 — Vivre en Solane": ete-2027-vivre-en-solane), as a designer starting a review types it in
    ``field``; one not there is refused with those that are."""
    for folder in (given, slugify(given)):
        if folder == Path(folder).name and not folder.startswith(".") and (output_root / folder).is_dir():
            return folder
    known = sorted(path.name for path in output_root.iterdir() if path.is_dir()) if output_root.is_dir() else []
    raise ReviewError(
        output_root,
        field,
        "no campaign '{given}' in this output folder (its campaigns: {known})",
        given=given,
        known=", ".join(known) or "-",
    )


def freeze_review(
    output_root: Path,
    campaign_slug: str,
    review_id: str,
    among: Collection[str] | None = None,
    open_reviews: Collection[str] = (),
    open_keys: Collection[str] = (),
) -> list[str]:
    """Freeze under ``review_id`` the campaign's pictures awaiting a decision (of ``among`` only,
    if given), but those that other reviews ask about (``open_reviews``, by id, ``open_keys``, and
    any frozen just now): the review's pictures, the same ones each time it is asked (empty: none)."""
    with _record(output_root) as database:
        if database is None:
            return []
        if frozen := pictures_of_review(database, review_id):
            return frozen
        started_with = set(open_keys)
        keys = [key for key in awaiting_decision(database, campaign_slug, among) if key not in started_with]
        return record_review(database, review_id, campaign_slug, keys, open_reviews) if keys else []


def unfreeze_review(output_root: Path, review_id: str) -> None:
    """Forget what ``freeze_review`` froze under ``review_id``: its review could not be started."""
    with _record(output_root) as database:
        if database is not None:
            forget_review(database, review_id)


def pictures_to_review(output_root: Path, review_id: str, keys: list[str]) -> list[str]:
    """What a review asks about: the job keys it was started with, else those frozen under its id."""
    if keys:
        return keys
    with _record(output_root) as database:
        return [] if database is None else pictures_of_review(database, review_id)


def count_to_review(output_root: Path, review_ids: Collection[str]) -> dict[str, int]:
    """How many pictures each review frozen under ``review_ids`` asks about."""
    with _record(output_root) as database:
        return {} if database is None else review_sizes(database, review_ids)


@cycles_collected_after()
def review_listing(output_root: Path, campaign_slug: str, keys: list[str]) -> dict[str, dict]:
    """The recorded outputs of ``keys``, by the file name reviewers see, those to look at first first;
    each with its coherence (from the campaign's last report) and why it needs attention."""
    with _record(output_root) as database:
        recorded = {} if database is None else manifest.entries(database, campaign_slug, keys)
    missing = [key for key in keys if key not in recorded]
    if missing:
        raise ReviewError(output_root / campaign_slug, "files", "no output for job {value}", value=missing[0][:12])
    coherence = read_coherence(output_root / campaign_slug)
    listing = {}
    for key in keys:
        style = coherence.get(key)
        entry = {**recorded[key], "key": key, "coherence": style.model_dump() if style else None}
        listing[_within_campaign(recorded[key]["file"], campaign_slug)] = {**entry, "attention": attention(entry)}
    # What needs a look comes first (in the order ``attention`` ranks it), then the rest by name.
    order = sorted(listing, key=lambda name: (_rank(listing[name]), name))
    return {name: listing[name] for name in order}


def attention(entry: dict) -> list[Text]:
    """Why a reviewer should look at an output first: off the campaign's style, not compliant,
    flagged (said in the reader's language by ``Text.said``)."""
    reasons = []
    style = entry.get("coherence")
    if style and style["outlier"]:
        reasons.append(Text("off the campaign's style (distance {distance:.1f})", distance=style["distance"]))
    check = entry.get("compliance") or {}
    if check and not check.get("passed", True):
        reasons.append(Text("not compliant: {reasons}", reasons=joined(check.get("reasons", []), findings.said)))
    # The bias review's flags, as recorded with the job (in English), said in the reader's language.
    reasons += [RecordedText(flag, fairness.said) for flag in (entry.get("inputs") or {}).get("review", [])]
    return reasons


def _rank(entry: dict) -> tuple[int, float]:
    style = entry.get("coherence")
    if style and style["outlier"]:
        return (0, -style["distance"])  # the farthest first
    return (1, 0.0) if entry["attention"] else (2, 0.0)


def apply_review(
    output_root: Path, campaign_slug: str, keys: list[str], decision: ReviewDecision, run_id: str | None = None
) -> ReviewOutcome:
    """Check the whole decision first, then publish the approved files and record every decision,
    as one unit. Asked again for a run whose decision is recorded already, it records nothing more."""
    listing = review_listing(output_root, campaign_slug, keys)
    by_id = {short_id(entry["key"]): name for name, entry in listing.items()}
    # A rejected file is named by its short id (forms, studio) or by its path (scripts).
    chosen = {given: by_id.get(given) or _within_campaign(given, campaign_slug) for given in decision.rejected}
    unknown = [given for given, name in chosen.items() if name not in listing]
    if unknown:
        raise ReviewError(unknown[0], "rejected", "not one of this run's files")
    rejected = set(chosen.values())
    reasons = {name: decision.reason(given) for given, name in chosen.items()}
    approved = sorted(name for name in listing if name not in rejected)
    approved_folder = output_root / campaign_slug / APPROVED_FOLDER
    outcome = ReviewOutcome(approved=approved, rejected=sorted(rejected), approved_folder=approved_folder)
    for name in approved:  # all checked before any is published; read in chunks, never whole
        _check_unchanged(output_root / listing[name]["file"], listing[name]["sha256"])
    database = Database(database_url(output_root))
    try:
        sync_approved(database, output_root, campaign_slug)  # what a crash in an earlier review left
        previous_rows = latest_for_jobs(database, keys)  # each export's row, or an earlier review's
        unrecorded = [name for name, entry in listing.items() if entry["key"] not in previous_rows]
        if unrecorded:
            raise ReviewError(
                output_root / campaign_slug, "job_key", "no ledger row for {unrecorded}", unrecorded=unrecorded[0]
            )
        if run_id is not None and all(
            row["run_id"] == run_id and row["approval"] != "pending" for row in previous_rows.values()
        ):
            log.info("%s: this run's decision is recorded already", campaign_slug)
            return outcome
        with ExitStack() as copies:
            staged_copies = [copies.enter_context(staged(approved_folder / name)) for name in approved]
            for name, copy in zip(approved, staged_copies, strict=True):
                _copy_checked(output_root / listing[name]["file"], copy.path, listing[name])
            _record_and_publish(database, listing, rejected, reasons, decision, previous_rows, run_id, staged_copies)
    finally:
        database.close()
    log.info("%s: %d approved, %d rejected", campaign_slug, len(approved), len(rejected))
    return outcome


def _record_and_publish(
    database: Database,
    listing: dict[str, dict],
    rejected: set[str],
    reasons: dict[str, str],
    decision: ReviewDecision,
    previous_rows: dict[str, dict],
    run_id: str | None,
    copies: list[StagedFile],
) -> None:
    """Every decision of the review, and the approved copies moved into place, in one transaction;
    if it fails, the copies already moved are taken back: no approved file without its record."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    by = f" (by {decision.reviewer})" if decision.reviewer else ""
    try:
        with database.transaction() as connection:
            keys = [entry["key"] for entry in listing.values()]
            if run_id is not None and keys and decided_in_run(connection, keys, run_id):
                log.info("this run's decision was recorded meanwhile: nothing more recorded")
                return  # its copies, unpublished, are removed with their temporaries
            for name, entry in sorted(listing.items()):
                verdict = f"approved{by}" if name not in rejected else f"rejected: {reasons[name]}{by}"
                previous = previous_rows[entry["key"]]
                fields = {field: previous[field] for field in LedgerEntry.model_fields}
                fields.update(created=now, run_id=run_id, parent_id=previous["id"], approval=verdict)
                append(connection, LedgerEntry(**fields))
            for copy in copies:
                copy.publish()
    except BaseException:
        for copy in copies:
            if copy.published:
                copy.target.unlink(missing_ok=True)
        raise


def sync_approved(database: Database, output_root: Path, campaign_slug: str) -> None:
    """Make ``approved/`` hold exactly the files the record approves (each job's newest decision):
    remove a copy it does not approve, copy again an approved one that is missing. What is there
    and is no exported file (a copy edited in place, a file someone put there) is moved out to
    ``SET_ASIDE_FOLDER``, never deleted: the folder a region publishes holds only marked files."""
    folder = output_root / campaign_slug / APPROVED_FOLDER
    decided = approvals(database, list(manifest.recorded_files(database, campaign_slug)))
    approved = [key for key, approval in decided.items() if (approval or "").startswith("approved")]
    wanted = {
        _within_campaign(entry["file"], campaign_slug): entry
        for entry in manifest.entries(database, campaign_slug, approved).values()
    }
    if folder.is_dir():
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith("."):
                remove_if_leftover(path)  # a copy a review killed mid-way was writing
            else:
                _put_right(database, folder, path, wanted.get(path.relative_to(folder).as_posix()))
    for name, entry in wanted.items():
        target = folder / name
        if not target.is_file():
            try:
                with staged(target) as copy:
                    _copy_checked(output_root / entry["file"], copy.path, entry)
                    copy.publish()
            except (ReviewError, OSError) as exc:
                log.warning("%s: approved, but could not be copied again: %s", target, exc)


def _put_right(database: Database, folder: Path, path: Path, entry: dict | None) -> None:
    """One file of the approved ``folder``: kept where it is the approved copy; removed where
    it is a copy of an exported file still in its place, but not the approved one now (no longer
    approved, or its bytes before a time-stamp replaced them): copied again if approved; set aside
    otherwise (an edit, a file put there by hand, an export moved there rather than copied)."""
    digest = None if entry is None else _approved_copy_digest(path, entry)
    if entry is not None and digest == entry["sha256"]:
        return
    digest = digest or sha256_file(path)
    row = by_sha256(database, digest)
    if row is not None and _kept_elsewhere(database, row, folder.parent.parent, path, digest):
        log.info("%s: not the approved file the record holds now, removed", path)
        path.unlink(missing_ok=True)  # or by another machine's report, meanwhile
        return
    name = path.relative_to(folder)
    aside = folder.parent / SET_ASIDE_FOLDER / name.parent

    def named(number: int) -> Path:
        return aside / (name.name if number == 1 else f"{path.stem}-{number}{path.suffix}")

    make_folders(aside)
    try:
        kept = keep_copy(path, named)
        path.unlink()
    except FileNotFoundError:  # set aside by another machine's report meanwhile
        return
    except FileExistsError:
        log.error("%s: not an exported file, and %s holds 999 of that name: move it out by hand", path, aside)
        return
    log.warning("%s: not an exported file (edited, or put there), moved to %s", path, kept)


def _approved_copy_digest(path: Path, entry: dict) -> str:
    """``entry``'s sha256 where ``path`` is its approved copy as written (its size and the time it
    was given), else the bytes' sha256 read now: reading every copy at each report would cost a
    region's whole folder, and an edit in place changes the time even where the size stays. A copy
    of the right bytes with another time (made before copies were given one) is given it now."""
    stat = path.stat()
    if stat.st_size == entry["size"] and stat.st_mtime_ns == manifest.exported_time_ns(entry["created"]):
        return str(entry["sha256"])
    digest = sha256_file(path)
    if digest == entry["sha256"]:
        with suppress(OSError):  # a folder this account may not change: read whole again next time
            manifest.stamp_as_exported(path, entry["created"])
    return digest


def _kept_elsewhere(database: Database, row: dict, output_root: Path, copy: Path, sha256: str) -> bool:
    """Whether the picture a ledger row records is still where it was written, with the bytes of
    ``copy`` or those the record holds for it now (time-stamped since ``copy`` was made): then
    ``copy`` is only a copy (a file moved into approved/ by hand is not)."""
    place = recorded_place(row, output_root)
    if not place.is_file() or place.samefile(copy):
        return False
    newest = by_job_key(database, row["job_key"])
    return sha256_file(place) in {sha256, newest["sha256"] if newest else sha256}


def _changed_since_rendered(path: Path) -> ReviewError:
    return ReviewError(
        path,
        "sha256",
        "the file changed since it was rendered: render the campaign again (an edit saved over it is kept"
        " beside it, for `visuels finalize`)",
    )


def _check_unchanged(path: Path, sha256: str) -> None:
    """Never publish a file that is not the one the reviewer saw in the contact sheet."""
    if sha256_file(path) != sha256:
        raise _changed_since_rendered(path)


def _copy_checked(source: Path, target: Path, entry: dict) -> None:
    """Copy ``entry``'s file ``source`` to ``target`` in chunks, hashing what is copied: a file
    changed since it was checked is refused (its partial copy is the caller's temporary, removed
    with it). The copy is given its export's time (``stamp_as_exported``): an edit in place is then seen."""
    sha256 = entry["sha256"]
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reading, target.open("wb") as writing:
            while chunk := reading.read(COPY_CHUNK):
                digest.update(chunk)
                writing.write(chunk)
    except OSError as exc:
        raise ExportError(
            target, None, "cannot write the approved copy: {reason}", reason=exc.strerror or str(exc)
        ) from None
    if digest.hexdigest() != sha256:
        raise _changed_since_rendered(source)
    manifest.stamp_as_exported(target, entry["created"])
