"""Commune photos as ground truth: credits, edge maps, img2img and ControlNet, marking."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import ExifTags, Image
from visuels.engine.export import edges_path
from visuels.engine.renderer import Renderer
from visuels.errors import CommunesError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.communes import load_communes
from visuels.inputs.images import PICTURE_MEDIA_TYPES, PICTURE_SUFFIXES
from visuels.inputs.model_refs import DemoModelRef
from visuels.inputs.photos import check_decodes, edge_map, enlargement, fit_photo, upright_size
from visuels.marking.c2pa_manifest import Ingredient, read_manifest_state, sign_asset
from visuels.marking.keys import signing_files
from visuels.marking.png import encode_png
from visuels.marking.xmp import DigitalSourceType
from visuels.models.demo import ensure_demo_model
from visuels.models.generation import generate
from visuels.models.host import ModelHost, load_from_files
from visuels.models.reference import describe_model
from visuels.planning.jobs import RenderJob, expand_jobs
from visuels.planning.photo_sizes import soft_photos
from visuels.planning.plan import plan_render
from visuels.review.publish import finish_render

from tests.helpers import provenance_of, render_now

SETE_PHOTOS = "photos/34301-sete"


def _two_squares(flipped: bool = False) -> Image.Image:
    pixels = np.zeros((192, 256, 3), np.uint8)
    pixels[:, :128] = (200, 60, 40)
    pixels[60:130, 150:220] = (30, 90, 200)
    return Image.fromarray(pixels[:, ::-1] if flipped else pixels)


def test_the_edge_map_outlines_a_synthetic_shape() -> None:
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[16:48, 20:44] = 255  # a white rectangle on black
    edges = edge_map(pixels, 100, 200)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}
    rows, columns = np.nonzero(edges)
    # Every edge pixel lies on the rectangle's border (within a pixel), and each side is found.
    on_border = (np.abs(rows - 15.5) <= 1) | (np.abs(rows - 47.5) <= 1) | (np.abs(columns - 19.5) <= 1)
    on_border |= np.abs(columns - 43.5) <= 1
    assert on_border.all()
    for band in (edges[14:18, 22:42], edges[46:50, 22:42]):  # top and bottom sides: found along their length
        assert band.any(axis=0).all()
    for band in (edges[18:46, 18:22], edges[18:46, 42:46]):  # left and right sides
        assert band.any(axis=1).all()
    assert not edges[20:44, 24:40].any()  # nothing inside, nothing far outside
    assert not edges[:10].any() and not edges[:, :12].any()


def test_fit_photo_crops_to_the_aspect_around_the_centre(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    _two_squares().save(path)
    fitted = fit_photo(path, 96, 96)
    assert fitted.shape == (96, 96, 3)
    assert tuple(fitted[48, 2]) != tuple(fitted[48, 93])  # both halves kept: cropped round the centre


@pytest.mark.parametrize(
    ("credits", "files", "field", "message"),
    [
        (None, {"a.png"}, "line 2, photos", "no photos.yaml"),
        ("photos: []\n", {"a.png"}, "photos", "at least 1"),
        ("photos:\n  - {file: a.png, licence: CC0-1.0, date: 2025-01-01}\n", {"a.png"}, "photos[0].author", ""),
        ("photos:\n  - {file: a.png, author: X, licence: CC0, date: soon}\n", {"a.png"}, "photos[0].date", ""),
        ("photos:\n  - {file: a.png, author: X, licence: CC0, date: 2025-01-01}\n", {"a.png", "b.png"}, "", "b.png is"),
        (
            "photos:\n  - {file: c.png, author: X, licence: CC0, date: 2025-01-01}\n",
            set(),
            "photos[0].file",
            "not found",
        ),
    ],
)
def test_bad_photo_folders_name_file_and_field(
    tmp_path: Path, credits: str | None, files: set[str], field: str, message: str
) -> None:
    folder = tmp_path / "photos" / "sete"
    folder.mkdir(parents=True)
    for name in files:
        _two_squares().save(folder / name)
    if credits is not None:
        (folder / "photos.yaml").write_text(credits, encoding="utf-8")
    csv_path = tmp_path / "communes.csv"
    csv_path.write_text(
        "insee,name,department,landscapes,landmarks,photos\n34301,Sète,34,sea,canaux,photos/sete\n", encoding="utf-8"
    )
    with pytest.raises(CommunesError) as caught:
        load_communes(csv_path)
    assert (caught.value.field or "").endswith(field)
    assert message in caught.value.message
    assert caught.value.file in (str(csv_path), str(folder / "photos.yaml"))


def test_an_unreadable_photo_is_refused_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a picture")
    (folder / "photos.yaml").write_text(
        "photos:\n  - {file: a.jpg, author: X, licence: CC0, date: 2025-01-01}\n", encoding="utf-8"
    )
    csv_path = tmp_path / "communes.csv"
    csv_path.write_text("insee,name,department,landscapes,landmarks,photos\n34301,Sète,34,sea,canaux,p\n", "utf-8")
    with pytest.raises(CommunesError) as caught:
        load_communes(csv_path)
    assert caught.value.field == "photos[0].file" and caught.value.message.endswith(
        "a.jpg: not a picture that can be read (PNG, JPEG, WebP, TIFF, AVIF)"
    )


def _credited_folder(tmp_path: Path, name: str) -> Path:
    """A communes file whose one commune has a folder holding the photo ``name``, credited."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "photos.yaml").write_text(
        f"photos:\n  - {{file: {name}, author: X, licence: CC0, date: 2025-01-01}}\n", encoding="utf-8"
    )
    csv_path = tmp_path / "communes.csv"
    csv_path.write_text("insee,name,department,landscapes,landmarks,photos\n34301,Sète,34,sea,canaux,p\n", "utf-8")
    return csv_path


