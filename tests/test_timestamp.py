"""`visuels timestamp`: an exported picture signed without a time-stamp gets one later, from a real
RFC 3161 authority (OpenSSL's, on 127.0.0.1): its marks stay, its new bytes are recorded, a re-run
changes nothing; an authority out of reach is the environment failing, and changes nothing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels.cli.main import main
from visuels.flows.processes import free_port
from visuels.inputs.charter import load_charter
from visuels.marking.c2pa_manifest import read_manifest_state, sign_asset
from visuels.marking.keys import TRUST_ANCHORS, TimeStampError, signing_files
from visuels.marking.png import encode_png
from visuels.record import ledger, manifest
from visuels.record.database import Database
from visuels.review.detect import detect_file
from visuels.review.verify import verify_file

from tests.helpers import SAMPLE_CHARTER_DIR, provenance_of
from tests.tsa import available, refusing_authority, time_stamp_authority

pytestmark = pytest.mark.skipif(not available(), reason="openssl is not installed")


def test_a_picture_is_time_stamped_later_and_stays_marked_and_recorded(
    rendered_copy: tuple[Path, str, list[str], list[str]],
    signing_keys: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, slug, files, _ = rendered_copy
    path = out / files[0]
    database_file = str(out / "visuels.sqlite")
    before = read_manifest_state(path, signing_keys / TRUST_ANCHORS)
    assert before.signed_at is None and before.state == "Trusted"  # exported with no authority set
    monkeypatch.delenv("VISUELS_TSA_URL", raising=False)
    assert main(["timestamp", str(path), "--database", database_file]) == 2
    assert "set VISUELS_TSA_URL" in capsys.readouterr().err
    with time_stamp_authority() as (url, root):
        monkeypatch.setenv("VISUELS_TSA_URL", url)
        assert main(["timestamp", str(path), "--database", database_file]) == 0
        assert "time-stamped" in capsys.readouterr().out
        assert main(["timestamp", str(path), "--database", database_file]) == 0  # again: nothing to do
        assert "already time-stamped" in capsys.readouterr().out
        anchors = tmp_path / "anchors.pem"  # the deployment's root, and the authority's
        anchors.write_text((signing_keys / TRUST_ANCHORS).read_text() + root.read_text())
    after = read_manifest_state(path, anchors)
    assert after.state == "Trusted" and after.signed_at
    assert (after.soft_binding, after.image_code, after.source_type) == (
        before.soft_binding,
        before.image_code,
        before.source_type,
    )  # the original manifest, read through the update
    charter = load_charter(SAMPLE_CHARTER_DIR)
    detection = detect_file(path, charter, anchors)
    assert detection.verdict == "marked" and f"time-stamped {after.signed_at}" in detection.marks["c2pa"].basis
    database = Database(f"sqlite:///{database_file}")
    try:
        report = verify_file(path, charter, database, anchors)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        recorded = manifest.entries(database, slug)
    finally:
        database.close()
    assert report.ok, {name: check.detail for name, check in report.checks.items() if not check.passed}
    (entry,) = [entry for entry in recorded.values() if entry["file"].endswith(path.name)]
    assert entry["sha256"] == sha256 and entry["size"] == path.stat().st_size  # a re-run renders nothing
    # Given its export's time back, as every export is: the next night need not read it again.
    assert path.stat().st_mtime_ns == manifest.exported_time_ns(entry["created"])
    assert report.lineage[0]["sha256"] == sha256 and len(report.lineage) == 2  # one row more, no more


def test_an_authority_out_of_reach_is_the_environment_failing_and_changes_nothing(
    rendered_copy: tuple[Path, str, list[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing listening, or an error answered: one line naming VISUELS_TSA_URL and what came back,
    exit code 3 (the environment, not the picture); the picture and its record stay as they were.
    Signing an export through it is refused the same way (a render then stops, as on a full disk)."""
    out, _, files, _ = rendered_copy
    path = out / files[0]
    before = path.read_bytes()
    database_file = str(out / "visuels.sqlite")
    provenance = provenance_of(Image.new("RGB", (64, 64)))
    with refusing_authority() as answering_503:
        down = f"http://127.0.0.1:{free_port()}/tsr"
        for url, why in ((down, "no answer"), (answering_503, "it answered HTTP 503")):
            monkeypatch.setenv("VISUELS_TSA_URL", url)
            assert main(["timestamp", str(path), "--database", database_file]) == 3
            said = capsys.readouterr().err.strip()
            assert said == (
                f"error: VISUELS_TSA_URL: the time-stamp authority {url} gave no time-stamp ({why}): check that"
                " this machine reaches it, then run again"
            )
            with pytest.raises(TimeStampError, match=re.escape(f"gave no time-stamp ({why})")) as refused:
                sign_asset(encode_png(np.zeros((64, 64, 3), np.uint8)), "image/png", provenance, signing_files())
            assert refused.value.exit_code == 3 and "`visuels timestamp`" in str(refused.value)
    assert path.read_bytes() == before
    database = Database(f"sqlite:///{database_file}")
    try:
        assert ledger.by_sha256(database, hashlib.sha256(before).hexdigest())
    finally:
        database.close()


