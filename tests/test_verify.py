"""Issue 4 acceptance: every layer present and checkable, by us and by independent readers."""

import io
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels.cli import main
from visuels.engine.renderer import Renderer
from visuels.inputs.charter import Charter, load_charter
from visuels.marking.c2pa_manifest import sign_asset
from visuels.marking.checkpoints import CHECKPOINT_FILE
from visuels.marking.keys import TRUST_ANCHORS, init_local_chain, signing_files
from visuels.marking.mark import encode
from visuels.marking.watermark_keys import key_id
from visuels.marking.xmp import DigitalSourceType, xmp_packet
from visuels.planning.jobs import KEY_PREFIX_LENGTH
from visuels.planning.plan import plan_render
from visuels.record.database import Database, database_url, url_option
from visuels.record.ledger import LedgerEntry, append, verify_chain
from visuels.review.publish import finish_render
from visuels.review.verify import verify_file

from tests.helpers import SAMPLE_CHARTER_DIR, TEST_WATERMARK_KEY, provenance_of, reissue_signer, render_now
from tests.watermark_attacks import rotate


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter(SAMPLE_CHARTER_DIR)


def render_collioure(folder: Path, file_type: str = "png", formats: str = "instagram_square, web_banner") -> Path:
    """Write a small campaign for Collioure in ``folder``; return its path. Collioure has a (stand-in)
    photo: its pictures are composites, rendered from it."""
    campaign = folder / "campaign.yaml"
    campaign.write_text(
        f"""
name: Vérification
charter: {SAMPLE_CHARTER_DIR / "charter.yaml"}
communes: {{file: {SAMPLE_CHARTER_DIR / "communes.csv"}, names: ["Collioure"]}}
prompt: "poster of {{commune}}, {{landscape}}"
season: summer
audiences: {{residents: families}}
formats: [{formats}]
file_type: {file_type}
steps: 4
""",
        encoding="utf-8",
    )
    return campaign


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, renderer: Renderer) -> tuple[Path, list[Path]]:
    """Two real outputs of the demo model, exported through the only export path."""
    folder = tmp_path_factory.mktemp("verify")
    campaign = render_collioure(folder)
    out = folder / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out, plan.pending[:1]) + render_now(renderer, plan, out, plan.pending[1:])
    finish_render(plan, out)
    return out, [out / item.job.relative_path for item in exported]