def test_a_truncated_photo_is_refused_before_anything_renders_not_mid_render(tmp_path: Path) -> None:
    """Only its header was read: a half-copied JPEG passed `visuels check`, then the render stopped on
    a traceback after other communes were made. The photos a campaign uses are decoded when it is
    loaded (a communes file's own check decodes all of them); a library's others are not."""
    csv_path = _credited_folder(tmp_path, "a.jpg")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "p" / "a.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (commune,) = load_communes(csv_path)  # the header is whole
    with pytest.raises(CommunesError) as caught:
        check_decodes(commune.photos)
    assert caught.value.file == str(tmp_path / "p" / "photos.yaml")
    assert caught.value.field == "photos[0].file" and "truncated" in caught.value.message


@pytest.mark.parametrize("size", [(1, 4000), (6000, 2)])
def test_a_strip_of_a_photo_decodes_like_any_photo(tmp_path: Path, size: tuple[int, int]) -> None:
    """Read at a quarter of its size to check it decodes, a JPEG 2 pixels high asked Pillow for a
    draft 0 pixels high: a ZeroDivisionError's traceback from `visuels check` and `render`."""
    csv_path = _credited_folder(tmp_path, "a.jpg")
    Image.new("RGB", size, (20, 90, 160)).save(tmp_path / "p" / "a.jpg")
    (commune,) = load_communes(csv_path)
    check_decodes(commune.photos)
    assert fit_photo(tmp_path / "p" / "a.jpg", 64, 96).shape == (96, 64, 3)


def test_a_photo_past_pillows_own_bomb_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    csv_path = _credited_folder(tmp_path, "a.png")
    header = struct.pack(">IIBBBBB", 20000, 12000, 8, 0, 0, 0, 0)  # 240 megapixels, no pixel data

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (tmp_path / "p" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b""))
    with pytest.raises(CommunesError) as caught:
        load_communes(csv_path)
    assert caught.value.field == "photos[0].file" and "too large" in caught.value.message


