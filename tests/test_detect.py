"""`visuels detect`: from the files alone, our outputs are marked, an edited copy still is (by its
watermark), pictures from elsewhere are not; a signed result is checked and a changed one refused;
it never imports torch."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels._internal.i18n import words
from visuels.cli import main
from visuels.inputs.charter import load_charter
from visuels.marking.c2pa_manifest import read_manifest_state
from visuels.marking.keys import DETECTOR_KEY, TRUST_ANCHORS, signing_files
from visuels.review.detect import detect_file

from tests.helpers import SAMPLE_CHARTER_DIR
from tests.watermark_attacks import page_screenshot, street_photograph, unmarked_pictures


@pytest.fixture(scope="module")
def charter():  # type: ignore[no-untyped-def]
    return load_charter(SAMPLE_CHARTER_DIR)


def _outputs(rendered_sample: tuple[Path, str, list[str], list[str]]) -> list[Path]:
    out, _, files, _ = rendered_sample
    return [out / file for file in files]


def test_our_outputs_are_marked_and_the_verdict_says_on_what(
    rendered_sample: tuple[Path, str, list[str], list[str]], charter, signing_keys: Path
) -> None:  # type: ignore[no-untyped-def]
    for path in _outputs(rendered_sample):
        detection = detect_file(path, charter, signing_keys / TRUST_ANCHORS)
        assert detection.verdict == "marked" and detection.relied_on == ["c2pa", "watermark"], detection
        assert all(mark.found for mark in detection.marks.values()), detection.marks
        assert "trusted by this deployment's anchors" in detection.marks["c2pa"].basis
        assert detection.marks["iscc"].found, detection.marks["iscc"]
        key = signing_files().watermark  # the session's secret key: its id is said, never the key
        assert f"read with this deployment's key {key.id}" in detection.marks["watermark"].basis
        assert read_manifest_state(path, None).watermark_key_id == key.id


def test_a_picture_marked_with_the_public_demo_key_says_so_and_proves_nothing(
    charter, signing_keys: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Anyone can write the demo key's mark: detect names it and does not rest a verdict on it."""
    from visuels.marking.watermark import embed
    from visuels.marking.watermark_keys import DEMO_KEY

    forged = tmp_path / "forged.png"
    Image.fromarray(embed(unmarked_pictures(1)[0], 0x1234, DEMO_KEY)).save(forged)
    detection = detect_file(forged, charter, signing_keys / TRUST_ANCHORS)
    assert detection.marks["watermark"].found and "public demo key" in detection.marks["watermark"].basis
    assert detection.verdict == "unmarked" and detection.relied_on == []


def test_the_manifest_carries_a_registered_iscc_soft_binding(
    rendered_sample: tuple[Path, str, list[str], list[str]],
) -> None:
    """Read by c2pa's own reader, checked by iscc-core: ``io.iscc.v0`` beside the watermark's."""
    import c2pa
    import iscc_core
    from visuels.marking.iscc import image_code

    path = _outputs(rendered_sample)[0]
    with c2pa.Reader(str(path)) as reader:
        store = json.loads(reader.json())
    assertions = store["manifests"][store["active_manifest"]]["assertions"]
    bindings = {a["data"]["alg"]: a["data"]["blocks"][0]["value"] for a in assertions if "soft-binding" in a["label"]}
    assert set(bindings) == {"org.visuels.tiled-spread-spectrum.1", "io.iscc.v0"}, bindings
    assert iscc_core.iscc_validate(bindings["io.iscc.v0"], strict=True)
    with Image.open(path) as picture:
        assert image_code(picture) == bindings["io.iscc.v0"]


