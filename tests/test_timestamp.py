"""`visuels timestamp`: an exported picture signed without a time-stamp gets one later, from a real
RFC 3161 authority (OpenSSL's, on 127.0.0.1): its marks stay, its new bytes are recorded, a re-run
changes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from visuels.cli.main import main
from visuels.inputs.charter import load_charter
from visuels.marking.c2pa_manifest import read_manifest_state
from visuels.marking.keys import TRUST_ANCHORS
from visuels.record import manifest
from visuels.record.database import Database
from visuels.review.detect import detect_file
from visuels.review.verify import verify_file

from tests.helpers import SAMPLE_CHARTER_DIR
from tests.tsa import available, time_stamp_authority

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
    assert report.lineage[0]["sha256"] == sha256 and len(report.lineage) == 2  # one row more, no more
