import numpy as np
import pytest
from PIL import Image

from pipelines.charter import Charter, load_charter
from pipelines.formats import FORMAT_PRESETS
from pipelines.postprocess.chain import postprocess
from pipelines.postprocess.colour import contrast_ratio, relative_luminance
from pipelines.postprocess.label import draw_ai_label, label_text_size
from pipelines.postprocess.logo import place_logo
from pipelines.postprocess.resize import fit_to_format
from tests.conftest import SAMPLE_CHARTER_DIR


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter(SAMPLE_CHARTER_DIR)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", list(FORMAT_PRESETS))
def test_chain_gives_the_exact_format_size(charter: Charter, name: str) -> None:
    preset = FORMAT_PRESETS[name]
    result = postprocess(noise(256, 256), charter, preset.width, preset.height, "fr")
    assert result.image.size == (preset.width, preset.height)
    assert result.image.mode == "RGB"
    assert not result.logo.box.overlaps(result.label)


def test_fit_crops_around_the_centre() -> None:
    source = Image.new("RGB", (300, 100), (255, 0, 0))
    source.paste((0, 0, 255), (100, 0, 200, 100))  # blue centre third
    fitted = np.asarray(fit_to_format(source, 50, 50))
    assert (fitted[..., 2] > 200).mean() > 0.95


def test_logo_goes_to_the_flat_corner(charter: Charter) -> None:
    # Flat grey everywhere, busy noise in the top-right corner: the logo avoids it.
    image = Image.new("RGB", (1080, 1080), (128, 128, 128))
    image.paste(noise(540, 540), (540, 0))
    _, placement = place_logo(image, charter, avoid=[])
    assert placement.corner != "top_right"
    assert placement.corner in {corner.value for corner in charter.spec.logo.allowed_corners}


def test_dark_background_gets_the_light_logo(charter: Charter) -> None:
    _, placement = place_logo(Image.new("RGB", (1080, 1080), (10, 10, 10)), charter, avoid=[])
    assert placement.variant == "light"
    _, placement = place_logo(Image.new("RGB", (1080, 1080), (250, 250, 250)), charter, avoid=[])
    assert placement.variant in {"colour", "dark"}
    assert placement.contrast >= 3.0


def test_logo_respects_minimum_width(charter: Charter) -> None:
    _, placement = place_logo(Image.new("RGB", (1080, 1920), (128, 128, 128)), charter, avoid=[])
    assert placement.box.width >= charter.spec.logo.min_width_share * 1080


@pytest.mark.parametrize("background", [(0, 0, 0), (255, 255, 255), (128, 128, 128)])
def test_label_is_drawn_in_its_corner_and_legible(charter: Charter, background: tuple[int, int, int]) -> None:
    image = Image.new("RGB", (1080, 1080), background)
    labelled, plate = draw_ai_label(image, charter, "fr")
    assert plate.left < 540 and plate.top > 540  # bottom_left in the sample charter
    pixels = np.asarray(labelled)[plate.top : plate.bottom, plate.left : plate.right].reshape(-1, 3)
    luminances = relative_luminance(pixels)
    assert contrast_ratio(float(luminances.max()), float(luminances.min())) >= 4.5
    assert plate.height >= label_text_size(1080, 1080)
    untouched = np.asarray(labelled)[: plate.top]
    assert (untouched == background).all()