def test_an_edited_copy_is_still_found_by_its_watermark(
    rendered_sample: tuple[Path, str, list[str], list[str]], charter, signing_keys: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Cropped and saved again as a JPEG elsewhere: the manifest and XMP are gone, the mark stays."""
    with Image.open(_outputs(rendered_sample)[0]) as image:
        width, height = image.size
        copy = image.convert("RGB").crop((width // 10, height // 10, width, height))
    edited = tmp_path / "copy.jpg"
    copy.save(edited, quality=85)
    detection = detect_file(edited, charter, signing_keys / TRUST_ANCHORS)
    assert detection.verdict == "marked" and detection.relied_on == ["watermark"], detection
    assert detection.marks["c2pa"].basis == "no C2PA manifest" and not detection.marks["xmp"].found
    payload = detection.marks["watermark"].basis.split()[1].rstrip(",")  # "payload 8de887f908059b50, read with …"
    said = detection.marks["soft_binding"].basis  # not "the manifest's soft binding (none)": there is none
    assert said == f"no manifest names a watermark; the one read is {payload}", said


@pytest.mark.parametrize(("shown_share", "phone"), [(0.3, False), (1.0, True)])
def test_a_screenshot_of_a_post_says_whether_the_label_shows_on_the_picture(
    rendered_sample: tuple[Path, str, list[str], list[str]],
    charter,  # type: ignore[no-untyped-def]
    signing_keys: Path,
    tmp_path: Path,
    shown_share: float,
    phone: bool,
) -> None:
    """The label was looked for in the corners of the whole screenshot, where the page's bar is:
    "no AI label" though it showed on the picture. A picture marked without the label says so."""
    from visuels.marking.watermark import embed

    with Image.open(_outputs(rendered_sample)[0]) as image:
        labelled = np.asarray(image.convert("RGB"))
    unlabelled = embed(unmarked_pictures(1)[0], 0x1234, signing_files().watermark.value)
    for name, pixels, seen in (("labelled", labelled, True), ("unlabelled", unlabelled, False)):
        path = tmp_path / f"{name}.png"
        Image.fromarray(page_screenshot(pixels, shown_share, phone)).save(path)
        detection = detect_file(path, charter, signing_keys / TRUST_ANCHORS)
        assert detection.verdict == "marked" and "inside the upload" in detection.marks["watermark"].basis, name
        label = detection.marks["label"]
        assert label.found == seen and "on the picture shown" in label.basis, (name, label)
        # Said in French on the public's page: where it was found too (it stayed in English).
        said = detection.marks["watermark"].said(words("fr"))
        assert "dans l’envoi, en (" in said and "inside" not in said, said


def test_a_poster_photographed_at_an_angle_is_found_with_its_label(
    charter,  # type: ignore[no-untyped-def]
    signing_keys: Path,
    tmp_path: Path,
) -> None:
    """A poster photographed from one side, its far side a fifth shorter, cropped on the phone: the
    watermark is found straightened, and the label looked for in the straightened picture's
    corners (it was "no AI label in a corner", the corners being skewed)."""
    from tests.helpers import marked_picture

    with Image.open(marked_picture(tmp_path)) as image:
        poster = np.asarray(image.convert("RGB"))
    photo, (left, top, right, bottom) = street_photograph(poster, 0.45, keystone=0.1)
    path = tmp_path / "cropped.png"
    Image.fromarray(photo[top:bottom, left:right]).save(path)
    detection = detect_file(path, charter, signing_keys / TRUST_ANCHORS)
    assert detection.verdict == "marked" and "at an angle" in detection.marks["watermark"].basis, detection
    assert detection.marks["label"].found, detection.marks["label"]
    assert "de biais" in detection.marks["watermark"].said(words("fr"))


def test_pictures_from_elsewhere_are_not_claimed(charter, signing_keys: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Photographs, drawings, flat colours and noise, one of each kind of the watermark's guard
    (tests/test_watermark.py reads 48 for a kind that would read as a mark): none is ours."""
    for index, pixels in enumerate(unmarked_pictures(8)):
        path = tmp_path / f"elsewhere-{index}.png"
        Image.fromarray(pixels).save(path)
        detection = detect_file(path, charter, signing_keys / TRUST_ANCHORS)
        assert detection.verdict == "unmarked" and not detection.relied_on, (index, detection)


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000), (5000, 3), (2, 2)])
def test_a_strip_or_a_speck_is_read_like_any_picture(charter, signing_keys: Path, tmp_path: Path, size) -> None:  # type: ignore[no-untyped-def]
    """A banner 20,000 pixels long and one high, scaled for the search, was 0 pixels high: OpenCV's
    traceback instead of a verdict."""
    path = tmp_path / "strip.png"
    Image.new("RGB", size, (200, 30, 40)).save(path)
    assert detect_file(path, charter, signing_keys / TRUST_ANCHORS).verdict == "unmarked"


