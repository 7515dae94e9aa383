"""The public detector service: the upload page and the API answer signed results the CLI checks;
limits (size, pixels, kind, rate), its own Host names only, nothing kept; wrong-label reports kept
in the record and closed from the command line."""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from visuels.cli.main import main
from visuels.detector.app import DetectorService, Limits, create_app
from visuels.inputs.charter import load_charter
from visuels.marking.keys import TRUST_ANCHORS, detector_key
from visuels.marking.watermark_keys import known_keys
from visuels.record.database import Database, database_url
from visuels.record.reports import reports
from visuels.review.detect import check_result

from tests.helpers import SAMPLE_CHARTER_DIR, marked_picture
from tests.watermark_attacks import unmarked_pictures

PUBLIC_NAME = "detecteur.region.example"


def _service(signing_keys: Path, tmp_path: Path, **limits: int) -> DetectorService:
    return DetectorService(
        charter=load_charter(SAMPLE_CHARTER_DIR),
        trust_anchors=signing_keys / TRUST_ANCHORS,
        keys=known_keys(signing_keys),
        signing_key=detector_key(),
        database_url=database_url(tmp_path / "record"),
        limits=Limits(**limits),
        behind_proxy=True,
    )


def _client(service: DetectorService, host: str = PUBLIC_NAME) -> TestClient:
    # As the region's web server on this machine sends them: from loopback, with X-Forwarded-For.
    return TestClient(create_app(service, (PUBLIC_NAME,)), base_url=f"http://{host}", client=("127.0.0.1", 40000))


def _png(pixels) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG that declares a size its few bytes do not hold: a decompression bomb's beginning."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    )


def test_an_output_sent_to_the_api_and_the_page_gets_a_signed_verdict(signing_keys: Path, tmp_path: Path) -> None:
    data = marked_picture(tmp_path).read_bytes()  # as export marks an output
    client = _client(_service(signing_keys, tmp_path))
    answer = client.post("/api/detect", content=data, headers={"Content-Type": "image/png", "X-File-Name": "a.png"})
    assert answer.status_code == 200, answer.text
    result = tmp_path / "result.json"
    result.write_text(answer.text)
    detections, ours = check_result(result, detector_key().public_key())
    assert ours and detections[0].verdict == "marked" and detections[0].relied_on == ["c2pa", "watermark"]
    assert detections[0].file == "a.png" and len(detections[0].sha256) == 64
    assert client.get("/api/public-key").text.startswith("-----BEGIN PUBLIC KEY-----")

    page = client.post("/?lang=fr", files={"file": ("affiche.png", data, "image/png")})
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert "image IA de ce déploiement" in page.text and "filigrane invisible" in page.text
    assert 'download="detection-' in page.text and "/report?sha256=" in page.text
    assert "script" not in page.headers["content-security-policy"] and "<script" not in page.text

    saved_from_a_web_page = io.BytesIO()  # browsers save pictures as the site served them: AVIF too
    Image.open(io.BytesIO(data)).save(saved_from_a_web_page, format="AVIF", quality=60)
    answer = client.post("/api/detect", content=saved_from_a_web_page.getvalue(), headers={"X-File-Name": "a.avif"})
    assert answer.status_code == 200 and answer.json()["detections"][0]["relied_on"] == ["watermark"], answer.text


