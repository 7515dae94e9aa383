"""The ISCC Content-Code Image of a picture (ISO 24138, with iscc-core): the soft binding the C2PA
soft-binding algorithm list registers as ``io.iscc.v0``, computed offline. C2PA 2.2 says a soft
binding shall use a registered algorithm; ours (the watermark's payload) is kept beside it.

The picture is normalised as the ISCC specifies before hashing: turned by its EXIF orientation,
flattened on white, its empty (uniform) borders cropped, in grey levels, resized to 32 x 32.
The hash is iscc-core's, its discrete cosine transform computed with NumPy (iscc-core's is pure
Python: 2 ms of every exported picture); where that could change a bit, iscc-core decides.
"""

from __future__ import annotations

from functools import cache

import iscc_core
import numpy as np
from PIL import Image, ImageChops, ImageOps

ALGORITHM = "io.iscc.v0"
BITS = 64
# Bits (of 64) two codes may differ by and still name one picture: a re-encoded or resized copy
# gives the same code (tests/test_detect.py); a campaign's sibling pictures (one commune, other
# texts) differ by 6 to 16, a crop of a tenth by about 26.
MATCH_BITS = 4
SIDE = 32  # the normalised picture's side
# A coefficient this close to the median is left to iscc-core: NumPy's sums and iscc-core's
# differ by about 1e-10 at most (coefficients reach 32 * 32 * 255), far inside it.
TIE_MARGIN = 1e-6


def image_code(picture: Image.Image | np.ndarray) -> str:
    """``ISCC:EEA…``, the picture's 64-bit ISCC Content-Code Image. ``picture``: a picture as read,
    or the RGB pixels (h, w, 3 uint8) a picture is being made of (upright, opaque: nothing to undo)."""
    if isinstance(picture, np.ndarray):
        grey = Image.fromarray(picture).convert("L")
    else:
        upright = ImageOps.exif_transpose(picture)
        if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
            rgba = upright.convert("RGBA")
            upright = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        grey = upright.convert("L")
    border = ImageChops.difference(grey, Image.new("L", grey.size, grey.getpixel((0, 0)))).getbbox()
    if border:  # a picture of one colour has no content inside its border: kept whole
        grey = grey.crop(border)
    small = grey.resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    return _code_of_normalised(small.tobytes())


@cache
def _cosines() -> np.ndarray:
    """The 8 lowest frequencies of iscc-core's (unscaled) DCT-II over 32 samples: 8 x 32."""
    frequencies, samples = np.indices((8, SIDE))
    return np.cos(np.pi / SIDE * (samples + 0.5) * frequencies)


def _code_of_normalised(pixels: bytes) -> str:
    """iscc-core's ``gen_image_code_v0`` of 32 x 32 grey pixels, at 64 bits: the top-left 8 x 8
    of the picture's 2-D DCT, each coefficient compared with their median."""
    grey = np.frombuffer(pixels, dtype=np.uint8).reshape(SIDE, SIDE).astype(np.float64)
    cosines = _cosines()
    coefficients = (cosines @ grey @ cosines.T).ravel()
    median = float(np.median(coefficients))
    if np.abs(coefficients - median).min() <= TIE_MARGIN:  # a tie (a flat picture): the reference decides
        return iscc_core.gen_image_code_v0(pixels, bits=BITS)["iscc"]
    digest = np.packbits(coefficients > median).tobytes()
    code = iscc_core.encode_component(
        mtype=iscc_core.MT.CONTENT, stype=iscc_core.ST_CC.IMAGE, version=iscc_core.VS.V0, bit_length=BITS, digest=digest
    )
    return f"ISCC:{code}"


def distance(first: str, second: str) -> int:
    """How many bits two image codes differ by."""
    return iscc_core.iscc_distance(first, second)
