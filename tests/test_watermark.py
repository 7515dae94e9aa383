"""The invisible watermark: exact payload after each attack, no payload on unmarked pictures."""

import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from pipelines.charter import Charter, load_charter
from pipelines.marking.watermark import (
    DEFAULT_KEY,
    KEY_VARIABLE,
    MAX_ATTEMPTS,
    WatermarkKeyError,
    configured_key,
    detect,
    embed,
)
from pipelines.postprocess.chain import postprocess
from pipelines.postprocess.label import draw_ai_label
from tests.conftest import SAMPLE_CHARTER_DIR

PAYLOAD = 0xC0FFEE_5EA_B10B_5
REFERENCES = sorted((SAMPLE_CHARTER_DIR / "references").glob("*.png"))


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter(SAMPLE_CHARTER_DIR)


def encode(image: np.ndarray, format_name: str, **options: object) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format_name, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def centre_crop(image: np.ndarray, share: float) -> np.ndarray:
    height, width = image.shape[:2]
    dy, dx = round(height * share), round(width * share)
    return image[dy : height - dy, dx : width - dx]


def enhance(image: np.ndarray, kind: type, factor: float) -> np.ndarray:
    return np.asarray(kind(Image.fromarray(image)).enhance(factor))


ATTACKS = {
    "none": lambda image: image,
    "jpeg q50 4:2:0": lambda image: encode(image, "JPEG", quality=50, subsampling=2),
    "resize 0.5": lambda image: resize(image, 0.5),
    "resize 1.5": lambda image: resize(image, 1.5),
    "crop 10% per side": lambda image: centre_crop(image, 0.10),
    "brightness +20%": lambda image: enhance(image, ImageEnhance.Brightness, 1.2),
    "brightness -20%": lambda image: enhance(image, ImageEnhance.Brightness, 0.8),
    "contrast +20%": lambda image: enhance(image, ImageEnhance.Contrast, 1.2),
    "contrast -20%": lambda image: enhance(image, ImageEnhance.Contrast, 0.8),
    "png -> jpeg -> webp": lambda image: encode(encode(image, "JPEG", quality=90), "WEBP", quality=80),
}


def chain_output(charter: Charter, source: Image.Image, width: int, height: int) -> np.ndarray:
    """A real output: the whole post-processing chain, label, logo and commune name included."""
    result = postprocess(source, charter, width, height, "fr", "Castelnau-d'Estrétefonds", "Vivre en Solane")
    return np.asarray(result.image)