def test_limits_kinds_and_the_rate_are_refused_in_one_line_each(signing_keys: Path, tmp_path: Path) -> None:
    client = _client(_service(signing_keys, tmp_path, max_bytes=2 * 1024 * 1024, max_pixels=1_000_000, per_minute=8))
    picture = _png(unmarked_pictures(1)[0][:400, :400])
    cases = (
        (b"%PDF-1.7 not a picture", 415, "a PDF document, not a picture: export the page as PNG or JPEG"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64, 415, "an HEIC/HEIF photo (as phones save them)"),
        (b"GIF89a" + b"\0" * 64, 415, "PNG, JPEG, WebP and AVIF"),  # a kind it does not read, unnamed
        (b"x" * 3 * 1024 * 1024, 413, "over 2 MB"),
        (_png(np.zeros((1000, 1100, 3), np.uint8)), 413, "over 1 million pixels"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 10, 415, "PNG, JPEG, WebP and AVIF"),  # a truncated PNG
        (_png_bomb(60_000, 60_000), 413, "over 1 million pixels"),  # past Pillow's own bomb limit: not "a kind"
    )
    for body, status, words in cases:
        answer = client.post("/api/detect", content=body, headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == status and words in answer.json()["error"], answer.text
    answer = client.post("/api/detect", content=picture, headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and answer.json()["detections"][0]["verdict"] == "unmarked"
    # Eight a minute: the eighth request from this address is the last; another address goes on.
    limited = client.post("/api/detect", content=picture, headers={"Accept-Language": "fr"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "trop d’images" in limited.json()["error"] or "trop d'images" in limited.json()["error"]
    other = client.post("/api/detect", content=picture, headers={"X-Forwarded-For": "192.0.2.7"})
    assert other.status_code == 200  # the proxy's word for the client, from loopback only
    page = client.post("/", files={"file": ("x.pdf", b"%PDF", "application/pdf")}, headers={"X-Forwarded-For": "b"})
    assert page.status_code == 415 and 'role="alert"' in page.text
    # A form of several pictures: an answer for the first alone would leave the others seemingly checked.
    several = [("file", (f"{n}.png", picture, "image/png")) for n in range(3)]
    answer = client.post("/api/detect", files=several, headers={"X-Forwarded-For": "c"})
    assert answer.status_code == 400 and "one picture per request" in answer.json()["error"], answer.text


def test_only_its_own_names_and_nothing_kept(
    signing_keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(signing_keys, tmp_path)
    uploads = tmp_path / "temporary"  # this test's own: tests running beside it detect too
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    assert _client(service, host="attacker.example").get("/").status_code == 403  # DNS rebinding
    client = _client(service)
    assert client.get("/").status_code == 200 and client.get("/marks").status_code == 200
    cross = client.post("/report", data={"kind": "other"}, headers={"Origin": "https://attacker.example"})
    assert cross.status_code == 403
    answer = client.post("/api/detect", content=_png(unmarked_pictures(1)[0]), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and list(uploads.iterdir()) == []
    assert main(["detector", "serve", "--host", "0.0.0.0"]) == 2  # never on an open port of its own


def test_a_wrong_label_report_is_kept_and_closed_from_the_command_line(
    signing_keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(signing_keys, tmp_path)
    client = _client(service)
    form = client.get("/report?sha256=" + "ab" * 32 + "&lang=fr")
    assert 'value="' + "ab" * 32 + '"' in form.text and "Signaler une étiquette erronée" in form.text
    missing = client.post("/report", data={"kind": "not_ai", "where_seen": "", "description": "x"})
    assert missing.status_code == 400 and 'aria-invalid="true"' in missing.text
    said = {"kind": "not_ai", "where_seen": "https://example.org/article", "description": "Ma photo.", "sha256": ""}
    sent = client.post("/report", data=said)
    assert sent.status_code == 200 and "n° 1" in sent.text  # the language picked is kept (cookie)
    again = client.post("/report", data=said)  # sent twice (a double click, the page reloaded)
    assert again.status_code == 200 and "n° 1" in again.text
    database = Database(database_url(tmp_path / "record"))
    try:
        (report,) = reports(database)
    finally:
        database.close()
    assert (report["kind"], report["where_seen"], report["status"]) == ("not_ai", "https://example.org/article", "open")
    record = str(tmp_path / "record" / "visuels.sqlite")
    assert main(["detector", "reports", "--database", record]) == 1  # one open
    assert "https://example.org/article" in capsys.readouterr().out
    assert main(["detector", "reports", "--database", record, "--close", "1"]) == 2  # no answer given
    assert main(["detector", "reports", "--database", record, "--close", "1", "--answer", "label removed"]) == 0
    assert main(["detector", "reports", "--database", record]) == 0
    assert main(["detector", "reports", "--database", record, "--all"]) == 0
    listed = capsys.readouterr().out
    assert "closed  labelled as AI-made, but it is not  seen: https://example.org/article" in listed
    assert "answer: label removed" in listed
    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")  # the operator's language, as the report page speaks
    assert main(["detector", "reports", "--database", record, "--all"]) == 0
    listed = capsys.readouterr().out
    assert "clos  étiquetée comme faite par IA, mais elle ne l’est pas  vu : https://example.org/article" in listed
    assert "réponse : label removed" in listed and "0 signalement ouvert" in listed
