"""Reading pictures and masks that people bring: whatever the file, 8-bit sRGB pixels or one clear error.

Every command that reads a picture a person supplies (retouch, finalize, the studio) goes
through here: EXIF orientation applied; CMYK, greyscale, 16-bit, palette and alpha images
converted (through their ICC profile when they carry one); a pixel-count limit against
decompression bombs; truncated or unreadable files refused with one line.
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from visuels.errors import Text, VisuelsError

# The pictures people bring (photos, references), by the media type a C2PA ingredient gives them:
# what cameras, phones and design tools export, TIFF as photographers deliver it. HEIC needs a
# plug-in Pillow lacks.
PICTURE_MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
}
PICTURE_SUFFIXES = tuple(PICTURE_MEDIA_TYPES)
XMP_PNG_KEY = "XML:com.adobe.xmp"  # the iTXt keyword under which PNG files carry XMP
MAX_PIXELS = 120_000_000  # a 13,000 x 9,000 poster; above: refused as a possible decompression bomb
MAX_FILE_BYTES = 2**30  # a file of MAX_PIXELS pixels, 16-bit RGBA, uncompressed (a print TIFF): 960 MB
MASK_THRESHOLD = 128  # mask pixels at least this bright (or opaque) are repainted
MAX_MASK_CHROMA = 24  # a mask is black and white: channels further apart than this mean a colour picture
BACKGROUND = (255, 255, 255)  # transparent areas become paper white, as a printer would show them
# The brands of the HEIF pictures phones save (ISO/IEC 23008-12), as their file's "ftyp" box names them.
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB: itself when it already is (``convert`` would copy it: a full frame, each time)."""
    return image if image.mode == "RGB" else image.convert("RGB")


class ImageInputError(VisuelsError):
    """A picture or mask that cannot be read, or does not fit what it is used with."""


def read_file(path: Path, field: str) -> bytes:
    """A supplied file's bytes; a missing file, a folder, anything but a plain file (a pipe would
    never end its read, ``/dev/zero`` never stop) and a file larger than any picture are said in
    one line."""
    try:
        found = path.stat()
        if stat.S_ISDIR(found.st_mode):
            raise ImageInputError(path, field, "is a folder, not a picture")
        if not stat.S_ISREG(found.st_mode):
            raise ImageInputError(path, field, "not a plain file (a device, a pipe or a socket), not a picture")
        data = b""
        if found.st_size <= MAX_FILE_BYTES:
            with path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)  # to the limit: a file may grow while it is read
    except FileNotFoundError:
        raise ImageInputError(path, field, "file not found") from None
    except PermissionError:
        raise ImageInputError(path, field, "no permission to read it") from None
    if found.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
        raise ImageInputError(
            path, field, "larger than any picture read here (at most {limit} MB)", limit=MAX_FILE_BYTES // 2**20
        )
    return data


def unreadable_kind(data: bytes) -> Text:
    """Why a file no reader here decodes is not a picture, from its first bytes."""
    return mistaken_kind(data) or Text("not a picture that can be read (PNG, JPEG, WebP, TIFF, AVIF)")