def test_photos_as_photographers_deliver_them_are_read_and_transparency_is_paper_white(tmp_path: Path) -> None:
    """TIFF was refused; a transparent area came out as the hidden pixels under it (black here)."""
    csv_path = _credited_folder(tmp_path, "port.tiff")
    _two_squares().save(tmp_path / "p" / "port.tiff", compression="tiff_lzw")
    (photo,) = load_communes(csv_path)[0].photos
    assert np.array_equal(fit_photo(photo.path, 256, 192), np.asarray(_two_squares()))
    Image.new("RGBA", (64, 48), (0, 0, 0, 0)).save(tmp_path / "cut-out.png")
    assert (fit_photo(tmp_path / "cut-out.png", 64, 48) == 255).all()  # as the retouch and the studio read it


@pytest.mark.parametrize("suffix", PICTURE_SUFFIXES)
def test_every_photo_format_signs_as_the_pictures_ingredient(tmp_path: Path, suffix: str) -> None:
    """A TIFF photo rendered, then stopped the export: its C2PA ingredient had no media type."""
    path = tmp_path / f"port{suffix}"
    _two_squares().save(path)
    photo = Ingredient(title=path.name, data=path.read_bytes(), mime_type=PICTURE_MEDIA_TYPES[suffix], credit="X")
    provenance = provenance_of(_two_squares(), source_type=DigitalSourceType.composite, photo=photo)
    signed = tmp_path / "out.png"
    signed.write_bytes(sign_asset(encode_png(np.asarray(_two_squares())), "image/png", provenance, signing_files()))
    assert read_manifest_state(signed, None).photos == ("Photo: X",)


@pytest.fixture(scope="module")
def demo_pipeline() -> DiffusionPipeline:
    pipeline = load_from_files(DemoModelRef(), torch.float32)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _photo_job(make_campaign: Callable[..., Path], charter_dir: Path, **photos: object) -> RenderJob:
    campaign = load_campaign(make_campaign(communes=_sete(), formats=["web_banner"], photos=photos))
    info = describe_model(campaign.model)
    return expand_jobs(campaign, info, "float32")[0].model_copy(update={"steps": 20})


def _sete() -> dict:
    return {"file": "charter/communes.csv", "names": ["Sète"]}


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_a_render_from_a_photo_follows_it(
    make_campaign: Callable[..., Path], charter_dir: Path, demo_pipeline: DiffusionPipeline
) -> None:
    job = _photo_job(make_campaign, charter_dir, strength=0.2)
    assert job.photo is not None and job.photo.strength == 0.2
    photo = fit_photo(Path(job.photo.path), job.generation_width, job.generation_height)
    close = generate(demo_pipeline, [job])[0]
    far = generate(demo_pipeline, [job.model_copy(update={"photo": job.photo.model_copy(update={"strength": 0.8})})])[0]
    from_text = generate(demo_pipeline, [job.model_copy(update={"photo": None})])[0]
    distances = {
        name: _mean_distance(picture, photo) for name, picture in (("0.2", close), ("0.8", far), ("text", from_text))
    }
    print("mean |picture - photo| per channel:", distances)
    # Measured on the demo model: 0.2 stays within ~20 levels of the photo, text-to-image ~90.
    assert distances["0.2"] < 35
    assert distances["0.2"] < distances["0.8"] < distances["text"]
    # Another photo, another picture.
    other = charter_dir / "photos" / "34301-sete" / "stand-in-harbour.jpg"
    if Path(job.photo.path).name == other.name:
        other = other.with_name("stand-in-hill.jpg")
    moved = generate(
        demo_pipeline, [job.model_copy(update={"photo": job.photo.model_copy(update={"path": str(other)})})]
    )[0]
    assert _mean_distance(moved, close) > 10


def _random_controlnet(pipeline: DiffusionPipeline, folder: Path) -> Path:
    """A tiny ControlNet shaped after the demo UNet, from its config, with random weights (its zero
    convolutions too, so the edges do steer), saved as a diffusers folder like a real one."""
    from diffusers import ControlNetModel

    from tests.tiny_families import save_random_controlnet

    controlnet = ControlNetModel.from_unet(pipeline.unet, load_weights_from_unet=False)
    return save_random_controlnet(
        controlnet, [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block], folder
    )


