"""The fast PNG writer: any decoder reads back the exact pixels, the resolution and the XMP."""

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from visuels.inputs.images import XMP_PNG_KEY
from visuels.marking.png import encode_png


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("shape", "mode"),
    [((37, 53, 3), "RGB"), ((64, 1, 4), "RGBA"), ((1, 80), "L"), ((19, 23, 2), "LA"), ((300, 211, 3), "RGB")],
)
def test_pixels_read_back_exactly(shape: tuple[int, ...], mode: str) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    image = decoded(encode_png(pixels))
    assert image.mode == mode
    assert np.array_equal(np.asarray(image), pixels)


def test_smooth_pictures_compress_like_pillows() -> None:
    # A gradient with little grain, as generated pictures are: within a few per cent of Pillow's
    # size at the zlib level it used (1), nowhere near the raw 3 bytes a pixel.
    y, x = np.mgrid[0:512, 0:512]
    grain = np.random.default_rng(0).normal(0, 2, (512, 512, 1))
    pixels = np.clip(np.stack([x / 2, y / 2, (x + y) / 4], axis=-1) + grain, 0, 255).astype(np.uint8)
    ours = encode_png(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    assert len(ours) < 1.15 * len(buffer.getvalue())
    assert len(ours) < 0.5 * pixels.nbytes
    assert np.array_equal(np.asarray(decoded(ours)), pixels)


def test_resolution_and_xmp_read_as_pillow_writes_them() -> None:
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    packet = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description about="é"/></x:xmpmeta>'
    ours = decoded(encode_png(pixels, dpi=300, texts={XMP_PNG_KEY: packet}))
    metadata = PngImagePlugin.PngInfo()
    metadata.add_itxt(XMP_PNG_KEY, packet)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", dpi=(300, 300), pnginfo=metadata)
    pillows = decoded(buffer.getvalue())
    assert ours.info["dpi"] == pillows.info["dpi"]
    assert ours.info[XMP_PNG_KEY] == pillows.info[XMP_PNG_KEY] == packet
    assert "dpi" not in decoded(encode_png(pixels)).info


def test_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="8 bits"):
        encode_png(np.zeros((4, 4, 3), dtype=np.uint16))
    with pytest.raises(ValueError, match="5 channels"):
        encode_png(np.zeros((4, 4, 5), dtype=np.uint8))
