import errno
import json
import os
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visuels._internal.atomic import remove_leftover_temporaries, remove_leftovers_of, write_with
from visuels.engine.export import export_picture, watermark_id
from visuels.errors import ExportError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DemoModelRef
from visuels.marking.keys import signing_files
from visuels.marking.mark import MarkingContext
from visuels.marking.watermark import detect
from visuels.marking.xmp import XMP_PNG_KEY
from visuels.models.reference import DEMO_LICENCE, ModelInfo
from visuels.planning.jobs import RenderJob, expand_jobs
from visuels.planning.plan import pending_jobs
from visuels.postprocess.compliance import Compliance
from visuels.record import ledger, manifest
from visuels.record.database import Database, database_url

MODEL = ModelInfo(
    hash="a" * 64,
    family="sd15",
    steps=25,
    guidance=7.0,
    licence=DEMO_LICENCE,
    native_size=512,
    size_multiple=64,
    description="test",
    ref=DemoModelRef(),
)
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


def export(image: Image.Image, job: RenderJob, folder: Path) -> object:
    database = Database(database_url(folder))
    try:
        return export_picture(image, job, folder, CHECK, marking(), database)
    finally:
        database.close()


def marking() -> MarkingContext:
    return MarkingContext(creator="Région Test", model="test", signing=signing_files())


def picture(job: RenderJob) -> Image.Image:
    """A smooth, textured picture of the job's size (the watermark needs no more than that)."""
    rows, cols = np.indices((job.height, job.width))
    wave = 128 + 60 * np.sin(cols / 37.0) * np.cos(rows / 53.0)
    return Image.fromarray(np.repeat(wave[..., None], 3, axis=2).astype(np.uint8))


@pytest.fixture
def jobs(make_campaign: Callable[..., Path]) -> list[RenderJob]:
    return expand_jobs(load_campaign(make_campaign()), MODEL, "float32")


def test_export_writes_the_png_at_its_path_with_dpi(jobs: list[RenderJob], tmp_path: Path) -> None:
    job = jobs[0]
    exported = export(picture(job), job, tmp_path)
    written = tmp_path / job.relative_path
    with Image.open(written) as image:
        assert image.size == (job.width, job.height)
        assert round(image.info["dpi"][0]) == job.dpi
    assert exported.sha256 and not list(written.parent.glob(".*.tmp"))
    with Image.open(tmp_path / exported.thumbnail) as thumbnail:
        assert max(thumbnail.size) == 320


def test_exported_file_is_marked(jobs: list[RenderJob], tmp_path: Path) -> None:
    job = jobs[0]
    exported = export(picture(job), job, tmp_path)
    with Image.open(tmp_path / job.relative_path) as image:
        pixels = np.asarray(image.convert("RGB"))
        xmp = image.info[XMP_PNG_KEY]
    assert detect(pixels, signing_files().watermark.value).payload == watermark_id(job) == int(exported.watermark, 16)
    assert exported.watermark == job.key[:16]
    description = ElementTree.fromstring(xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0]).find(".//{*}Description")
    attributes = {name.split("}")[1]: value for name, value in description.attrib.items() if "}" in name}
    made = "/compositeWithTrainedAlgorithmicMedia" if job.photo else "/trainedAlgorithmicMedia"
    assert attributes["DigitalSourceType"].endswith(made)
    credit = "Région Test" + (f"; photo: {job.photo.credit}" if job.photo else "")
    assert attributes["Credit"] == credit
    assert description.find(".//{*}creator//{*}li").text == "Région Test"


def test_wrong_size_is_refused_and_nothing_written(jobs: list[RenderJob], tmp_path: Path) -> None:
    out_dir = tmp_path / "outputs"
    with pytest.raises(ExportError, match="expected 1080x1080"):
        export(Image.new("RGB", (10, 10)), jobs[0], out_dir)
    assert not (out_dir / jobs[0].campaign).exists()


def test_a_full_disk_names_the_file_and_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "picture.png"

    def fail_halfway(temporary: Path) -> None:
        temporary.write_bytes(b"half a picture")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(ExportError) as caught:
        write_with(target, fail_halfway)
    assert str(caught.value) == f"{target}: cannot write it: No space left on device"
    assert list(target.parent.iterdir()) == []
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        write_with(tmp_path / "file" / "picture.png", fail_halfway)


