"""Charter enforcement on synthetic pictures whose right answer is known."""

import numpy as np
import pytest
from PIL import Image, ImageFont
from visuels.inputs.charter import Charter, load_charter
from visuels.inputs.colour import contrast_ratio, relative_luminance
from visuels.inputs.fonts import typographic
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.postprocess.chain import postprocess
from visuels.postprocess.compliance import assess
from visuels.postprocess.label import draw_ai_label, label_text_size
from visuels.postprocess.layout import margin
from visuels.postprocess.logo import place_logo
from visuels.postprocess.palette import ciede2000, conformity, grade_to_palette, rgb_to_lab
from visuels.postprocess.resize import crop_box, crop_to_aspect, reduced, resample
from visuels.postprocess.typography import break_points, fit

from tests.helpers import SAMPLE_CHARTER_DIR

LONGEST_NAME = "Saint-Remy-en-Bouzemont-Saint-Genest-et-Isson"


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter(SAMPLE_CHARTER_DIR)


@pytest.fixture(scope="module")
def palette(charter: Charter) -> tuple[tuple[int, int, int], ...]:
    return tuple(colour.rgb for colour in charter.spec.palette)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


# --- format adaptation ---------------------------------------------------------------


def test_crop_keeps_the_detailed_part() -> None:
    # Flat grey, with all the detail in the right third: a square crop must take that third.
    image = Image.new("RGB", (300, 100), (128, 128, 128))
    image.paste(noise(100, 100), (200, 0))
    left, top, right, bottom = crop_box(image, 1.0)
    assert (top, bottom) == (0, 100) and right - left == pytest.approx(100)
    assert left >= 190


def test_crop_of_a_flat_picture_stays_centred() -> None:
    left, _, right, _ = crop_box(Image.new("RGB", (300, 100), (90, 90, 90)), 1.0)
    assert (left, right) == (100, 200)


def test_upscaling_is_smooth_not_blocky() -> None:
    # A smooth 64 px picture blown up 4x: the bicubic leaves no steps; nearest-neighbour would.
    y, x = np.mgrid[0:64, 0:64]
    source = Image.fromarray(np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8))
    smooth = resample(crop_to_aspect(source, 1.0), 256, 256).astype(np.int32)
    blocky = np.asarray(source.resize((256, 256), Image.Resampling.NEAREST), dtype=np.int32)
    steps = lambda a: np.abs(np.diff(a, axis=1)).max()  # noqa: E731 - a one-line measure
    assert steps(smooth) <= steps(blocky) / 2