@pytest.mark.slow
def test_a_tiny_random_controlnet_runs_through_the_same_path(
    make_campaign: Callable[..., Path],
    charter_dir: Path,
    tmp_path: Path,
    demo_pipeline: DiffusionPipeline,
    renderer: Renderer,
) -> None:
    folder = _random_controlnet(demo_pipeline, tmp_path / "controlnet-canny")
    with_edges = _photo_job(make_campaign, charter_dir, strength=0.5, controlnet={"path": str(folder), "scale": 1.0})
    plain = _photo_job(make_campaign, charter_dir, strength=0.5)
    assert with_edges.photo.controlnet_hash and with_edges.key != plain.key
    host = ModelHost(torch.device("cpu"))
    steered = host.generate(DemoModelRef(), torch.float32, None, [with_edges])[0]
    unsteered = host.generate(DemoModelRef(), torch.float32, None, [plain])[0]
    assert _mean_distance(steered, unsteered) > 1  # the edges changed the picture
    edges_only = with_edges.model_copy(update={"photo": with_edges.photo.model_copy(update={"strength": None})})
    assert host.generate(DemoModelRef(), torch.float32, None, [edges_only])[0].shape == steered.shape
    # A whole run with it: planned, rendered, marked and recorded like any other.
    out = tmp_path / "outputs"
    plan = plan_render(
        make_campaign(
            communes=_sete(), formats=["story"], steps=2, photos={"strength": None, "controlnet": {"path": str(folder)}}
        ),
        out,
    )
    exported = render_now(renderer, plan, out)
    assert exported and all((out / edges_path(item.job.campaign, item.job.key)).is_file() for item in exported)


def _xmp(path: Path) -> str:
    with Image.open(path) as image:
        return image.info.get("XML:com.adobe.xmp", "")


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_credits_travel_into_xmp_c2pa_and_the_report(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path, renderer: Renderer
) -> None:
    out = tmp_path / "outputs"
    plan = plan_render(make_campaign(formats=["instagram_square"], steps=2), out)  # Sète has photos, Castelnau none
    exported = render_now(renderer, plan, out)
    finish_render(plan, out)
    from_photo = [item for item in exported if item.job.photo is not None]
    from_text = [item for item in exported if item.job.photo is None]
    assert {item.job.commune_name for item in from_photo} == {"Sète"} and from_text
    credits = (charter_dir / SETE_PHOTOS / "photos.yaml").read_text(encoding="utf-8")
    for item in from_photo:
        path = out / item.job.relative_path
        credit = item.job.photo.credit
        assert "drawn by code" in credit and "CC0-1.0" in credit and "2026-11-23" in credit and "stand-in" in credit
        assert Path(item.job.photo.path).name in credits
        xmp = _xmp(path)
        assert DigitalSourceType.composite.value in xmp
        assert f"photo: {credit}" in xmp and "<dc:contributor>" in xmp
        state = read_manifest_state(path, None)
        assert state.source_type == DigitalSourceType.composite.value
        assert state.photos == (f"Photo: {credit}",)
        edges = Image.open(out / edges_path(item.job.campaign, item.job.key))
        assert edges.size == (item.job.generation_width, item.job.generation_height)
    for item in from_text:
        state = read_manifest_state(out / item.job.relative_path, None)
        assert state.source_type == DigitalSourceType.generated.value and state.photos == ()
    report = (out / plan.campaign_slug / "report.html").read_text(encoding="utf-8")
    assert "D’après la photo de visuels sample assets" in report and "contours" in report
    manifest = json.loads((out / plan.campaign_slug / "manifest.json").read_text(encoding="utf-8"))
    assert any(entry["inputs"]["photo"] for entry in manifest["files"].values())


