import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.atomic import write_with
from pipelines.campaign import load_campaign
from pipelines.compliance import Compliance
from pipelines.errors import ExportError
from pipelines.export import export_png, is_done, read_manifest, watermark_id, write_manifest
from pipelines.jobs import RenderJob, expand_jobs
from pipelines.marking.keys import signing_files
from pipelines.marking.mark import MarkingContext
from pipelines.marking.watermark import detect
from pipelines.marking.xmp import XMP_PNG_KEY
from pipelines.model_reference import ModelInfo

MODEL = ModelInfo(hash="a" * 64, native_size=512, size_multiple=64, description="test")
CHECK = Compliance(
    palette_before=0.4,
    palette_after=0.8,
    logo_corner="top_right",
    logo_variant="light",
    logo_contrast=5.0,
    logo_clear_zone=True,
    label_text_px=24,
    label_contrast=12.0,
    text_px=97,
    text_lines=1,
    text_contrast=6.0,
    text_plate=False,
    text_overflow=False,
    collisions=[],
    passed=True,
    reasons=[],
)


def marking(folder: Path) -> MarkingContext:
    return MarkingContext(creator="Région Test", model="test", signing=signing_files(), ledger=folder / "ledger.sqlite")


def picture(job: RenderJob) -> Image.Image:
    """A smooth, textured picture of the job's size (the watermark needs no more than that)."""
    rows, cols = np.indices((job.height, job.width))
    wave = 128 + 60 * np.sin(cols / 37.0) * np.cos(rows / 53.0)
    return Image.fromarray(np.repeat(wave[..., None], 3, axis=2).astype(np.uint8))


@pytest.fixture
def jobs(make_campaign: Callable[..., Path]) -> list[RenderJob]:
    return expand_jobs(load_campaign(make_campaign()), MODEL)


def test_export_writes_the_png_at_its_path_with_dpi(jobs: list[RenderJob], tmp_path: Path) -> None:
    job = jobs[0]
    exported = export_png(picture(job), job, tmp_path, CHECK, marking(tmp_path))
    written = tmp_path / job.relative_path
    with Image.open(written) as image:
        assert image.size == (job.width, job.height)
        assert round(image.info["dpi"][0]) == job.dpi
    assert exported.sha256 and not list(written.parent.glob(".*.tmp"))
    with Image.open(tmp_path / exported.thumbnail) as thumbnail:
        assert max(thumbnail.size) == 320


def test_exported_file_is_marked(jobs: list[RenderJob], tmp_path: Path) -> None:
    job = jobs[0]
    exported = export_png(picture(job), job, tmp_path, CHECK, marking(tmp_path))
    with Image.open(tmp_path / job.relative_path) as image:
        pixels = np.asarray(image.convert("RGB"))
        xmp = image.info[XMP_PNG_KEY]
    assert detect(pixels).payload == watermark_id(job) == int(exported.watermark, 16)
    assert exported.watermark == job.key[:16]
    description = ElementTree.fromstring(xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0]).find(".//{*}Description")
    attributes = {name.split("}")[1]: value for name, value in description.attrib.items() if "}" in name}
    assert attributes["DigitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert attributes["Credit"] == "Région Test"
    assert description.find(".//{*}creator//{*}li").text == "Région Test"


def test_wrong_size_is_refused_and_nothing_written(jobs: list[RenderJob], tmp_path: Path) -> None:
    out_dir = tmp_path / "outputs"
    with pytest.raises(ExportError, match="expected 1080x1080"):
        export_png(Image.new("RGB", (10, 10)), jobs[0], out_dir, CHECK, marking(tmp_path))
    assert not out_dir.exists()


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "picture.png"

    def fail_halfway(temporary: Path) -> None:
        temporary.write_bytes(b"half a picture")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with(target, fail_halfway)
    assert list(target.parent.iterdir()) == []


def test_manifest_merges_runs_and_marks_jobs_done(jobs: list[RenderJob], tmp_path: Path) -> None:
    first, second = jobs[0], jobs[1]
    exported = [export_png(picture(j), j, tmp_path, CHECK, marking(tmp_path)) for j in (first, second)]
    write_manifest(tmp_path, first.campaign, "Test", exported[:1])
    path = write_manifest(tmp_path, first.campaign, "Test", exported[1:])
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document["files"]) == {first.key, second.key}
    entry = document["files"][first.key]
    assert entry["file"] == first.relative_path and entry["inputs"]["seed"] == first.seed
    assert entry["compliance"]["passed"] is True
    manifest = read_manifest(tmp_path, first.campaign)
    assert is_done(first, tmp_path, manifest)
    (tmp_path / first.relative_path).unlink()
    assert not is_done(first, tmp_path, manifest)
    assert not is_done(jobs[2], tmp_path, manifest)
