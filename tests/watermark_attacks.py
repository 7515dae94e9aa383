"""What an adversarial tester does to a marked picture, and the pictures it is done to.

Shared by ``tests/test_watermark.py`` (a test per attack family) and ``benchmarks/watermark.py``
(the whole table). Every attack takes and returns an (h, w, 3) uint8 RGB array.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from visuels.inputs.charter import Charter
from visuels.postprocess.chain import postprocess

SAMPLE_CHARTER_DIR = Path(__file__).resolve().parents[1] / "brand_assets" / "solane"
REFERENCES = sorted((SAMPLE_CHARTER_DIR / "references").glob("*.png"))
Attack = Callable[[np.ndarray], np.ndarray]


def encode(image: np.ndarray, format_name: str, **options: object) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format_name, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def resize(image: np.ndarray, factor_x: float, factor_y: float | None = None, bilinear: bool = False) -> np.ndarray:
    height, width = image.shape[:2]
    size = (round(width * factor_x), round(height * (factor_x if factor_y is None else factor_y)))
    method = Image.Resampling.BILINEAR if bilinear else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize(size, method))


def crop(image: np.ndarray, left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """The part between these shares of the width and height."""
    height, width = image.shape[:2]
    rows = slice(round(top * height), round(bottom * height))
    return np.ascontiguousarray(image[rows, round(left * width) : round(right * width)])


def centre_crop(image: np.ndarray, share: float) -> np.ndarray:
    return crop(image, share, share, 1 - share, 1 - share)


def rotate(image: np.ndarray, degrees: float, fill: bool = True) -> np.ndarray:
    """Turned counter-clockwise; ``fill``: then cropped to the largest upright rectangle inside (a
    straightened horizon), else on a larger canvas with a white border."""
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    angle = np.radians(abs(degrees))
    if not fill:
        cos, sin = np.cos(angle), np.sin(angle)
        new_width, new_height = round(height * sin + width * cos), round(height * cos + width * sin)
        turn[0, 2] += (new_width - width) / 2
        turn[1, 2] += (new_height - height) / 2
        return cv2.warpAffine(image, turn, (new_width, new_height), borderValue=(255, 255, 255))
    turned = cv2.warpAffine(image, turn, (width, height))
    # The largest upright rectangle of the same aspect inside the turned picture.
    scale = 1 / (np.cos(angle) + np.sin(angle) * max(width / height, height / width))
    keep_width, keep_height = int(width * scale) - 2, int(height * scale) - 2
    left, top = (width - keep_width) // 2, (height - keep_height) // 2
    return np.ascontiguousarray(turned[top : top + keep_height, left : left + keep_width])


def enhance(image: np.ndarray, kind: type, factor: float) -> np.ndarray:
    return np.asarray(kind(Image.fromarray(image)).enhance(factor))


def pil_filter(image: np.ndarray, image_filter: ImageFilter.Filter) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(image_filter))


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    table = np.clip(np.round(255 * (np.arange(256) / 255) ** value), 0, 255).astype(np.uint8)
    return table[image]


def greyscale(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).convert("L").convert("RGB"))


def overlay(image: np.ndarray, left: float, top: float) -> np.ndarray:
    """An opaque block of text over 20 % of the picture (a sticker, a caption), its corner here."""
    height, width = image.shape[:2]
    side_x, side_y = round(width * 0.2**0.5), round(height * 0.2**0.5)
    x, y = round(left * (width - side_x)), round(top * (height - side_y))
    picture = Image.fromarray(image.copy())
    draw = ImageDraw.Draw(picture)
    draw.rectangle((x, y, x + side_x, y + side_y), fill=(244, 233, 216))
    font = ImageFont.truetype(str(SAMPLE_CHARTER_DIR / "fonts" / "DejaVuSans-Bold.ttf"), max(12, side_y // 8))
    for line in range(6):
        draw.text((x + 10, y + 10 + line * side_y // 7), "Fête de la mer, 14 juillet", font=font, fill=(27, 79, 114))
    return np.asarray(picture)


def border(image: np.ndarray, pixels: int) -> np.ndarray:
    return cv2.copyMakeBorder(image, pixels, pixels, pixels, pixels, cv2.BORDER_CONSTANT, value=(240, 240, 240))


ATTACKS: dict[str, Attack] = {
    "none": lambda image: image,
    # Geometry
    **{f"rotate {degrees:+d}° crop": partial(rotate, degrees=degrees) for degrees in (1, -1, 3, -3, 5, -5, 10, -10)},
    **{f"rotate {degrees:+d}° border": partial(rotate, degrees=degrees, fill=False) for degrees in (1, -3, 5, -10)},
    "flip horizontal": lambda image: np.ascontiguousarray(image[:, ::-1]),
    "resize 0.5": lambda image: resize(image, 0.5),
    "resize 1.5": lambda image: resize(image, 1.5),
    "resize 0.33": lambda image: resize(image, 0.33),
    "resize 2": lambda image: resize(image, 2.0),
    "scale x +15% y -15%": lambda image: resize(image, 1.15, 0.85),
    "crop 10% per side": lambda image: centre_crop(image, 0.10),
    "crop 25% area centre": lambda image: centre_crop(image, 0.25),
    "crop 25% area top-left": lambda image: crop(image, 0.0, 0.0, 0.5, 0.5),
    "crop 25% area bottom-right": lambda image: crop(image, 0.5, 0.5, 1.0, 1.0),
    # Compression
    "jpeg q50 4:2:0": lambda image: encode(image, "JPEG", quality=50, subsampling=2),
    "jpeg q30 4:2:0": lambda image: encode(image, "JPEG", quality=30, subsampling=2),
    "jpeg q20 4:2:0": lambda image: encode(image, "JPEG", quality=20, subsampling=2),
    "webp q40": lambda image: encode(image, "WEBP", quality=40),
    "png -> jpeg -> webp": lambda image: encode(encode(image, "JPEG", quality=90), "WEBP", quality=80),
    # Filters
    "blur σ1.0": lambda image: cv2.GaussianBlur(image, (0, 0), 1.0),
    "blur σ1.5": lambda image: cv2.GaussianBlur(image, (0, 0), 1.5),
    "unsharp mask": lambda image: pil_filter(image, ImageFilter.UnsharpMask(radius=2, percent=150, threshold=3)),
    "median 3x3": lambda image: cv2.medianBlur(image, 3),
    # Colour
    "brightness +20%": lambda image: enhance(image, ImageEnhance.Brightness, 1.2),
    "brightness -20%": lambda image: enhance(image, ImageEnhance.Brightness, 0.8),
    "contrast +20%": lambda image: enhance(image, ImageEnhance.Contrast, 1.2),
    "contrast -20%": lambda image: enhance(image, ImageEnhance.Contrast, 0.8),
    "gamma 0.7": lambda image: gamma(image, 0.7),
    "gamma 1.4": lambda image: gamma(image, 1.4),
    "saturation +50%": lambda image: enhance(image, ImageEnhance.Color, 1.5),
    "saturation -50%": lambda image: enhance(image, ImageEnhance.Color, 0.5),
    "greyscale": greyscale,
    # Overlays
    "20% overlay top-left": lambda image: overlay(image, 0.0, 0.0),
    "20% overlay centre": lambda image: overlay(image, 0.5, 0.5),
    "20% overlay bottom-right": lambda image: overlay(image, 1.0, 1.0),
    # Chains
    "crop 20% + resize 0.5 + jpeg q60": lambda image: encode(
        resize(centre_crop(image, 0.1), 0.5), "JPEG", quality=60, subsampling=2
    ),
    "rotate 2° + crop + jpeg q70": lambda image: encode(rotate(image, 2), "JPEG", quality=70, subsampling=2),
    "screenshot: 1.25x bilinear + jpeg q80 + 8px border": lambda image: border(
        encode(resize(image, 1.25, bilinear=True), "JPEG", quality=80), 8
    ),
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


def blown_up_noise(
    side: int, factor: int, seed: int, resample: Image.Resampling = Image.Resampling.NEAREST
) -> Image.Image:
    """Colour noise drawn small and blown up: what a model with random weights and a small VAE
    draws (128-256 px), once the formats enlarge it."""
    small = np.random.default_rng(seed).integers(0, 256, (side // factor, side // factor, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((side, side), resample)


def psnr(original: np.ndarray, marked: np.ndarray) -> float:
    mse = np.mean((original.astype(np.float64) - marked) ** 2)
    return float(10 * np.log10(255**2 / mse))


def unmarked_pictures(count: int, seed: int = 2026) -> list[np.ndarray]:
    """Pictures that carry no mark, as varied as a detector meets: natural-looking (the charter's
    illustrations, recoloured, cropped, rescaled; 1/f noise; photos drawn by code) and synthetic
    (white noise, gradients, flat colour, stripes and checkerboards at many periods, screenshots
    of text)."""
    rng = np.random.default_rng(seed)
    illustrations = [np.asarray(Image.open(path).convert("RGB")) for path in REFERENCES]
    font_path = str(SAMPLE_CHARTER_DIR / "fonts" / "DejaVuSans-Bold.ttf")
    pictures = []
    for index in range(count):
        kind = index % 8
        size = int(rng.integers(200, 400))
        if kind == 0:  # an illustration, cropped, scaled and recoloured
            source = illustrations[index % len(illustrations)]
            top, left = rng.integers(0, 100, size=2)
            part = source[top : top + 400, left : left + 400].astype(np.float64)
            part = part * rng.uniform(0.7, 1.3, size=3) + rng.uniform(-30, 30)
            picture = np.asarray(Image.fromarray(np.clip(part, 0, 255).astype(np.uint8)).resize((size, size)))
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
        elif kind == 5:  # stripes / checkerboards: strong periodic structure, the decoder's worst case
            period = int(rng.integers(2, 64))
            rows, cols = np.indices((size, size))
            pattern = ((rows // period + cols // max(1, period // 2)) % 2) * 200 + 20
            picture = np.repeat(pattern[..., None], 3, axis=2).astype(np.uint8)
        elif kind == 6:  # a screenshot of text: lines of glyphs, regular spacing
            picture = _text_screenshot(rng, size, font_path)
        else:  # a photo drawn by code: graded sky, a ridge, buildings, sensor noise
            picture = _drawn_photo(rng, size)
        pictures.append(picture)
    return pictures


def _text_screenshot(rng: np.random.Generator, size: int, font_path: str) -> np.ndarray:
    dark = bool(rng.integers(0, 2))
    page = Image.new("RGB", (size, size), (30, 30, 30) if dark else (250, 250, 250))
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(font_path, int(rng.integers(9, 22)))
    words = ["commune", "visuels", "Occitanie", "été", "2027", "marché", "port", "la", "de", "mairie"]
    step = font.size + int(rng.integers(2, 8))
    for y in range(4, size - step, step):
        line = " ".join(words[int(i)] for i in rng.integers(0, len(words), 12))
        draw.text((6, y), line, font=font, fill=(220, 220, 220) if dark else (20, 20, 20))
    return np.asarray(page)


def page_screenshot(picture: np.ndarray, shown_share: float, phone: bool = False, quality: int = 80) -> np.ndarray:
    """A screenshot of a post showing ``picture`` (bilinear) at ``shown_share`` of the screen's width:
    a desktop page (1920x1080: a bar, columns of text either side, the post's header and text above
    the picture) or a phone's (1170x2532, the picture across, text above and below), as JPEG."""
    width, height = (1170, 2532) if phone else (1920, 1080)
    page = Image.new("RGB", (width, height), (255, 255, 255) if phone else (240, 242, 245))
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(SAMPLE_CHARTER_DIR / "fonts" / "DejaVuSans-Bold.ttf"), 18)
    rng = np.random.default_rng(round(shown_share * 1000))

    def text(left: int, top: int, columns: int, lines: int) -> None:
        for line in range(lines):
            words = ("".join(chr(97 + int(c)) for c in rng.integers(0, 26, int(rng.integers(2, 9)))) for _ in range(12))
            draw.text((left, top + 26 * line), " ".join(words)[:columns], font=font, fill=(40, 40, 40))

    shown_width = round(width * shown_share)
    shown = Image.fromarray(picture).resize(
        (shown_width, round(picture.shape[0] * shown_width / picture.shape[1])), Image.Resampling.BILINEAR
    )
    left = (width - shown_width) // 2
    draw.rectangle((0, 0, width, 56), fill=(250, 250, 250) if phone else (255, 255, 255))
    if not phone:
        text(20, 100, 30, 20)
        text(width - 420, 100, 40, 25)
        draw.rectangle((left - 20, 80, left + shown_width + 20, height), fill=(255, 255, 255))
    text(left + 10, 90, shown_width // 10, 3)  # the post's text, a line's gap above the picture
    page.paste(shown, (left, 190))
    text(left + 10, 230 + shown.height, shown_width // 10, 8)  # comments, under a bar of buttons
    return encode(np.asarray(page), "JPEG", quality=quality)


def street_photograph(
    picture: np.ndarray, shown_share: float, keystone: float, quality: int = 85, from_below: float = 0.0
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A phone's photograph (4032x2268, 1/f noise for the street around) of ``picture`` as a poster
    ``shown_share`` of its width wide, turned away by ``keystone`` (one side shorter by that share
    of its width) and, ``from_below``, seen from below too (its top shorter by that share at each
    end), as JPEG; and the poster's box in it."""
    width, height = 4032, 2268
    street = _street(height, width)
    shown_width = round(width * shown_share)
    shown_height = round(picture.shape[0] * shown_width / picture.shape[1])
    left, top = (width - shown_width) // 2, max(0, (height - shown_height) // 2)
    right, bottom = left + shown_width, min(height, top + shown_height)
    inset = keystone * shown_width
    corners = np.float32([[0, 0], [picture.shape[1], 0], [picture.shape[1], picture.shape[0]], [0, picture.shape[0]]])
    below = from_below * shown_width
    placed = np.float32([[left + below, top + inset], [right - below, top], [right, bottom], [left, bottom - inset]])
    warp = cv2.getPerspectiveTransform(corners, placed)
    drawn = cv2.warpPerspective(picture, warp, (width, height), flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones(picture.shape[:2], np.uint8), warp, (width, height))
    photo = np.where(inside[..., None] > 0, drawn, street)
    return encode(photo, "JPEG", quality=quality), (left, top, right, bottom)


@cache  # the same street behind every poster: 6 s of Fourier transforms, once per process
def _street(height: int, width: int) -> np.ndarray:
    street = np.asarray(pink_noise(height, width, 3).convert("RGB"))
    street.flags.writeable = False
    return street


def _drawn_photo(rng: np.random.Generator, size: int) -> np.ndarray:
    rows = np.linspace(0.0, 1.0, size)[:, None, None]
    sky, ground = rng.uniform(80, 240, size=3), rng.uniform(20, 160, size=3)
    horizon = int(rng.integers(size // 4, 3 * size // 4))
    picture = np.where(np.arange(size)[:, None, None] < horizon, (1 - rows) * sky + rows * 220, ground + 0 * rows)
    picture = np.broadcast_to(picture, (size, size, 3)).copy()
    for _ in range(int(rng.integers(3, 12))):  # buildings
        left, width, height = int(rng.integers(0, size)), int(rng.integers(10, 60)), int(rng.integers(10, 90))
        picture[max(0, horizon - height) : horizon, left : left + width] = rng.uniform(60, 240, size=3)
    blurred = cv2.GaussianBlur(picture.astype(np.float32), (0, 0), 1.0)
    return np.clip(blurred + rng.normal(0, 4, blurred.shape), 0, 255).astype(np.uint8)