# --- palette -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [  # Sharma, Wu & Dalal (2005), test data for CIEDE2000
        ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
        ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0),
        ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
        ((50, 2.5, 0), (73, 25, -18), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_ciede2000_matches_reference_data(lab1: tuple, lab2: tuple, expected: float) -> None:
    assert ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_conformity_agrees_with_exact_ciede2000(palette: tuple) -> None:
    image = noise(128, 128, seed=5)
    lab = rgb_to_lab(np.asarray(image)).reshape(-1, 1, 3)
    exact = (ciede2000(lab, rgb_to_lab(np.array(palette, dtype=np.float32))[None]).min(axis=1) <= 20).mean()
    assert conformity(image, palette, 20) == pytest.approx(exact, abs=0.02)


def test_grading_raises_the_palette_score(palette: tuple) -> None:
    image = noise(256, 256, seed=2)
    before = conformity(image, palette, 20)
    pixels = np.asarray(image)
    half = conformity(Image.fromarray(grade_to_palette(pixels, palette, 0.5)), palette, 20)
    full = conformity(Image.fromarray(grade_to_palette(pixels, palette, 1.0)), palette, 20)
    assert before < half < full
    assert np.array_equal(grade_to_palette(pixels, palette, 0.0), pixels)


def test_grading_moves_every_colour_of_a_lattice_cell_alike(palette: tuple) -> None:
    # The grading table is one offset per 4x4x4 cell of RGB values, applied with saturation: two
    # pixels of one cell move by the same amount unless a channel hits 0 or 255.
    rng = np.random.default_rng(7)
    cell = rng.integers(0, 64, (4096, 1, 3)) * 4
    pair = np.concatenate([cell + rng.integers(0, 4, (4096, 1, 3)), cell + rng.integers(0, 4, (4096, 1, 3))], axis=1)
    pixels = pair.astype(np.uint8)
    moved = grade_to_palette(pixels, palette, 0.6).astype(np.int16) - pixels
    unclipped = (grade_to_palette(pixels, palette, 0.6) % 255 != 0).all(axis=(1, 2))
    assert unclipped.mean() > 0.5
    assert np.array_equal(moved[unclipped, 0], moved[unclipped, 1])
    assert np.abs(moved).max() > 10  # it does move colours


def test_reduced_copies_keep_the_aspect_and_the_average() -> None:
    pixels = np.asarray(noise(1080, 608, seed=4))
    small = reduced(pixels, 320)
    assert small.shape == (180, 320, 3)
    assert np.abs(small.mean(axis=(0, 1)) - pixels.mean(axis=(0, 1))).max() < 1
    assert reduced(pixels, 2000).shape == pixels.shape


def test_overlays_are_drawn_after_grading(charter: Charter) -> None:
    # On black the light (white) logo is used; white is off-palette, so grading would have tinted it.
    result = postprocess(Image.new("RGB", (256, 256)), charter, 1080, 1080, "fr", "Sète", "")
    assert result.logo.variant == "light"
    box = result.logo.box
    logo = np.asarray(result.image.crop(box.as_tuple())).reshape(-1, 3)
    assert (logo == 255).all(axis=1).sum() > 0.1 * len(logo)
    dark = min((c.rgb for c in charter.spec.palette), key=relative_luminance)
    plate = result.label.box
    assert tuple(np.asarray(result.image)[plate.top + 1, plate.left + plate.width // 2]) == dark


# --- logo ----------------------------------------------------------------------------


def test_logo_keeps_its_usual_corner_while_it_reads_there(charter: Charter) -> None:
    image = Image.new("RGB", (1080, 1080), (128, 128, 128))
    image.paste(noise(540, 540), (540, 0))  # busy top-right
    image.paste(noise(540, 540, seed=1), (0, 0))  # busy top-left
    _, placement = place_logo(image, charter, avoid=[])
    # The same corner on every picture of a series: a busy corner is no reason to move.
    assert placement.corner == charter.spec.logo.allowed_corners[0].value
    assert placement.contrast >= 3.0 and placement.note is None


def test_dark_background_gets_the_light_logo(charter: Charter) -> None:
    _, placement = place_logo(Image.new("RGB", (1080, 1080), (10, 10, 10)), charter, avoid=[])
    assert placement.variant == "light"
    _, placement = place_logo(Image.new("RGB", (1080, 1080), (250, 250, 250)), charter, avoid=[])
    assert placement.variant == "colour"  # the blue word reads on white
    assert placement.contrast >= 3.0


def test_logo_respects_minimum_width_and_clear_zone(charter: Charter) -> None:
    _, placement = place_logo(Image.new("RGB", (1080, 1920), (128, 128, 128)), charter, avoid=[])
    assert placement.box.width >= charter.spec.logo.min_width_share * 1080
    assert placement.width_ok and placement.clear_zone_ok
    clear = placement.box.left - placement.zone.left
    assert clear >= charter.spec.logo.clear_zone * placement.box.height - 1


# --- typography ----------------------------------------------------------------------


def test_names_break_after_hyphens_and_at_spaces() -> None:
    pieces = break_points("Castelnau-d'Estrétefonds Florac Trois-Rivières")
    assert pieces == [
        ("Castelnau-", ""),
        ("d'Estrétefonds", " "),
        ("Florac", " "),
        ("Trois-", ""),
        ("Rivières", " "),
    ]


def test_fit_shrinks_then_wraps(charter: Charter) -> None:
    fitted = fit(LONGEST_NAME, charter.font, start_size=200, min_size=16, max_width=900, max_lines=3)
    assert fitted.fits and len(fitted.lines) <= 3 and fitted.size < 200
    assert "".join(fitted.lines) == LONGEST_NAME  # broken after hyphens: nothing lost or added
    assert not fit("Anticonstitutionnellement", charter.font, 80, 80, 100, 1).fits


@pytest.mark.parametrize("name", list(FORMAT_PRESETS))
def test_longest_name_fits_every_format_without_collisions(charter: Charter, name: str) -> None:
    preset = FORMAT_PRESETS[name]
    source = Image.open(SAMPLE_CHARTER_DIR / "references" / "12-hills-village-sea.png")
    result = postprocess(source, charter, preset.width, preset.height, "fr", LONGEST_NAME, "Vivre en Solane, l'été")
    check = assess(result, charter)
    assert result.image.size == (preset.width, preset.height)
    assert not check.text_overflow and check.collisions == []
    boxes = [result.label.box, result.logo.zone, result.text.box]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert check.passed, check.reasons
    assert check.text_contrast >= 4.5


def test_french_characters_are_drawn(charter: Charter) -> None:
    from visuels.postprocess.typography import font

    face = font(charter.font, 40)
    for character in "éèêëàâîïôöùûüçœæÉÈÀÇŒÆ'’-":
        assert face.getmask(character).getbbox() is not None, character


# --- label ---------------------------------------------------------------------------


@pytest.mark.parametrize("background", [(0, 0, 0), (255, 255, 255), (128, 128, 128)])
def test_label_is_in_its_corner_and_legible(charter: Charter, background: tuple[int, int, int]) -> None:
    image = Image.new("RGB", (1080, 1080), background)
    labelled, label = draw_ai_label(image, charter, "fr")
    plate = label.box
    assert plate.left > 540 and plate.top < 540  # top right in the sample charter
    # moved inward to stay inside the centred 4:5 crop (x from 108 to 972) the charter asks for
    assert plate.right <= 972 and label.crops == {"1:1": True, "4:5": True, "9:16": False, "16:9": False}
    pixels = np.asarray(labelled)[plate.top : plate.bottom, plate.left : plate.right].reshape(-1, 3)
    luminances = relative_luminance(pixels)
    assert contrast_ratio(float(luminances.max()), float(luminances.min())) >= 4.5
    assert label.contrast >= 4.5
    assert label.text_px == label_text_size(charter, 1080, 1080) >= charter.spec.ai_label.min_text_px
    assert (np.asarray(labelled)[plate.bottom + 1 :] == background).all()


def test_label_never_smaller_than_the_charter_minimum(charter: Charter) -> None:
    _, label = draw_ai_label(Image.new("RGB", (320, 320)), charter, "fr")
    assert label.text_px == charter.spec.ai_label.min_text_px


def test_no_line_ends_after_saint_and_apostrophes_are_typographic(charter: Charter) -> None:
    assert break_points("Saint-Genest-Malifaux")[0] == ("Saint-Genest-", "")
    assert break_points("Sainte-Croix-Vallée-Française")[0] == ("Sainte-Croix-", "")
    for width in (250, 400, 600, 900):
        fitted = fit("Saint-Genest-Malifaux", charter.font, 120, 40, width, 3)
        assert not any(line.lower().endswith(("saint-", "sainte-")) for line in fitted.lines), fitted.lines
    assert typographic("Vivre en Solane, l'été") == "Vivre en Solane, l’été"


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if "300dpi" in name else name for name in FORMAT_PRESETS]
)
def test_the_text_plate_is_fitted_to_its_text_and_inside_the_margins(charter: Charter, name: str) -> None:
    preset = FORMAT_PRESETS[name]
    source = Image.open(SAMPLE_CHARTER_DIR / "references" / "12-hills-village-sea.png")
    inset = margin(preset.width, preset.height)
    for commune in ("Foix", LONGEST_NAME):
        result = postprocess(source, charter, preset.width, preset.height, "fr", commune, "")
        box, size = result.text.box, result.text.name.size
        pad = box.left - inset  # the plate's padding: the plate starts at the margin, as the label does
        assert pad > 0 and box.right + pad <= preset.width - inset
        widest = max(ImageFont.FreeTypeFont(str(charter.font), size).getlength(line) for line in result.text.name.lines)
        assert box.width <= widest + 1  # as wide as the text, not the picture
    assert result.label.box.right <= preset.width - inset and result.label.crops["4:5"]  # top right, in the 4:5 crop


def test_story_keeps_logo_label_and_text_out_of_the_apps_interface(charter: Charter) -> None:
    from visuels.postprocess.layout import app_covered

    preset = FORMAT_PRESETS["story"]
    top, bottom = app_covered(preset.width, preset.height)
    assert (top, bottom) == (269, 384)  # Instagram's header and reply bar on 1080x1920
    source = Image.open(SAMPLE_CHARTER_DIR / "references" / "12-hills-village-sea.png")
    result = postprocess(source, charter, preset.width, preset.height, "fr", LONGEST_NAME, "Vivre en Solane, l'été")
    for box in (result.label.box, result.logo.box, result.text.box):
        assert box.top >= top and box.bottom <= preset.height - bottom, box
    assert app_covered(1080, 1080) == (0, 0)  # other formats are not covered


@pytest.mark.slow
def test_a_series_keeps_its_logo_corner_and_text_tone(charter: Charter) -> None:
    """Pictures of one commune differ; where the rules allow it, their logo corner and text tone do not."""
    sources = sorted((SAMPLE_CHARTER_DIR / "references").glob("*.png"))
    corners, plates = set(), set()
    for source in sources:
        with Image.open(source) as picture:
            for name in ("instagram_square", "story", "web_banner"):
                preset = FORMAT_PRESETS[name]
                result = postprocess(picture, charter, preset.width, preset.height, "fr", "Sète", "l'été")
                if result.logo.note is None:
                    corners.add(result.logo.corner)
                else:
                    assert "contrast there" in result.logo.note
                if result.text.note is None:
                    box = result.text.box
                    plates.add(result.image.getpixel((box.left - 2, box.top - 2)) < (128, 128, 128))
    assert len(corners) == 1 and plates == {True}  # one corner, dark plates, on every picture


def _keeping(charter: Charter, crops: list[str]) -> Charter:
    """The charter with its label kept inside ``crops``."""
    label = charter.spec.ai_label.model_copy(update={"keep_in_crops": crops})
    return charter.model_copy(update={"spec": charter.spec.model_copy(update={"ai_label": label})})


def test_an_edited_picture_says_modifiee_on_a_plate_that_covers_the_generated_one(charter: Charter) -> None:
    from visuels.postprocess.label import label_plate

    for language in ("fr", "en", "oc"):
        generated, _ = label_plate(charter, language, 24)
        edited, contrast = label_plate(charter, language, 24, edited=True)
        assert edited.size == generated.size and contrast >= 4.5  # drawn over the original's, it hides it
        assert np.asarray(edited).tobytes() != np.asarray(generated).tobytes()
    assert charter.spec.ai_label.edited_text["fr"] == "Image modifiée par IA"


@pytest.mark.parametrize(("width", "height"), [(1080, 1080), (1080, 1350), (1080, 1920), (1920, 1080), (1754, 2480)])
def test_the_label_stays_inside_the_crops_the_charter_names_where_it_fits(
    charter: Charter, width: int, height: int
) -> None:
    """Each format says which centred crops keep its label; those the charter names (4:5 in the
    sample) keep it, the label moved inward along its edge as little as it takes."""
    from visuels.postprocess.crops import centred_crop, crops_kept

    _, label = draw_ai_label(Image.new("RGB", (width, height)), charter, "fr")
    assert label.crops == crops_kept(label.box, width, height) and label.crops["4:5"]
    crop = centred_crop(width, height, "4:5")
    assert label.box.right == min(width, crop.right) - margin(width, height) or label.box.right == width - margin(
        width, height
    )
    assert label.box.top < height / 3  # still along the top edge
    _, in_corner = draw_ai_label(Image.new("RGB", (width, height)), _keeping(charter, []), "fr")
    assert in_corner.box.right == width - margin(width, height)


def test_centred_crops_and_no_room_leave_the_label_in_its_corner_with_a_note(charter: Charter) -> None:
    from visuels.postprocess.crops import centred_crop

    assert centred_crop(1920, 1080, "1:1").as_tuple() == (420, 0, 1500, 1080)
    assert centred_crop(1080, 1080, "9:16").as_tuple() == (236, 0, 844, 1080)
    assert centred_crop(1080, 1920, "16:9").as_tuple() == (0, 656, 1080, 1264)
    # A thin banner kept inside a 9:16 crop: no room for the plate there, so it stays in its corner.
    _, label = draw_ai_label(Image.new("RGB", (1500, 300)), _keeping(charter, ["9:16"]), "fr")
    assert label.box.right == 1500 - margin(1500, 300) and not label.crops["9:16"]