def test_a_file_and_its_record_are_committed_together(jobs: list[RenderJob], tmp_path: Path) -> None:
    first, second = jobs[0], jobs[1]
    exported = [export(picture(j), j, tmp_path) for j in (first, second)]
    database = Database(database_url(tmp_path))
    recorded = manifest.recorded_files(database, first.campaign)
    assert manifest.is_done(tmp_path, first.relative_path, recorded[first.key])
    entry = manifest.entries(database, first.campaign)[first.key]
    assert entry["file"] == first.relative_path and entry["inputs"]["seed"] == first.seed
    assert entry["compliance"]["passed"] is True and entry["ledger_id"] == exported[0].ledger_id
    rows = ledger.latest_for_jobs(database, [first.key, second.key])
    assert rows[first.key]["sha256"] == exported[0].sha256 == entry["sha256"]
    path = manifest.write_manifest_json(database, tmp_path, first.campaign, "Test", {first.key})
    files = json.loads(path.read_text(encoding="utf-8"))["files"]
    assert {key: entry["current"] for key, entry in files.items()} == {first.key: True, second.key: False}
    (tmp_path / first.relative_path).unlink()
    assert not manifest.is_done(tmp_path, first.relative_path, recorded[first.key])
    assert not manifest.is_done(tmp_path, jobs[2].relative_path, recorded.get(jobs[2].key))
    database.close()


def test_a_file_changed_in_place_at_its_size_is_not_done_and_one_copied_is_hashed_once(
    jobs: list[RenderJob], tmp_path: Path
) -> None:
    """A byte changed in an output (a disk, a hex editor, an edit saved at the same size) is seen as
    a truncated file is: made again. The same bytes written again later (a folder copied without
    its times, a touch) are hashed once, and given their export's time back."""
    job = jobs[0]
    export(picture(job), job, tmp_path)
    database = Database(database_url(tmp_path))
    recorded = manifest.recorded_files(database, job.campaign)[job.key]
    database.close()
    path = tmp_path / job.relative_path
    own = path.read_bytes()
    later = time.time() + 3600
    os.utime(path, (later, later))  # copied an hour on: the same bytes
    assert manifest.is_done(tmp_path, job.relative_path, recorded)
    assert path.stat().st_mtime <= datetime.fromisoformat(recorded.created).timestamp() + 1
    middle = len(own) // 2
    path.write_bytes(own[:middle] + bytes([own[middle] ^ 0xFF]) + own[middle + 1 :])  # one byte, in place
    assert path.stat().st_size == recorded.size
    assert not manifest.is_done(tmp_path, job.relative_path, recorded)
    assert pending_jobs([job], tmp_path, job.campaign) == [job]
    path.write_bytes(own)
    assert pending_jobs([job], tmp_path, job.campaign) == []


def test_outputs_are_readable_by_all_and_keys_by_their_owner(jobs: list[RenderJob], tmp_path: Path) -> None:
    job = jobs[0]
    umask = os.umask(0o077)  # a worker started with a strict umask: the outputs are shared all the same
    try:
        exported = export(picture(job), job, tmp_path)
    finally:
        os.umask(umask)
    assert (tmp_path / job.relative_path).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / exported.thumbnail).stat().st_mode & 0o777 == 0o644
    record = sorted(tmp_path.glob("visuels.sqlite*"))  # the database and its -wal and -shm files
    assert record and all(path.stat().st_mode & 0o777 == 0o644 for path in record), record
    for folder in (tmp_path / job.relative_path).parents:
        if folder == tmp_path:
            break
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    assert signing_files().private_key.stat().st_mode & 0o777 == 0o600


def test_only_temporaries_of_dead_writers_are_removed_from_a_folder_or_of_one_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    from visuels._internal.liveness import host_name, machine_id

    here = machine_id()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "campaign" / "sete"
    folder.mkdir(parents=True)
    leftover = folder / f".a.png.{here}.{dead.stdout.strip()}.0123abcd.tmp"
    live = folder / f".b.png.{here}.{os.getpid()}.0123abcd.tmp"
    # A container with this host's name: its pid means nothing here, so its file is left alone.
    twin = folder / f".c.png.{host_name()}-0123456789.{dead.stdout.strip()}.0123abcd.tmp"
    unrelated = folder / "notes.tmp"
    for path in (leftover, live, twin, unrelated):
        path.write_bytes(b"x")
    assert remove_leftover_temporaries(tmp_path / "campaign") == 1
    assert not leftover.exists() and live.exists() and twin.exists() and unrelated.exists()

    # One file's alone, for writes into folders no render sweeps (a designer's edits), where a
    # write killed and tried again left one more copy each try.
    stale = folder / f".a.png.{here}.{dead.stdout.strip()}.89abcdef.tmp"
    alive = folder / f".a.png.{here}.{os.getpid()}.fedcba98.tmp"
    of_another = folder / f".a.png.x.{here}.{dead.stdout.strip()}.01234567.tmp"
    for path in (stale, alive, of_another):
        path.write_bytes(b"x")
    remove_leftovers_of(folder / "a.png")
    assert not stale.exists() and alive.exists() and of_another.exists() and twin.exists()


