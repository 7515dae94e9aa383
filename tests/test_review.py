"""Review of a run's outputs: publish the approved files, record each decision in the ledger."""

from pathlib import Path

import pytest
from pydantic import ValidationError
from visuels.errors import ReviewError
from visuels.record.database import Database, database_url
from visuels.record.ledger import verify_chain
from visuels.review.decisions import ReviewDecision, apply_review, review_listing


@pytest.fixture
def rendered(rendered_copy: tuple[Path, str, list[str], list[str]]) -> tuple[Path, str, list[str]]:
    """Four real outputs of the demo model (2 communes x 2 formats), and their job keys."""
    out, slug, _files, keys = rendered_copy
    return out, slug, keys


def ledger_rows(out: Path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(out / "visuels.sqlite") as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM ledger ORDER BY id")]


def test_reject_some_publish_the_rest(rendered: tuple[Path, str, list[str]]) -> None:
    out, slug, keys = rendered
    names = sorted(review_listing(out, slug, keys))
    decision = ReviewDecision(rejected=[names[0]], comment="logo too close to the edge", reviewer="Léa")
    outcome = apply_review(out, slug, keys, decision, run_id="run-1")

    assert outcome.rejected == [names[0]] and outcome.approved == names[1:]
    approved = out / slug / "approved"
    assert sorted(str(path.relative_to(approved)) for path in approved.rglob("*.png")) == names[1:]
    assert (approved / names[1]).read_bytes() == (out / slug / names[1]).read_bytes()  # the marked file itself
    reviews = ledger_rows(out)[len(keys) :]
    assert len(reviews) == len(keys)
    verdicts = {row["file"].removeprefix(f"{slug}/"): row["approval"] for row in reviews}
    assert verdicts[names[0]] == "rejected: logo too close to the edge (by Léa)"
    assert all(verdicts[name] == "approved (by Léa)" for name in names[1:])
    assert all(row["parent_id"] is not None and row["run_id"] == "run-1" for row in reviews)
    assert verify_chain(Database(database_url(out))) == (2 * len(keys), None)


def test_rejections_by_short_id_each_with_its_comment(rendered: tuple[Path, str, list[str]]) -> None:
    out, slug, keys = rendered
    listing = review_listing(out, slug, keys)
    names = sorted(listing)
    first, second = (listing[name]["key"][:12] for name in names[:2])
    decision = ReviewDecision(rejected=[first, second], comments={first: "too dark"}, comment="off-charter")
    outcome = apply_review(out, slug, keys, decision)
    assert outcome.rejected == names[:2]
    verdicts = {row["file"].removeprefix(f"{slug}/"): row["approval"] for row in ledger_rows(out)[len(keys) :]}
    assert verdicts[names[0]] == "rejected: too dark" and verdicts[names[1]] == "rejected: off-charter"


def test_a_decision_is_checked_before_anything_is_published(rendered: tuple[Path, str, list[str]]) -> None:
    out, slug, keys = rendered
    decision = ReviewDecision(rejected=["nowhere/story/x.png"], comment="no")
    with pytest.raises(ReviewError, match="not one of this run's files") as caught:
        apply_review(out, slug, keys, decision)
    assert caught.value.field == "rejected"
    assert not (out / slug / "approved").exists()
    assert len(ledger_rows(out)) == len(keys)


def test_a_file_changed_since_rendering_is_not_published(rendered: tuple[Path, str, list[str]]) -> None:
    out, slug, keys = rendered
    name = sorted(review_listing(out, slug, keys))[0]
    (out / slug / name).write_bytes(b"retouched elsewhere")
    with pytest.raises(ReviewError, match="changed since it was rendered"):
        apply_review(out, slug, keys, ReviewDecision())
    assert not (out / slug / "approved").exists()


def test_a_file_changed_while_publishing_leaves_no_approved_file_and_no_decision(
    rendered: tuple[Path, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.review.decisions

    out, slug, keys = rendered
    before = len(ledger_rows(out))
    names = sorted(review_listing(out, slug, keys))
    monkeypatch.setattr(visuels.review.decisions, "_check_unchanged", lambda path, sha256: None)  # it was, when checked
    (out / slug / names[1]).write_bytes(b"retouched meanwhile")  # the second one published
    with pytest.raises(ReviewError, match="changed since it was rendered"):
        apply_review(out, slug, keys, ReviewDecision())
    assert [path for path in (out / slug / "approved").rglob("*") if path.is_file()] == []  # the first taken back
    assert len(ledger_rows(out)) == before


def approved_files(out: Path, slug: str) -> list[str]:
    folder = out / slug / "approved"
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_a_full_disk_while_copying_publishes_nothing_and_records_nothing(
    rendered: tuple[Path, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.review.decisions
    from visuels.errors import ExportError

    out, slug, keys = rendered
    before = len(ledger_rows(out))
    copy = visuels.review.decisions._copy_checked
    calls: list[Path] = []

    def disk_fills(source: Path, target: Path, sha256: str) -> None:
        calls.append(target)
        if len(calls) == 3:
            raise ExportError(target, None, "cannot write the approved copy: No space left on device")
        copy(source, target, sha256)

    monkeypatch.setattr(visuels.review.decisions, "_copy_checked", disk_fills)
    with pytest.raises(ExportError, match="No space left"):
        apply_review(out, slug, keys, ReviewDecision())
    assert approved_files(out, slug) == [] and len(ledger_rows(out)) == before
    assert not [path for path in (out / slug).rglob(".*.tmp")]  # no temporary copy left either


@pytest.mark.parametrize("fails", ["database", "publishing"])
def test_a_failure_while_recording_takes_back_every_published_copy(
    rendered: tuple[Path, str, list[str]], monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    import visuels.review.decisions
    from visuels._internal.atomic import StagedFile
    from visuels.errors import ExportError
    from visuels.record.database import DatabaseError

    out, slug, keys = rendered
    before = len(ledger_rows(out))
    if fails == "database":

        def append(connection: object, entry: object) -> int:
            raise DatabaseError(out / "visuels.sqlite", None, "disk I/O error")

        monkeypatch.setattr(visuels.review.decisions, "append", append)
    else:  # the second rename fails (say, the folder was removed meanwhile), after the first was done
        publish = StagedFile.publish
        published: list[StagedFile] = []

        def second_fails(self: StagedFile) -> None:
            if published:
                raise OSError("No such file or directory")
            publish(self)
            published.append(self)

        monkeypatch.setattr(StagedFile, "publish", second_fails)
    with pytest.raises((DatabaseError, ExportError)):
        apply_review(out, slug, keys, ReviewDecision())
    assert approved_files(out, slug) == [] and len(ledger_rows(out)) == before


def test_the_approved_folder_follows_the_record_after_a_crash(rendered: tuple[Path, str, list[str]]) -> None:
    """A kill between the renames and the commit leaves copies with no decision; one approved on
    record may have lost its copy; a kill while copying leaves the copies' temporaries (hidden, but
    published with the folder: a copy of a picture per try). The next review (and each report)
    puts the folder right."""
    import shutil
    import subprocess
    import sys

    from visuels._internal.liveness import machine_id
    from visuels.review.decisions import sync_approved

    out, slug, keys = rendered
    names = sorted(review_listing(out, slug, keys))
    apply_review(out, slug, keys, ReviewDecision(rejected=[names[0]], comment="too dark"))
    orphan = out / slug / "approved" / names[0]
    orphan.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / slug / names[0], orphan)  # published, then killed before the commit
    (out / slug / "approved" / names[1]).unlink()  # approved on record, its copy lost
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    half_copy = orphan.parent / f".{orphan.name}.{machine_id()}.{dead.stdout.strip()}.0123abcd.tmp"
    half_copy.write_bytes(b"half a picture")  # a review killed while it copied a file it then rejected
    database = Database(database_url(out))
    try:
        sync_approved(database, out, slug)
    finally:
        database.close()
    assert approved_files(out, slug) == names[1:]
    assert not half_copy.exists()


def test_a_review_applied_again_for_the_same_run_records_nothing_more(
    rendered: tuple[Path, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the two are applied at once (two processes that both read the record before
    either had written): each picture got two decisions of one run, the second's overriding."""
    import visuels.review.decisions
    from visuels.record.ledger import latest_for_jobs

    out, slug, keys = rendered
    names = sorted(review_listing(out, slug, keys))
    database = Database(database_url(out))
    try:
        before = latest_for_jobs(database, keys)
    finally:
        database.close()
    apply_review(out, slug, keys, ReviewDecision(), run_id="run-1")
    after_first = len(ledger_rows(out))
    outcome = apply_review(out, slug, keys, ReviewDecision(), run_id="run-1")  # a retried task, say
    assert len(ledger_rows(out)) == after_first and len(outcome.approved) == len(keys)
    # The same run's answer applied at once by another process, which read the record before this
    # one's decision was committed:
    monkeypatch.setattr(visuels.review.decisions, "latest_for_jobs", lambda database, keys: before)
    apply_review(out, slug, keys, ReviewDecision(rejected=[names[0]], comment="too dark"), run_id="run-1")
    assert len(ledger_rows(out)) == after_first
    assert approved_files(out, slug) == names  # the first answer stands, whole


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"rejected": ["a.png"], "comments": {"b.png": "x"}}, "which is not rejected"),
        ({"rejected": ["a.png"]}, "needs a comment"),
        ({"rejected": ["a.png", "b.png"], "comments": {"a.png": "blurry"}}, "rejection of b.png needs a comment"),
    ],
)
def test_inconsistent_decisions_are_refused(values: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ReviewDecision(**values)


def test_the_approved_folder_publishes_only_exported_files_and_loses_none(
    rendered: tuple[Path, str, list[str]],
) -> None:
    """An approved copy edited in place (cropped for a newsletter), or a file someone put in
    `approved/`: the first stayed there unmarked, in the folder a region publishes; the second was
    deleted at the next report. Both are moved to `set-aside/`, and the approved copy is made again."""
    from PIL import Image
    from visuels.review.decisions import sync_approved

    out, slug, keys = rendered
    names = sorted(review_listing(out, slug, keys))
    apply_review(out, slug, keys, ReviewDecision())
    approved = out / slug / "approved"
    edited = approved / names[0]
    with Image.open(edited) as picture:
        picture.convert("RGB").crop((0, 0, 200, 100)).save(edited, format="PNG")
    edit = edited.read_bytes()
    (approved / "notes").mkdir()
    (approved / "notes" / "poster-v2.png").write_bytes(b"a designer's own file")
    # An exported file in another's place (as an output's bytes before `visuels timestamp`
    # replaced them): the record's file is copied in its place, nothing set aside.
    (approved / names[1]).write_bytes((out / slug / names[2]).read_bytes())
    # An export moved there, not copied: the only one of its bytes, kept.
    moved = (out / slug / names[-1]).read_bytes()
    (out / slug / names[-1]).rename(approved / "moved-here.png")
    database = Database(database_url(out))
    try:
        sync_approved(database, out, slug)
        sync_approved(database, out, slug)  # once put right, nothing more moves
    finally:
        database.close()
    assert approved_files(out, slug) == names
    assert edited.read_bytes() == (out / slug / names[0]).read_bytes()  # the exported file again
    aside = out / slug / "set-aside"
    assert (aside / names[0]).read_bytes() == edit
    assert (aside / "notes" / "poster-v2.png").read_bytes() == b"a designer's own file"
    assert (approved / names[1]).read_bytes() == (out / slug / names[1]).read_bytes()
    assert (aside / "moved-here.png").read_bytes() == moved
    kept = sorted(path.name for path in aside.rglob("*") if path.is_file())
    assert kept == sorted([names[0].split("/")[-1], "poster-v2.png", "moved-here.png"])


def test_an_approved_copy_edited_to_its_own_size_is_set_aside(rendered: tuple[Path, str, list[str]]) -> None:
    """An edit in place that keeps the file's size (a few bytes written over) was taken for the
    approved copy: sizes alone were compared. A copy whose time is not the one it was given is
    read; one of the right bytes (made by an earlier version, or touched) is kept, and given it."""
    import os

    from visuels.review.decisions import sync_approved

    out, slug, keys = rendered
    names = sorted(review_listing(out, slug, keys))
    apply_review(out, slug, keys, ReviewDecision())
    approved = out / slug / "approved"
    edited, touched = approved / names[0], approved / names[1]
    given = touched.stat().st_mtime_ns
    with edited.open("r+b") as file:  # the same size, other bytes
        file.seek(edited.stat().st_size // 2)
        file.write(b"edited")
    edit = edited.read_bytes()
    os.utime(touched, ns=(given, given + 5_000_000_000))
    database = Database(database_url(out))
    try:
        sync_approved(database, out, slug)
    finally:
        database.close()
    assert edited.read_bytes() == (out / slug / names[0]).read_bytes()
    assert (out / slug / "set-aside" / names[0]).read_bytes() == edit
    assert touched.stat().st_mtime_ns == given  # the right bytes: kept, its time put back
    assert not (out / slug / "set-aside" / names[1]).exists()


def test_a_damaged_coherence_file_leaves_the_review_listing_without_outliers(
    rendered: tuple[Path, str, list[str]],
) -> None:
    """coherence.json is written again by each report: one damaged by hand (a list, a value that
    is not an assessment) stopped the review page and the review flow (AttributeError, ValidationError)."""
    out, slug, keys = rendered
    for damaged in ("[]", '{"' + keys[0] + '": {"distance": "far"}}'):
        (out / slug / "coherence.json").write_text(damaged, encoding="utf-8")
        listing = review_listing(out, slug, keys)
        assert len(listing) == len(keys) and all(entry["coherence"] is None for entry in listing.values())