def test_a_campaign_folder_is_stamped_whole_and_what_is_no_export_is_said_and_left(
    rendered_copy: tuple[Path, str, list[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`visuels timestamp outputs/CAMPAIGN` said "is a folder, not a picture": a region had to name
    every file. A folder stands for its pictures: the exports are stamped, an edit kept beside its
    output is said and left as it is, and the half-written copy of a stamp killed mid-write (hidden,
    but published with the folder) is removed."""
    import subprocess
    import sys

    from visuels._internal.liveness import machine_id

    out, slug, files, _ = rendered_copy
    kept = (out / files[0]).with_name("kept-edited.png")
    Image.new("RGB", (64, 64), "red").save(kept)  # no export: a designer's edit kept beside its output
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stamped = out / files[1]
    half = stamped.parent / f".{stamped.name}.{machine_id()}.{dead.stdout.strip()}.0123abcd.tmp"
    half.write_bytes(b"half a picture")
    with time_stamp_authority() as (url, _):
        monkeypatch.setenv("VISUELS_TSA_URL", url)
        assert main(["timestamp", str(out / slug), "--database", str(out / "visuels.sqlite")]) == 0
    said = capsys.readouterr().out
    assert sorted(
        line.split(": time-stamped ")[0] for line in said.splitlines() if line.endswith(", recorded")
    ) == sorted(str(out / file) for file in files)
    assert f"left as it is: {kept}: file: no ledger record of these bytes" in said
    assert not half.exists() and kept.is_file()
    assert all(read_manifest_state(out / file, signing_files().trust_anchors).signed_at for file in files)


def test_a_stamp_written_whose_record_was_not_is_recorded_by_the_next_run(
    rendered_copy: tuple[Path, str, list[str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Killed after the stamped bytes replaced the file, before their record was committed: the
    next run records them (no second stamp), and the one after finds nothing to do. The same
    bytes under another picture's name are not its stamp, and are refused."""
    from visuels._internal.atomic import StagedFile

    out, slug, files, _ = rendered_copy
    path, other = out / files[0], out / files[1]
    database_file = str(out / "visuels.sqlite")
    publish = StagedFile.publish

    def published_then_killed(self: StagedFile) -> None:
        publish(self)
        raise KeyboardInterrupt  # what the record's transaction sees of a kill: it is not committed

    with time_stamp_authority() as (url, _):
        monkeypatch.setenv("VISUELS_TSA_URL", url)
        with monkeypatch.context() as killed:
            killed.setattr(StagedFile, "publish", published_then_killed)
            assert main(["timestamp", str(path), "--database", database_file]) == 130
        stamped = path.read_bytes()
        database = Database(f"sqlite:///{database_file}")
        try:
            assert ledger.by_sha256(database, hashlib.sha256(stamped).hexdigest()) is None  # not recorded
        finally:
            database.close()
        other.write_bytes(stamped)  # the same unrecorded stamp under another picture's name: not its own
        assert main(["timestamp", str(other), "--database", database_file]) == 2
        assert "no ledger record of these bytes" in capsys.readouterr().err
        assert main(["timestamp", str(path), "--database", database_file]) == 0
        assert "time-stamped" in capsys.readouterr().out
        assert path.read_bytes() == stamped  # recorded as it was, not stamped again
        assert main(["timestamp", str(path), "--database", database_file]) == 0
        assert "already time-stamped" in capsys.readouterr().out
    database = Database(f"sqlite:///{database_file}")
    try:
        sha256 = hashlib.sha256(stamped).hexdigest()
        (entry,) = [entry for entry in manifest.entries(database, slug).values() if entry["file"].endswith(path.name)]
        assert entry["sha256"] == sha256 and entry["size"] == len(stamped)
        assert ledger.verify_chain(database)[1] is None
        assert len([row for row in ledger.with_job_key(database, ledger.by_sha256(database, sha256)["job_key"])]) == 2
    finally:
        database.close()


def test_two_runs_stamping_one_file_at_once_record_one_stamp(
    rendered_copy: tuple[Path, str, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two machines time-stamp the same picture at once: both read it unstamped and get a stamp;
    the first records and publishes its own, the second finds it recorded and leaves the file
    alone. One stamp row, the file on disk the recorded one."""
    import threading

    import visuels.review.timestamp as stamping
    from visuels.review.timestamp import time_stamp_file

    out, slug, files, _ = rendered_copy
    path = out / files[0]
    url = f"sqlite:///{out / 'visuels.sqlite'}"
    both_stamped = threading.Barrier(2, timeout=60)
    stamp = stamping.time_stamp

    def stamped_while_the_other_stamps_too(*arguments):  # type: ignore[no-untyped-def]
        result = stamp(*arguments)
        both_stamped.wait()  # each has read the picture unstamped, neither has recorded yet
        return result

    monkeypatch.setattr(stamping, "time_stamp", stamped_while_the_other_stamps_too)
    done: list = []

    def run() -> None:
        database = Database(url)
        try:
            done.append(time_stamp_file(path, database, signing_files()))
        finally:
            database.close()

    with time_stamp_authority() as (authority, _):
        monkeypatch.setenv("VISUELS_TSA_URL", authority)
        runs = [threading.Thread(target=run) for _ in range(2)]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join(timeout=120)
    assert sorted(result.already for result in done) == [False, True]
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert {result.sha256 for result in done} == {sha256}
    database = Database(url)
    try:
        (entry,) = [entry for entry in manifest.entries(database, slug).values() if entry["file"].endswith(path.name)]
        assert entry["sha256"] == sha256
        job_rows = ledger.with_job_key(database, ledger.by_sha256(database, sha256)["job_key"])
        assert len(job_rows) == 2 and ledger.verify_chain(database)[1] is None  # the export, one stamp
    finally:
        database.close()


def test_an_answer_that_cannot_be_read_is_the_authority_failing() -> None:
    """Seen when two stamps were asked of one authority at once and one reply came back broken:
    c2pa's "decode error" was said as "time-stamping failed", exit 2, naming chain.pem, as if the
    keys were at fault (they are read before anything is signed)."""
    from visuels.marking.c2pa_manifest import _time_stamp_failure

    seen = "Signature: internal error (decode error (trailing data (at position 49)))"
    assert str(_time_stamp_failure(seen)) == "its answer could not be read"


def test_the_approved_copies_follow_their_exports_time_stamp_whichever_is_stamped(
    rendered_copy: tuple[Path, str, list[str], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Time-stamping before publishing, a region stamps what it publishes: `approved/`. Stamping
    an approved copy recorded bytes that were not where the record says the picture is: the next
    render made it again and the report set the approved picture aside. Stamping an export set its
    approved copy aside too, as "not an exported file". Now a copy stamps its export and takes its
    bytes; an approved copy of an export stamped since is replaced by the stamped bytes; nothing is
    set aside, and nothing is rendered again."""
    from visuels.planning.plan import plan_render
    from visuels.review.decisions import ReviewDecision, apply_review, sync_approved

    from tests.helpers import rendered_campaign_file

    out, slug, files, keys = rendered_copy
    apply_review(out, slug, keys, ReviewDecision())
    database_file = str(out / "visuels.sqlite")
    copy = out / slug / "approved" / Path(files[0]).relative_to(slug)
    other_copy = out / slug / "approved" / Path(files[1]).relative_to(slug)
    with time_stamp_authority() as (url, _):
        monkeypatch.setenv("VISUELS_TSA_URL", url)
        assert main(["timestamp", str(copy), "--database", database_file]) == 0
        assert f"a copy of {out / files[0]}, which is time-stamped" in capsys.readouterr().out
        assert main(["timestamp", str(out / files[1]), "--database", database_file]) == 0
        assert main(["timestamp", str(copy), "--database", database_file]) == 0
        assert "already time-stamped" in capsys.readouterr().out
    assert copy.read_bytes() == (out / files[0]).read_bytes()
    assert read_manifest_state(out / files[0], None).signed_at
    database = Database(f"sqlite:///{database_file}")
    try:
        recorded = {entry["file"]: entry for entry in manifest.entries(database, slug).values()}
        for file in files[:2]:
            assert recorded[file]["sha256"] == hashlib.sha256((out / file).read_bytes()).hexdigest()
        sync_approved(database, out, slug)
    finally:
        database.close()
    assert other_copy.read_bytes() == (out / files[1]).read_bytes()  # the stamped bytes, copied again
    for file, stamped in ((files[0], copy), (files[0], out / files[0]), (files[1], out / files[1])):
        # At their export's time, as an export and its copies are given it: not read again.
        assert stamped.stat().st_mtime_ns == manifest.exported_time_ns(recorded[file]["created"])
    assert not (out / slug / "set-aside").exists()
    assert plan_render(rendered_campaign_file(out), out).pending == []
    # A database away from the outputs (PostgreSQL, a SQLite file elsewhere) does not say where the
    # export is: an approved copy's own place does.
    elsewhere = tmp_path / "elsewhere" / "record.sqlite"
    elsewhere.parent.mkdir()
    for suffix in ("", "-wal"):  # the record whole, what its write-ahead log holds too
        if Path(database_file + suffix).is_file():
            Path(f"{elsewhere}{suffix}").write_bytes(Path(database_file + suffix).read_bytes())
    third = out / slug / "approved" / Path(files[2]).relative_to(slug)
    with time_stamp_authority() as (url, _):
        monkeypatch.setenv("VISUELS_TSA_URL", url)
        assert main(["timestamp", str(third), "--database", str(elsewhere)]) == 0
    assert third.read_bytes() == (out / files[2]).read_bytes() and read_manifest_state(third, None).signed_at