def test_a_run_whose_claim_was_taken_records_nothing_and_leaves_the_file_to_the_taker(
    jobs: list[RenderJob], tmp_path: Path
) -> None:
    """The fence: export moves a file into place and records it only while its job's claim is its own."""
    from sqlalchemy import select, update
    from visuels.engine.claims import JobClaims
    from visuels.errors import WorkerLostError
    from visuels.record.database import claim_owners_table, outputs_table

    job, url = jobs[0], database_url(tmp_path)
    database = Database(url)
    with JobClaims(url, tmp_path) as late, JobClaims(url, tmp_path) as taker:
        late.take([job])
        with database.transaction() as connection:  # late paused past its lease, and another run took the job
            connection.execute(
                update(claim_owners_table).where(claim_owners_table.c.owner == late.owner).values(expires=0.0)
            )
        assert [taken.key for taken in taker.take([job])] == [job.key]
        with pytest.raises(WorkerLostError, match="another run is rendering it"):
            export_picture(picture(job), job, tmp_path, CHECK, marking(), database, claim_owner=late.owner)
        assert not (tmp_path / job.relative_path).exists()  # not moved into place, temporary gone
        assert not list((tmp_path / job.relative_path).parent.glob(".*.tmp"))
        with database.reading() as connection:
            assert connection.execute(select(outputs_table)).first() is None
        assert ledger.verify_chain(database) == (0, None)
        exported = export_picture(picture(job), job, tmp_path, CHECK, marking(), database, claim_owner=taker.owner)
        assert (tmp_path / job.relative_path).is_file() and exported.ledger_id == 1
    database.close()


def test_an_output_saved_over_is_kept_beside_it_when_it_is_made_again(jobs: list[RenderJob], tmp_path: Path) -> None:
    """A designer edits an output in place (Photoshop's Save) and the nightly render makes it again
    (its recorded size, or its hash, no longer matches): the edit was overwritten without a word. It is kept
    beside the output, once however often the render is cut short; the job's own file, written
    but not recorded (a run killed in between), is replaced, never kept as an edit."""
    job = jobs[0]
    export(picture(job), job, tmp_path)
    written = tmp_path / job.relative_path
    own = written.read_bytes()
    edited = picture(job).convert("L").convert("RGB")  # pixels changed, marks gone, as an editor saves
    edited.save(written, format="PNG")
    edit = written.read_bytes()
    kept = written.with_name(f"{written.stem}-edited{written.suffix}")
    assert export(picture(job), job, tmp_path).edit_kept_as == kept.name  # the run says it (its log)
    assert kept.read_bytes() == edit and written.read_bytes() != edit
    # Killed after the edit was kept, before the output replaced it: kept once, not twice.
    written.write_bytes(edit)
    export(picture(job), job, tmp_path)
    assert sorted(path.name for path in written.parent.glob(f"{written.stem}*")) == sorted([written.name, kept.name])
    # A second edit saved over the output made again: kept as the next one.
    Image.new("RGB", (job.width, job.height), (200, 30, 30)).save(written, format="PNG")
    second = written.read_bytes()
    export(picture(job), job, tmp_path)
    assert written.with_name(f"{written.stem}-edited-2{written.suffix}").read_bytes() == second
    # The job's own marked file, unrecorded: replaced, nothing kept.
    written.write_bytes(own)
    export(picture(job), job, tmp_path)
    assert len(list(written.parent.glob(f"{written.stem}-edited*"))) == 2


def test_an_output_saved_over_in_place_is_explained_when_finalized(jobs: list[RenderJob], tmp_path: Path) -> None:
    """`visuels finalize` of the output itself, edited in place: its original is gone. It said
    "comes from <the same file>, which is not here: give it with --from"."""
    from visuels.errors import VisuelsError
    from visuels.review.derivatives import find_original

    job = jobs[0]
    export(picture(job), job, tmp_path)
    written = tmp_path / job.relative_path
    edited = np.asarray(Image.open(written).convert("RGB")).copy()
    edited[:40, :40] = (20, 60, 120)
    Image.fromarray(edited).save(written, format="PNG")
    database = Database(database_url(tmp_path))
    try:
        with pytest.raises(VisuelsError, match="the output itself, saved over since it was exported") as refused:
            find_original(database, written, tmp_path)
    finally:
        database.close()
    assert f"{written.stem}-edited{written.suffix}" in str(refused.value)


def test_an_edit_is_kept_on_a_file_system_without_hard_links(
    jobs: list[RenderJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visuels._internal import atomic

    def no_links(source: Path, target: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # as exFAT or some network shares answer

    job = jobs[0]
    export(picture(job), job, tmp_path)
    written = tmp_path / job.relative_path
    Image.new("RGB", (job.width, job.height), (10, 90, 40)).save(written, format="PNG")
    edit = written.read_bytes()
    monkeypatch.setattr(atomic.os, "link", no_links)
    export(picture(job), job, tmp_path)
    kept = written.with_name(f"{written.stem}-edited{written.suffix}")
    assert kept.read_bytes() == edit and kept.stat().st_mode & 0o777 == 0o644
