"""The ISCC Content-Code Image of a picture (ISO 24138, with iscc-core): the soft binding the C2PA
soft-binding algorithm list registers as ``io.iscc.v0``, computed offline. C2PA 2.2 says a soft
binding shall use a registered algorithm; ours (the watermark's payload) is kept beside it.

The picture is normalised as the ISCC specifies before hashing: turned by its EXIF orientation,
flattened on white, its empty (uniform) borders cropped, in grey levels, resized to 32 x 32.
"""

from __future__ import annotations

import iscc_core
from PIL import Image, ImageChops, ImageOps

ALGORITHM = "io.iscc.v0"
BITS = 64
# Bits (of 64) two codes may differ by and still name one picture: a re-encoded or resized copy
# gives the same code (tests/test_detect.py); a campaign's sibling pictures (one commune, other
# texts) differ by 6 to 16, a crop of a tenth by about 26.
MATCH_BITS = 4


def image_code(picture: Image.Image) -> str:
    """``ISCC:EEA…``, the picture's 64-bit ISCC Content-Code Image."""
    upright = ImageOps.exif_transpose(picture)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        upright = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    grey = upright.convert("L")
    border = ImageChops.difference(grey, Image.new("L", grey.size, grey.getpixel((0, 0)))).getbbox()
    if border:  # a picture of one colour has no content inside its border: kept whole
        grey = grey.crop(border)
    small = grey.resize((32, 32), Image.Resampling.BICUBIC)
    return iscc_core.gen_image_code_v0(small.tobytes(), bits=BITS)["iscc"]


def distance(first: str, second: str) -> int:
    """How many bits two image codes differ by."""
    return iscc_core.iscc_distance(first, second)