def flip_pixel_data_bit(png: bytes) -> bytes:
    """Change one pixel byte of a PNG and rebuild its IDAT data: a valid PNG with other pixels."""
    chunks, offset = [], 8  # after the PNG signature
    while offset < len(png):
        length = struct.unpack(">I", png[offset : offset + 4])[0]
        chunks.append((png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    width = struct.unpack(">I", chunks[0][1][:4])[0]
    raw = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    row = 1 + 3 * width  # filter byte, then RGB
    raw[(len(raw) // row // 2) * row + 1 + 3 * (width // 2)] ^= 0x01  # the middle pixel's red
    idat = zlib.compress(bytes(raw))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rebuilt, placed = png[:8], False
    for kind, body in chunks:
        if kind == b"IDAT":
            rebuilt += b"" if placed else chunk(b"IDAT", idat)
            placed = True
        else:
            rebuilt += chunk(kind, body)
    return rebuilt


def check(path: Path, charter: Charter, out: Path):
    database = Database(database_url(out))
    try:
        return verify_file(path, charter, database, signing_files().trust_anchors)
    finally:
        database.close()


def test_every_exported_file_passes_every_layer(rendered: tuple[Path, list[Path]], charter: Charter) -> None:
    out, files = rendered
    for path in files:
        report = check(path, charter, out)
        assert report.ok, report
        assert report.label_seen and report.watermark_in_ledger and report.c2pa == "Trusted"
        assert report.xmp_source_type.endswith("/compositeWithTrainedAlgorithmicMedia")
        assert report.c2pa_soft_binding == report.watermark == report.ledger_record["watermark"]
        assert report.ledger_record["file"] == str(path.relative_to(out))


def test_a_report_thumbnail_says_ai_made_and_leads_to_its_file(
    rendered: tuple[Path, list[Path]], charter: Charter
) -> None:
    """The contact sheet's thumbnails are files too: one taken from the report is no unmarked copy."""
    out, files = rendered
    for path in files:
        file_report = check(path, charter, out)
        campaign, job_key = path.relative_to(out).parts[0], file_report.ledger_record["job_key"]
        report = check(out / campaign / "thumbnails" / f"{job_key[:KEY_PREFIX_LENGTH]}.jpg", charter, out)
        assert report.xmp_source_type == file_report.xmp_source_type
        assert report.watermark == file_report.watermark and report.ledger_record["file"] == str(path.relative_to(out))


@pytest.mark.parametrize(("file_type", "suffix"), [("jpeg", ".jpg"), ("webp", ".webp")])
def test_jpeg_and_webp_exports_carry_every_layer(
    tmp_path: Path, charter: Charter, renderer: Renderer, file_type: str, suffix: str
) -> None:
    campaign = render_collioure(tmp_path, file_type, formats="instagram_square")
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    [exported] = render_now(renderer, plan, out)
    path = out / exported.job.relative_path
    assert path.suffix == suffix
    report = check(path, charter, out)
    assert report.ok and report.c2pa == "Trusted" and report.watermark_in_ledger, report
    if shutil.which("exiftool"):
        result = subprocess.run(
            ["exiftool", "-json", "-XMP-iptcExt:DigitalSourceType", str(path)], capture_output=True, text=True
        )
        assert json.loads(result.stdout)[0]["DigitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")


def test_c2pa_reader_in_another_process_agrees(rendered: tuple[Path, list[Path]]) -> None:
    _, files = rendered
    anchors = signing_files().trust_anchors.read_text()
    script = """
import json, sys, c2pa
path, anchors = sys.argv[1], sys.argv[2]
settings = {"version": 1}
if anchors:
    settings["trust"] = {"trust_anchors": anchors}
context = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
with c2pa.Reader(path, context=context) as reader:
    print(reader.get_validation_state())
"""
    for anchor, expected in (("", "Valid"), (anchors, "Trusted")):
        result = subprocess.run(
            [sys.executable, "-c", script, str(files[0]), anchor], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == expected


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool (libimage-exiftool-perl) not installed")
def test_exiftool_reads_the_digital_source_type(rendered: tuple[Path, list[Path]]) -> None:
    _, files = rendered
    result = subprocess.run(
        [
            "exiftool",
            "-json",
            "-XMP-iptcExt:DigitalSourceType",
            "-XMP-dc:Creator",
            "-XMP-dc:Contributor",
            "-XMP-photoshop:Credit",
            str(files[0]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    tags = json.loads(result.stdout)[0]
    made = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    assert tags["DigitalSourceType"] == made  # rendered from Collioure's (stand-in) photo
    assert "Région Solane" in str(tags["Creator"])
    assert "Photo: visuels sample assets (bay drawn by code)" in str(tags["Contributor"])
    assert "; photo: visuels sample assets" in tags["Credit"]


def test_a_file_edited_after_signing_reads_invalid(
    rendered: tuple[Path, list[Path]], charter: Charter, tmp_path: Path
) -> None:
    out, files = rendered
    edited = tmp_path / "edited.png"
    edited.write_bytes(flip_pixel_data_bit(files[0].read_bytes()))
    report = check(edited, charter, out)
    assert report.c2pa == "Invalid" and not report.ok


@pytest.mark.parametrize("format_name", ["PNG", "JPEG"])
def test_a_stripped_file_is_found_through_its_watermark(
    rendered: tuple[Path, list[Path]], charter: Charter, tmp_path: Path, format_name: str
) -> None:
    out, files = rendered
    stripped = tmp_path / f"stripped.{format_name.lower()}"
    with Image.open(files[0]) as image:
        image.convert("RGB").save(stripped, format_name)  # Pillow drops XMP and the C2PA manifest
    report = check(stripped, charter, out)
    assert report.c2pa == "missing" and report.xmp_source_type is None and not report.ok
    assert report.found_by == "watermark" and report.ledger_record["file"] == str(files[0].relative_to(out))
    assert report.label_seen


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_a_mirrored_straightened_copy_is_found_and_verify_says_how(
    rendered: tuple[Path, list[Path]], charter: Charter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy flipped for a layout, then turned by 3 degrees and cropped to fill (a straightened
    horizon), saved as JPEG: the watermark still names its file, and verify says how it was found."""
    out, files = rendered
    with Image.open(files[0]) as image:
        pixels = np.asarray(image.convert("RGB"))[:, ::-1]
    changed = tmp_path / "copy.jpg"
    Image.fromarray(rotate(np.ascontiguousarray(pixels), 3)).save(changed, quality=85)
    report = check(changed, charter, out)
    assert report.found_by == "watermark" and report.ledger_record["file"] == str(files[0].relative_to(out))
    assert report.watermark_geometry.startswith("flipped, turned ") and report.watermark_geometry.endswith("°")
    assert main(["verify", str(changed), "--database", str(out / "visuels.sqlite")]) == 1  # no XMP, no C2PA
    assert f"(found {report.watermark_geometry})" in capsys.readouterr().out


def test_an_unmarked_picture_has_no_layer(charter: Charter, tmp_path: Path, rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    plain = tmp_path / "plain.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(plain)
    report = check(plain, charter, out)
    assert not (report.label_seen or report.watermark or report.xmp_source_type or report.ledger_record)
    assert report.c2pa == "missing" and not report.ok


def test_bad_files_get_one_line_each_and_the_others_are_still_verified(
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, files = rendered
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(signing_files().chain.parent))
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(files[0].read_bytes()[:5000])
    bomb = tmp_path / "bomb.png"
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, "PNG")  # 144 megapixels in a few hundred kB
    bomb.write_bytes(buffer.getvalue())
    argv = [
        "verify",
        str(not_image),
        str(files[0]),
        str(truncated),
        str(bomb),
        "--database",
        str(out / "visuels.sqlite"),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 3 and "Traceback" not in captured.err
    assert err_lines[0].startswith(f"error: {not_image}: not a picture")
    assert err_lines[1].startswith(f"error: {truncated}: truncated or damaged picture")
    assert err_lines[2].startswith(f"error: {bomb}: 12000x12000 is more than 120,000,000 pixels")
    assert captured.out.startswith(f"ok  {files[0]}: label yes")


def test_verify_exit_codes_and_json(
    rendered: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, files = rendered
    ledger = ["--database", str(out / "visuels.sqlite")]
    assert main(["verify", *map(str, files), *ledger]) == 0
    capsys.readouterr()
    stripped = tmp_path / "stripped.png"
    Image.open(files[0]).convert("RGB").save(stripped)
    assert main(["verify", "--json", str(stripped), *ledger]) == 1
    report = json.loads(capsys.readouterr().out)[0]
    assert report["c2pa"] == "missing" and report["found_by"] == "watermark"


def test_ledger_chain_detects_edits(rendered: tuple[Path, list[Path]], tmp_path: Path) -> None:
    out, _ = rendered
    copy = tmp_path / "copy.sqlite"
    shutil.copy(out / "visuels.sqlite", copy)
    assert verify_chain(Database(url_option(str(copy)))) == (2, None)
    assert main(["ledger", "verify", "--database", str(copy)]) == 0
    connection = sqlite3.connect(copy)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("UPDATE ledger SET prompt = 'something else' WHERE id = 1")
    connection.execute("DROP TRIGGER ledger_no_update")  # a determined editor
    connection.execute("UPDATE ledger SET seed = 1 WHERE id = 1")
    connection.commit()
    connection.close()
    assert verify_chain(Database(url_option(str(copy))))[1] == 1
    assert main(["ledger", "verify", "--database", str(copy)]) == 1


def test_keys_init_makes_private_keys_readable_by_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert main(["keys", "init", "--dir", str(folder)]) == 0
    for key in folder.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert (folder / TRUST_ANCHORS).is_file()
    assert main(["keys", "init", "--dir", str(folder)]) == 2  # never overwrites a key


def test_render_without_keys_is_refused_before_anything_is_written(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "no-keys"))
    out = tmp_path / "outputs"
    assert main(["render", str(make_campaign()), "--output-dir", str(out)], render=lambda request: None) == 2
    assert "run `visuels keys init`" in capsys.readouterr().err
    assert not out.exists()


def test_verify_finds_the_record_of_the_files_own_output_folder(
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, files = rendered  # rendered with an output folder of its own, not ./outputs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("VISUELS_DATABASE_URL", raising=False)
    assert main(["verify", str(files[0])]) == 0
    assert "ledger #" in capsys.readouterr().out


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_with_no_record_each_file_gets_its_own_verdict_from_its_marks(
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pictures that reached someone outside the project: no database, one line each all the same."""
    _, files = rendered
    received = tmp_path / "received"
    received.mkdir()
    monkeypatch.chdir(received)
    monkeypatch.delenv("VISUELS_DATABASE_URL", raising=False)
    valid = received / "valid.png"
    valid.write_bytes(files[0].read_bytes())
    empty = received / "empty.png"
    empty.write_bytes(b"")
    photo = received / "photo.png"
    Image.new("RGB", (256, 256), (90, 140, 200)).save(photo)  # nobody's AI picture
    assert main(["verify", str(valid), str(empty), str(photo)]) == 2  # one file could not be read
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith(f"ok  {valid}: label yes, watermark ") and lines[0].endswith(
        "no record found: judged from its marks alone"
    )
    assert any(line.startswith(f"BAD {photo}: label no, watermark none") for line in lines)
    assert captured.err.strip().splitlines() == [
        f"error: {empty}: not a picture that can be read (PNG, JPEG, WebP, TIFF, AVIF)"
    ]
    assert main(["verify", str(valid)]) == 0 and main(["verify", str(photo)]) == 1
    capsys.readouterr()
    assert main(["verify", str(valid), "--database", str(received / "nowhere.sqlite")]) == 2  # named: must exist


def test_a_file_signed_by_a_chain_the_anchors_do_not_know_fails_unless_allowed(
    rendered: tuple[Path, list[Path]], charter: Charter, tmp_path: Path
) -> None:
    out, files = rendered
    stranger = init_local_chain(tmp_path / "other-chain", organisation="Somebody else")
    database = Database(database_url(out))
    try:
        refused = verify_file(files[0], charter, database, stranger.trust_anchors)
        allowed = verify_file(files[0], charter, database, stranger.trust_anchors, allow_untrusted=True)
    finally:
        database.close()
    assert refused.c2pa == "Valid" and not refused.ok
    assert [name for name, check in refused.checks.items() if not check.passed] == ["c2pa"]
    assert "--allow-untrusted" in refused.checks["c2pa"].detail
    assert allowed.ok


def test_a_soft_binding_that_is_not_the_watermark_fails(
    rendered: tuple[Path, list[Path]], charter: Charter, tmp_path: Path
) -> None:
    out, files = rendered
    report = check(files[0], charter, out)
    with Image.open(files[0]) as image:
        pixels = image.convert("RGB")  # the watermark stays in the pixels
    provenance = provenance_of(pixels, title="forged.png")  # another payload than the one in the pixels
    forged = tmp_path / "forged.png"
    encoded = encode(np.asarray(pixels), "png", 72, xmp_packet(DigitalSourceType.generated, "x", "visuels"))
    forged.write_bytes(sign_asset(encoded, "image/png", provenance, signing_files()))
    forgery = check(forged, charter, out)
    assert forgery.c2pa == "Trusted" and forgery.watermark == report.watermark and forgery.watermark_in_ledger
    assert not forgery.checks["soft_binding"].passed and not forgery.ok
    assert not forgery.checks["ledger"].passed  # nor are these bytes the exported ones
    assert "changed since it was exported" in forgery.checks["ledger"].detail


def test_verify_lists_each_failed_check(
    rendered: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, files = rendered
    stripped = tmp_path / "stripped.png"
    Image.open(files[0]).convert("RGB").save(stripped)
    assert main(["verify", str(stripped), "--database", str(out / "visuels.sqlite")]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith(f"BAD {stripped}")
    for line in ("    xmp: no IPTC digital source type", "    c2pa: no C2PA manifest", "    soft_binding:"):
        assert line in printed
    assert "    label:" not in printed and "    watermark:" not in printed  # those passed


def ledger_rows(database: Database) -> list:
    from sqlalchemy import select
    from visuels.record.database import ledger_table

    with database.reading() as connection:
        return [row._mapping for row in connection.execute(select(ledger_table).order_by(ledger_table.c.id))]


def tampered_copy(out: Path, folder: Path, *statements: str) -> Path:
    """A copy of the output folder's record and checkpoint file, after ``statements`` (triggers dropped)."""
    folder.mkdir()
    shutil.copy(out / "visuels.sqlite", folder / "visuels.sqlite")
    shutil.copy(out / CHECKPOINT_FILE, folder / CHECKPOINT_FILE)
    connection = sqlite3.connect(folder / "visuels.sqlite")
    for table in ("ledger", "ledger_checkpoints"):
        for verb in ("update", "delete"):
            connection.execute(f"DROP TRIGGER {table}_no_{verb}")  # a determined editor
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()
    return folder / "visuels.sqlite"


def test_a_cut_rewritten_or_wholly_replaced_ledger_fails_against_its_signed_checkpoint(
    rendered: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = rendered
    assert main(["ledger", "verify", "--database", str(out / "visuels.sqlite")]) == 0
    assert "as its signed checkpoints say" in capsys.readouterr().out
    assert main(["ledger", "verify", "--database", str(out)]) == 0  # the output folder: its record
    assert f"{out / 'visuels.sqlite'}: " in capsys.readouterr().out

    cut = tampered_copy(out, tmp_path / "cut", "DELETE FROM ledger WHERE id = (SELECT max(id) FROM ledger)")
    assert verify_chain(Database(url_option(str(cut))))[1] is None  # the chain alone sees nothing
    assert main(["ledger", "verify", "--database", str(cut)]) == 1
    assert "the ledger was cut: 1 rows" in capsys.readouterr().err

    # Rewritten from the start: a consistent chain with other content, checkpoints left alone.
    database = Database(url_option(str(tampered_copy(out, tmp_path / "rewritten"))))
    rows = [dict(row) for row in ledger_rows(database)]
    with database.transaction() as connection:
        connection.exec_driver_sql("DROP TRIGGER ledger_no_delete")  # opening the record put it back
        connection.exec_driver_sql("DELETE FROM ledger")
        for row in rows:
            entry = LedgerEntry(**{**{name: row[name] for name in LedgerEntry.model_fields}, "prompt": "other"})
            append(connection, entry)
    assert verify_chain(database)[1] is None
    database.close()
    assert main(["ledger", "verify", "--database", str(tmp_path / "rewritten" / "visuels.sqlite")]) == 1
    assert "the ledger was rewritten" in capsys.readouterr().err

    # The whole record replaced, its checkpoints too: the file beside the outputs still disagrees.
    wiped = tampered_copy(out, tmp_path / "wiped", "DELETE FROM ledger_checkpoints", "DELETE FROM ledger")
    assert main(["ledger", "verify", "--database", str(wiped)]) == 1
    err = capsys.readouterr().err
    assert "the ledger was cut: 0 rows" in err and "the database lost checkpoints" in err


def test_a_file_verified_without_its_watermark_key_says_which_key_is_missing_not_that_the_mark_is_gone(
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run from another folder (no keys/ there), verify said "no watermark found" and "its watermark
    is gone: render it again" of every intact file."""
    out, files = rendered
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("VISUELS_WATERMARK_KEY", raising=False)
    assert main(["verify", str(files[0]), "--database", str(out / "visuels.sqlite")]) == 1
    printed = capsys.readouterr().out
    missing = (
        f"watermark: not read: marked with watermark key {key_id(TEST_WATERMARK_KEY)}, which {tmp_path / 'elsewhere'}"
    )
    assert missing + " does not hold" in printed
    assert "what to do: verify it with the watermark keys of the deployment that made it" in printed
    assert "gone" not in printed


def test_a_folder_stands_for_the_pictures_it_holds_less_what_an_output_folder_keeps_for_itself(
    rendered: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`visuels verify outputs/CAMPAIGN` said "is a folder, not a picture": a region checking a
    campaign before publishing it had to spell out every file."""
    out, files = rendered
    assert list((out / "verification" / "thumbnails").glob("*.jpg")) and list(
        (out / "verification" / "edges").glob("*")
    )
    assert main(["verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(line.split(":")[0][4:] for line in printed.splitlines() if line.startswith("ok ")) == sorted(
        map(str, files)
    )
    assert printed.strip().endswith(f"{len(files)} files: {len(files)} ok, 0 BAD")
    linked = tmp_path / "linked"  # links are not followed: a folder's pictures are its own
    linked.mkdir()
    shutil.copy(files[0], linked / files[0].name)
    (linked / "elsewhere").symlink_to(out, target_is_directory=True)
    (linked / "other.png").symlink_to(files[1])
    assert main(["verify", str(linked), "--database", str(out / "visuels.sqlite")]) == 0
    assert capsys.readouterr().out.strip().endswith("1 file: 1 ok, 0 BAD")
    empty = tmp_path / "nothing-here"
    (empty / "thumbnails").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(empty / "thumbnails" / "kept.jpg")
    assert main(["verify", str(empty)]) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: {empty}: holds no picture (PNG, JPEG, WebP, AVIF, GIF, TIFF or BMP)"
    )


def test_a_folder_includes_pictures_converted_to_other_formats_and_says_what_they_lost(
    rendered: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of GIF, TIFF and BMP copies of an output was "a folder without pictures" or, beside
    a PNG, silently left out; and a BMP, a format C2PA cannot carry a manifest in, was said to
    carry a manifest "altered or broken"."""
    out, files = rendered
    folder = tmp_path / "to-publish"
    folder.mkdir()
    picture = Image.open(files[0]).convert("RGB")
    for name in ("copy.gif", "copy.tiff", "copy.bmp"):
        picture.save(folder / name)
    (folder / "notes.txt").write_text("not a picture")
    assert main(["verify", str(folder), "--database", str(out / "visuels.sqlite")]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("BAD ")]
    assert sorted(line.split(":")[0][4:] for line in lines) == [
        str(folder / name) for name in ("copy.bmp", "copy.gif", "copy.tiff")
    ]
    assert all("C2PA missing" in line for line in lines), lines
    assert main(["detect", str(folder)]) == 0  # the watermark still names this deployment in each
    printed = capsys.readouterr().out
    assert printed.count("AI picture of this deployment") == 3 and "no C2PA manifest" in printed


def test_a_manifest_whose_certificate_expired_since_is_said_so_not_taken_for_an_altered_file(
    charter: Charter, tmp_path: Path
) -> None:
    """Without a time-stamp, C2PA readers check a signer's certificate against today: a year on (the
    local signer's life), every picture exported unstamped reads Invalid. The public detector said
    "it does not match the file (altered or broken)", verify the same, and a render finding its own
    export at its place (a lost record) took it for an edit saved over it."""
    import datetime
    import time

    from visuels.engine.export import saved_over
    from visuels.marking.c2pa_manifest import read_manifest_state
    from visuels.marking.keys import SigningFiles
    from visuels.marking.png import encode_png
    from visuels.review.detect import detect_file

    folder = tmp_path / "keys"
    shutil.copytree(signing_files().chain.parent, folder)
    now = datetime.datetime.now(datetime.UTC)
    expires = now + datetime.timedelta(seconds=5)  # time enough to sign on a loaded machine
    reissue_signer(folder, now - datetime.timedelta(minutes=1), expires)
    pixels = np.random.default_rng(5).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    provenance = provenance_of(Image.fromarray(pixels), watermark_id="0123456789abcdef")
    files = SigningFiles(
        folder / "signer.key", folder / "chain.pem", folder / TRUST_ANCHORS, None, signing_files().watermark
    )
    signed = tmp_path / "signed.png"
    signed.write_bytes(sign_asset(encode_png(pixels), "image/png", provenance, files))
    altered = tmp_path / "altered.png"
    data = bytearray(signed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the pixels' compressed stream, far from the manifest
    altered.write_bytes(bytes(data))
    time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1.0)  # expired since
    state = read_manifest_state(signed, folder / TRUST_ANCHORS)
    assert state.state == "Invalid" and state.expired_only, state.failures
    assert not read_manifest_state(altered, folder / TRUST_ANCHORS).expired_only
    assert not saved_over(signed, "0123456789abcdef")  # its own export, as signed
    assert saved_over(altered, "0123456789abcdef") and saved_over(signed, "fedcba9876543210")
    detected = detect_file(signed, charter, folder / TRUST_ANCHORS)
    assert "signed by a certificate that has expired since, with no time-stamp" in str(detected.marks["c2pa"].basis)
    report = verify_file(signed, charter, None, folder / TRUST_ANCHORS)
    assert "its signer's certificate has expired since" in str(report.checks["c2pa"].detail)
    assert not report.checks["c2pa"].passed
