"""The ISCC image code: iscc-core's own, whether the hash runs in NumPy or falls back to iscc-core."""

import iscc_core
import numpy as np
import pytest
from PIL import Image
from visuels.marking import iscc


def normalised_pictures() -> list[np.ndarray]:
    """32 x 32 grey pictures: noisy ones, and the flat, striped and repeating ones whose
    coefficients tie with their median (where the hash must be iscc-core's to the bit)."""
    generator = np.random.default_rng(7)
    pictures = [generator.integers(0, 256, (32, 32)) for _ in range(60)]
    pictures += [np.full((32, 32), level) for level in (0, 17, 128, 255)]
    for width in (1, 5, 16, 31):
        striped = np.zeros((32, 32))
        striped[:, :width] = 200
        pictures += [striped, striped.T]
    pictures.append(np.add.outer(np.arange(32), np.arange(32)) * 3)
    pictures += [generator.integers(0, 3, (32, 32)) * 60 for _ in range(10)]
    return [picture.astype(np.uint8) for picture in pictures]


@pytest.mark.parametrize("picture", normalised_pictures(), ids=lambda picture: f"{picture[0, 0]}-{picture.std():.0f}")
def test_the_hash_is_iscc_cores(picture: np.ndarray) -> None:
    pixels = picture.tobytes()
    assert iscc._code_of_normalised(pixels) == iscc_core.gen_image_code_v0(pixels, bits=iscc.BITS)["iscc"]


def test_pixels_and_their_picture_give_one_code() -> None:
    """The exporter's pixels and the same picture read back by a checker: one code, an empty border cropped alike."""
    generator = np.random.default_rng(3)
    pixels = np.full((240, 320, 3), 250, dtype=np.uint8)
    pixels[30:200, 40:300] = generator.integers(0, 256, (170, 260, 3))
    code = iscc.image_code(pixels)
    assert iscc_core.iscc_validate(code, strict=True)
    assert code == iscc.image_code(Image.fromarray(pixels))
    assert code == iscc.image_code(Image.fromarray(pixels).convert("RGBA"))