def mistaken_kind(data: bytes) -> Text | None:
    """The kinds of files people bring for a picture that are not read here, named from their first
    bytes with what to do instead; None for any other."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return Text("an HEIC/HEIF photo (as phones save them), which is not read here: export it as JPEG or PNG")
    if data.startswith(b"%PDF"):
        return Text("a PDF document, not a picture: export the page as PNG or JPEG")
    if b"<svg" in data[:2048].lower():
        return Text("an SVG drawing, not a picture: export it as PNG")
    return None


def _open(path: Path, field: str, data: bytes | None = None) -> Image.Image:
    """The file (or its ``data``, already read) decoded in full, its size checked before any pixel is decoded."""
    data = read_file(path, field) if data is None else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageInputError(
                    path,
                    field,
                    "{width}x{height} is more than {MAX_PIXELS:,} pixels: refused (decompression bomb?)",
                    width=image.width,
                    height=image.height,
                    MAX_PIXELS=MAX_PIXELS,
                )
            image.load()
        except Image.DecompressionBombError:
            raise ImageInputError(
                path, field, "more than {MAX_PIXELS:,} pixels: refused (decompression bomb?)", MAX_PIXELS=MAX_PIXELS
            ) from None
        except UnidentifiedImageError:
            raise ImageInputError(path, field, unreadable_kind(data)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageInputError(path, field, "truncated or damaged picture ({exc})", exc=str(exc)) from None
    return image


def _sixteen_bit_to_eight(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale ("I;16", "I") scaled to 8 bits; Pillow's own convert would clip at 255."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(np.round(values * 255.0 / top), 0, 255).astype(np.uint8), mode="L")


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB pixels in sRGB: through the embedded ICC profile when there is one (CMYK, Adobe RGB, P3)."""
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode="RGB", renderingIntent=0
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the plain conversion below is still a fair picture
    return image.convert("RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, alpha composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _sixteen_bit_to_eight(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return _to_srgb(image)


def read_picture_and_xmp(path: Path, field: str = "image", data: bytes | None = None) -> tuple[Image.Image, str | None]:
    """An RGB picture upright as its camera or editor meant it, and its XMP packet if it has one;
    ``data``: the file's bytes when the caller has read them already."""
    image = _open(path, field, data)
    xmp = image.info.get(XMP_PNG_KEY) or image.info.get("xmp")
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError):
        upright = image  # unreadable EXIF: keep the pixels as stored
    return _flatten(upright), xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp


def read_picture(path: Path, field: str = "image") -> Image.Image:
    """An RGB picture upright as its camera or editor meant it; ``ImageInputError`` otherwise."""
    return read_picture_and_xmp(path, field)[0]


def read_mask(path: Path, size: tuple[int, int], field: str = "mask") -> np.ndarray:
    """A boolean H×W mask (True: repaint) for a picture of ``size``.

    A mask is white where to repaint on black, or painted areas on a transparent layer (its
    alpha channel is then the mask). One of the picture's shape at another size (a canvas drawn at
    twice the pixels on a high-density screen, a half-size export) is brought to its size. Size and
    colour are explained when they do not match.
    """
    image = ImageOps.exif_transpose(_open(path, field))
    if image.size != size and _same_shape(image.size, size):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB").resize(size, Image.Resampling.BILINEAR)
    if image.size != size:
        raise ImageInputError(
            path,
            field,
            "is {width}x{height} but the picture is {picture_width}x{picture_height}: paint the mask over the picture "
            "itself, at its size",
            width=image.width,
            height=image.height,
            picture_width=size[0],
            picture_height=size[1],
        )
    if _has_alpha(image):
        alpha = np.asarray(image.convert("RGBA").getchannel("A"))
        if alpha.min() < MASK_THRESHOLD:  # a real transparent layer: what is painted is the mask
            selected = alpha >= MASK_THRESHOLD
            return _non_empty(selected, path, field)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _sixteen_bit_to_eight(image)
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    if np.percentile(chroma, 99) > MAX_MASK_CHROMA:
        raise ImageInputError(
            path,
            field,
            "is a colour picture ({mode}): a mask is white where to repaint and black elsewhere, or "
            "painted strokes on a transparent layer",
            mode=image.mode,
        )
    return _non_empty(rgb.mean(axis=2) >= MASK_THRESHOLD, path, field)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _same_shape(mask: tuple[int, int], picture: tuple[int, int]) -> bool:
    """Whether ``mask`` is ``picture``'s width and height scaled by one factor, to the pixel."""
    return (
        abs(mask[0] * picture[1] / picture[0] - mask[1]) <= 1 and abs(mask[1] * picture[0] / picture[1] - mask[0]) <= 1
    )


def _non_empty(selected: np.ndarray, path: Path, field: str) -> np.ndarray:
    if not selected.any():
        raise ImageInputError(path, field, "selects nothing: paint in white (or opaque) where to repaint")
    return selected
