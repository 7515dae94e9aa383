"""Pictures and masks people bring: each kind of file converted correctly, or refused with one line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from visuels.inputs.images import MAX_FILE_BYTES, MAX_PIXELS, ImageInputError, read_mask, read_picture


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide x 20 high, red on the left; EXIF 6 says "rotate 90° clockwise to view".
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    image.save(path, quality=95, exif=exif)
    upright = read_picture(path)
    assert upright.size == (20, 40)  # portrait, as the phone showed it
    top = np.asarray(upright)[:5].mean(axis=(0, 1))
    assert top[0] > 200 and top[1] < 60  # the red half is now on top


def test_cmyk_goes_through_its_icc_profile(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (16, 16), (30, 120, 200))
    srgb = ImageCms.createProfile("sRGB")
    # CMYK as a print shop sends it; its profile here does not fit CMYK, so the plain conversion is used.
    cmyk = rgb.convert("CMYK")
    path = tmp_path / "print.tif"
    cmyk.save(path, icc_profile=ImageCms.ImageCmsProfile(srgb).tobytes())
    plain = tmp_path / "plain.jpg"
    cmyk.save(plain, quality=100)
    for candidate in (path, plain):
        picture = read_picture(candidate)
        assert picture.mode == "RGB" and picture.size == (16, 16)
        assert np.abs(np.asarray(picture, dtype=int) - (30, 120, 200)).max() <= 8


def test_greyscale_palette_and_alpha(tmp_path: Path) -> None:
    Image.new("L", (8, 8), 90).save(tmp_path / "grey.png")
    assert np.asarray(read_picture(tmp_path / "grey.png"))[0, 0].tolist() == [90, 90, 90]

    palette = Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "palette.png")
    assert np.abs(np.asarray(read_picture(tmp_path / "palette.png"), dtype=int)[0, 0] - (10, 200, 30)).max() <= 4

    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    transparent.putpixel((0, 0), (255, 0, 0, 255))
    transparent.save(tmp_path / "alpha.png")
    flat = np.asarray(read_picture(tmp_path / "alpha.png"))
    assert flat[0, 0].tolist() == [255, 0, 0]
    assert flat[5, 5].tolist() == [255, 255, 255]  # transparent becomes paper white, not black

    transparent.convert("P").save(tmp_path / "palette-alpha.png", transparency=0)
    assert read_picture(tmp_path / "palette-alpha.png").mode == "RGB"


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.full((8, 8), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")
    grey = np.asarray(read_picture(tmp_path / "deep.png"))
    assert 125 <= grey[0, 0, 0] <= 130  # Pillow's own convert would give 255


def test_truncated_and_non_pictures_are_refused_in_one_line(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match=r"cut\.png: image: truncated or damaged"):
        read_picture(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageInputError, match="not a picture"):
        read_picture(tmp_path / "notes.png")
    with pytest.raises(ImageInputError, match="file not found"):
        read_picture(tmp_path / "missing.png")


def test_a_pipe_a_device_or_a_file_larger_than_any_picture_is_refused_unread(tmp_path: Path) -> None:
    """A named pipe would block the read for ever, ``/dev/zero`` fill the memory; a file past the
    largest picture is refused from its size (a sparse one here: nothing is written)."""
    pipe = tmp_path / "upload.png"
    os.mkfifo(pipe)
    for path in (pipe, Path("/dev/zero")):
        with pytest.raises(ImageInputError, match=r"not a plain file \(a device, a pipe or a socket\)"):
            read_picture(path)
    huge = tmp_path / "huge.tif"
    with huge.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageInputError, match=r"larger than any picture read here \(at most 1024 MB\)"):
        read_picture(huge)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    # A 1-bit PNG this large compresses to a few kilobytes: the classic bomb.
    Image.new("1", (side, side), 0).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 5_000_000
    with pytest.raises(ImageInputError, match="decompression bomb"):
        read_picture(tmp_path / "bomb.png")


def test_masks_white_on_black_or_painted_on_transparency(tmp_path: Path) -> None:
    mask = Image.new("L", (20, 10), 0)
    mask.paste(255, (0, 0, 5, 10))
    mask.save(tmp_path / "mask.png")
    selected = read_mask(tmp_path / "mask.png", (20, 10))
    assert selected.shape == (10, 20) and selected[:, :5].all() and not selected[:, 5:].any()

    layer = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (10, 0, 20, 10))  # a red brush on a transparent layer
    layer.save(tmp_path / "layer.png")
    selected = read_mask(tmp_path / "layer.png", (20, 10))
    assert selected[:, 10:].all() and not selected[:, :10].any()


def test_a_mask_of_the_pictures_shape_at_another_size_is_brought_to_its_size(tmp_path: Path) -> None:
    """A canvas on a high-density screen exports twice the pixels: "is 40x20 but the picture is 20x10"."""
    for factor, mode in ((2, "L"), (0.5, "RGBA"), (3, "RGB")):
        mask = Image.new(mode, (round(20 * factor), round(10 * factor)), 0)
        mask.paste(
            (255,) * len(mode) if mode != "RGBA" else (255, 0, 0, 255), (0, 0, round(5 * factor), round(10 * factor))
        )
        mask.save(tmp_path / "mask.png")
        selected = read_mask(tmp_path / "mask.png", (20, 10))
        assert selected.shape == (10, 20) and selected[:, :4].all() and not selected[:, 6:].any()


def test_a_mask_that_does_not_match_is_explained(tmp_path: Path) -> None:
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    with pytest.raises(ImageInputError, match=r"mask: is 10x10 but the picture is 20x10"):
        read_mask(tmp_path / "small.png", (20, 10))
    photo = Image.merge("RGB", [Image.effect_noise((20, 10), 90).convert("L") for _ in range(3)])
    photo.save(tmp_path / "photo.png")
    with pytest.raises(ImageInputError, match="is a colour picture"):
        read_mask(tmp_path / "photo.png", (20, 10))
    Image.new("L", (20, 10), 0).save(tmp_path / "empty.png")
    with pytest.raises(ImageInputError, match="selects nothing"):
        read_mask(tmp_path / "empty.png", (20, 10))