def pink_noise(height: int, width: int, seed: int) -> Image.Image:
    """Colour 1/f noise: the power spectrum of natural photographs, detail at every scale."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(width), np.fft.fftfreq(height))) + 1.0 / max(height, width)
    channels = []
    for _ in range(3):
        field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(height, width))) / frequency))
        channels.append((field - field.mean()) / (field.std() + 1e-9) * 45 + 128)
    return Image.fromarray(np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def outputs(charter: Charter) -> dict[str, np.ndarray]:
    return {
        "illustration 1080x1080": chain_output(charter, Image.open(REFERENCES[1]), 1080, 1080),
        "1/f noise 1920x1080": chain_output(charter, pink_noise(1080, 1920, seed=4), 1920, 1080),
    }


def psnr(original: np.ndarray, marked: np.ndarray) -> float:
    mse = np.mean((original.astype(np.float64) - marked) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_marking_is_invisible_enough(outputs: dict[str, np.ndarray]) -> None:
    for image in outputs.values():
        assert psnr(image, embed(image, PAYLOAD)) >= 38.0


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_exact_payload_after_attack(outputs: dict[str, np.ndarray], attack: str) -> None:
    for name, image in outputs.items():
        found = detect(ATTACKS[attack](embed(image, PAYLOAD)))
        assert found.payload == PAYLOAD, f"{name}: {attack}"


def test_survives_the_label_drawn_over_it(charter: Charter, outputs: dict[str, np.ndarray]) -> None:
    marked = embed(outputs["illustration 1080x1080"], PAYLOAD)
    labelled, _ = draw_ai_label(Image.fromarray(marked), charter, "en")
    assert detect(np.asarray(labelled)).payload == PAYLOAD


def test_another_key_reads_nothing(outputs: dict[str, np.ndarray]) -> None:
    marked = embed(outputs["illustration 1080x1080"], PAYLOAD, key=1234)
    assert detect(marked, key=1234).payload == PAYLOAD
    assert detect(marked).payload is None


def test_a_deployment_sets_its_own_key_and_every_default_use_follows_it(
    outputs: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "0x5EC12E7")
    assert configured_key() == 0x5EC12E7
    marked = embed(outputs["illustration 1080x1080"], PAYLOAD)  # no key given: the deployment's
    assert detect(marked).payload == PAYLOAD and detect(marked, key=0x5EC12E7).payload == PAYLOAD
    assert detect(marked, key=DEFAULT_KEY).payload is None  # the public key cannot read it
    for bad, words in (("not-hex", "is not a hexadecimal number"), ("0", "positive"), ("f" * 40, "128 bits")):
        monkeypatch.setenv(KEY_VARIABLE, bad)
        with pytest.raises(WatermarkKeyError, match=words):
            configured_key()


def test_payload_must_be_64_bits(outputs: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        embed(outputs["illustration 1080x1080"], 2**64)


def unmarked_pictures(count: int) -> list[np.ndarray]:
    """Natural-looking (the charter's illustrations, recoloured, cropped, rescaled; 1/f noise)
    and synthetic (white noise, gradients, flat, stripes and checkerboards at many periods)."""
    rng = np.random.default_rng(2026)
    illustrations = [np.asarray(Image.open(path).convert("RGB")) for path in REFERENCES]
    pictures = []
    for index in range(count):
        kind = index % 6
        size = int(rng.integers(200, 400))
        if kind == 0:  # an illustration, cropped, scaled and recoloured
            source = illustrations[index % len(illustrations)]
            top, left = rng.integers(0, 100, size=2)
            crop = source[top : top + 400, left : left + 400].astype(np.float64)
            crop = crop * rng.uniform(0.7, 1.3, size=3) + rng.uniform(-30, 30)
            picture = np.asarray(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((size, size)))
        elif kind == 1:  # 1/f ("pink") noise: the spectrum of natural photographs
            spectrum = np.fft.fft2(rng.normal(size=(size, size)))
            frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size))) + 1.0 / size
            field = np.real(np.fft.ifft2(spectrum / frequency))
            grey = (field - field.mean()) / (field.std() + 1e-9) * 40 + 128
            picture = np.repeat(np.clip(grey, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
        elif kind == 2:  # white noise
            picture = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        elif kind == 3:  # gradient with a little noise
            ramp = np.linspace(0, 255, size)[None, :] * np.ones((size, 1))
            picture = np.clip(np.stack([ramp, ramp.T, 255 - ramp], axis=-1) + rng.normal(0, 3, (size, size, 3)), 0, 255)
            picture = picture.astype(np.uint8)
        elif kind == 4:  # flat colour
            picture = np.full((size, size, 3), rng.integers(0, 256, size=3), dtype=np.uint8)
        else:  # stripes / checkerboards: strong periodic structure, the decoder's worst case
            period = int(rng.integers(2, 64))
            rows, cols = np.indices((size, size))
            pattern = ((rows // period + cols // max(1, period // 2)) % 2) * 200 + 20
            picture = np.repeat(pattern[..., None], 3, axis=2).astype(np.uint8)
        pictures.append(picture)
    return pictures


def test_no_payload_on_1000_unmarked_pictures() -> None:
    """With a CRC-32 and at most MAX_ATTEMPTS decodings, the false-positive rate is at most
    MAX_ATTEMPTS * 2**-32 per picture (2.3e-9): 1,000 pictures should give none at all."""
    # Spread over the cores (detect is single-threaded numpy): the same 1,000 detections, sooner.
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        detections = list(pool.map(detect, unmarked_pictures(1000), chunksize=25))
    assert max(detection.attempts for detection in detections) <= MAX_ATTEMPTS  # the bound's premise
    assert [index for index, detection in enumerate(detections) if detection.payload is not None] == []