def test_exit_codes_a_signed_result_and_a_changed_one(
    rendered_sample: tuple[Path, str, list[str], list[str]],
    tmp_path: Path,
    signing_keys: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = _outputs(rendered_sample)[0]
    elsewhere = tmp_path / "photo.png"
    Image.fromarray(unmarked_pictures(1)[0]).save(elsewhere)
    result = tmp_path / "result.json"
    assert main(["detect", str(ours)]) == 0
    assert main(["detect", str(ours), str(elsewhere), "--json", str(result)]) == 1  # one carries none
    assert main(["detect", str(tmp_path / "nowhere.png")]) == 2
    folder = tmp_path / "downloads"  # a folder stands for the pictures in it
    folder.mkdir()
    shutil.copy(ours, folder / "poster.png")
    assert main(["detect", str(folder)]) == 0
    printed = capsys.readouterr()
    assert f"{folder / 'poster.png'}:" in printed.out
    assert "of this deployment (relied on: content credential (C2PA) and invisible watermark)" in printed.out
    assert f"{elsewhere}: no mark of this deployment" in printed.out
    assert "nowhere.png" in printed.err and "Traceback" not in printed.err

    document = json.loads(result.read_text(encoding="utf-8"))
    assert (signing_keys / DETECTOR_KEY).stat().st_mode & 0o777 == 0o600
    first = document["detections"][0]
    assert first["sha256"] == hashlib.sha256(ours.read_bytes()).hexdigest()
    assert {"detector", "detector_version", "checked_at", "marks", "relied_on"} <= set(first)
    assert main(["detect", "--check", str(result)]) == 0
    assert "signature valid, by this deployment's detector" in capsys.readouterr().out

    document["detections"][1]["verdict"] = "marked"  # a forged claim
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document), encoding="utf-8")
    monkeypatch.setenv("VISUELS_LANGUAGE", "fr")
    assert main(["detect", "--check", str(changed)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"erreur : {changed}: signature: la signature ne correspond pas : le résultat a été modifié"
    nested = tmp_path / "nested.json"  # deeper than Python's parser recurses: was a RecursionError
    nested.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert main(["detect", "--check", str(nested)]) == 2
    assert capsys.readouterr().err.strip() == f"erreur : {nested}: pas un résultat de détection signé"


def test_detect_reads_a_picture_without_torch(
    rendered_sample: tuple[Path, str, list[str], list[str]], tmp_path: Path
) -> None:
    """The public's detector: no model, no GPU stack, only the marks' readers."""
    script = (
        "import sys; from visuels.cli import main; "
        f"code = main(['detect', {str(_outputs(rendered_sample)[0])!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_iptc_ai_fields_are_written_before_signing_and_read_by_exiftool(
    rendered_sample: tuple[Path, str, list[str], list[str]], charter, signing_keys: Path
) -> None:  # type: ignore[no-untyped-def]
    """IPTC 2025.1: the AI system and its version; the prompt only where the charter publishes it."""
    from visuels.marking.xmp import DigitalSourceType, xmp_packet

    path = _outputs(rendered_sample)[0]
    assert detect_file(path, charter, signing_keys / TRUST_ANCHORS).marks["c2pa"].found  # still signed
    packet = xmp_packet(DigitalSourceType.generated, "Région", "visuels", ai_system=("m", "h"), prompt="a <sea>")
    assert 'Iptc4xmpExt:AIPromptInformation="a &lt;sea&gt;"' in packet
    if not shutil.which("exiftool"):
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    read = subprocess.run(["exiftool", "-json", "-XMP-iptcExt:all", str(path)], capture_output=True, text=True)
    fields = json.loads(read.stdout)[0]
    assert fields["AISystemUsed"] == "demo model (random weights)"
    assert len(fields["AISystemVersionUsed"]) == 12  # the model's hash
    assert "AIPromptInformation" not in fields  # the sample charter does not publish prompts