def test_photos_null_ignores_them_and_a_changed_photo_changes_the_key(
    make_campaign: Callable[..., Path], charter_dir: Path
) -> None:
    campaign_path = make_campaign(communes=_sete())
    info = describe_model(load_campaign(campaign_path).model)
    before = expand_jobs(load_campaign(campaign_path), info, "float32")
    assert all(job.photo is not None for job in before)
    assert all(
        job.photo is None
        for job in expand_jobs(load_campaign(make_campaign(communes=_sete(), photos=None)), info, "float32")
    )
    for photo in (charter_dir / SETE_PHOTOS).glob("*.jpg"):
        Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    after = expand_jobs(load_campaign(campaign_path), info, "float32")
    assert all(a.key != b.key for a, b in zip(before, after, strict=True))


def test_a_short_schedule_at_a_low_strength_still_runs_a_step(
    make_campaign: Callable[..., Path], charter_dir: Path, demo_pipeline: DiffusionPipeline
) -> None:
    """2 steps at strength 0.3: diffusers would run int(0.6) = 0 of them, and fail."""
    job = _photo_job(make_campaign, charter_dir, strength=0.3).model_copy(update={"steps": 2})
    photo = fit_photo(Path(job.photo.path), job.generation_width, job.generation_height)
    picture = generate(demo_pipeline, [job])[0]
    assert picture.shape == photo.shape and 0 < _mean_distance(picture, photo) < 35


def test_a_turned_photo_is_measured_as_it_is_shown(tmp_path: Path) -> None:
    """A camera's portrait photo is stored landscape with an EXIF orientation: its size, and so
    how much it is enlarged, is the portrait's, as ``fit_photo`` reads it."""
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # turned a quarter clockwise to be shown
    Image.new("RGB", (768, 512), (90, 120, 150)).save(path, exif=exif)
    assert upright_size(path) == (512, 768)
    assert fit_photo(path, 512, 768).shape == (768, 512, 3)
    assert enlargement(upright_size(path), 512, 768) == 1.0
    assert enlargement((768, 512), 512, 768) == 1.5  # as stored, it would be cropped and enlarged


def test_a_photo_enlarged_past_twice_its_pixels_is_said_by_check_and_by_render(
    make_campaign: Callable[..., Path],
    charter_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sample's 768x512 photos drawn at 1024-pixel models' 768x1360 story size are enlarged
    2.7 times: the pictures came out soft and nothing said why. `visuels check` says it (a finding:
    exit 1) and a render's plan warns, naming the photo's credits and field, once per photo."""
    from visuels.cli.main import main

    model = {"kind": "diffusers", "path": str(ensure_demo_model()), "native_size": 1024}
    campaign = make_campaign(communes=_sete(), formats=["instagram_square", "story"], model=model, photos={})
    assert main(["check", str(campaign)]) == 1
    said = [line.strip() for line in capsys.readouterr().out.splitlines() if "look soft" in line]
    credits = charter_dir / SETE_PHOTOS / "photos.yaml"
    assert len(said) == 1 and said[0].startswith(f"{credits}, photos[")
    assert said[0].endswith(
        ".jpg is 768x512: enlarged 2.7x to the 768x1360 its pictures are drawn at, they will look soft"
        " (a photo of 2040x1360 or more draws them sharp)"
    )
    with caplog.at_level("WARNING"):
        plan = plan_render(campaign, tmp_path / "outputs")
    assert [record.getMessage() for record in caplog.records if "look soft" in record.getMessage()] == said
    # A region's thousands of photos: the first named, the others counted, not a line each.
    import visuels.planning.plan as planning

    monkeypatch.setattr(planning, "SHOWN", 0)
    caplog.clear()
    with caplog.at_level("WARNING"):
        plan_render(campaign, tmp_path / "outputs")
    assert "... and 1 more photo enlarged more than twice (`visuels check` names it)" in caplog.messages
    assert not [message for message in caplog.messages if "look soft" in message]
    # The square alone enlarges it 2x (its 512 pixels high to 1024): at the limit, not said.
    square = [job for job in plan.jobs if job.format == "instagram_square"]
    assert soft_photos(load_campaign(campaign), square) == []
    at_512 = make_campaign("sd15.yaml", communes=_sete(), formats=["story"], model=model | {"native_size": 512})
    assert main(["check", str(at_512)]) == 0  # 1.75x
    assert "look soft" not in capsys.readouterr().out
