"""The charter's logos as pixels: a PNG or WebP as it is, an SVG (what brand kits ship) drawn by
resvg, large enough for any format, then resampled like a PNG. An SVG logo is read as safely as a
template (``visuels.inputs.svg``), and its lettering must be outlines: a logo's letters may not
depend on fonts (no system font is ever looked up)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image
from visuels.inputs.svg import SvgRefusedError, draw_scalable, inline_pictures, local_name, read_svg, to_text

SVG_SUFFIXES = (".svg", ".svgz")
LOGO_SIDE = 2048  # an SVG logo's longest side once drawn: an A3 poster at 300 dpi sets it at about 800


@lru_cache(maxsize=16)
def read_logo(path: Path) -> Image.Image:
    """The logo at ``path`` in RGBA pixels, read (an SVG drawn) once per process: read only, callers
    composite it, never change it. :class:`SvgRefusedError` for an SVG that is unsafe or has live
    text, ``OSError`` for a picture Pillow cannot read."""
    if path.suffix.lower() not in SVG_SUFFIXES:
        with Image.open(path) as image:
            return image.convert("RGBA")
    root = read_svg(path)
    if any(local_name(element.tag) == "text" for element in root.iter()):
        raise SvgRefusedError("its lettering is live text: convert it to outlines (paths)")
    inline_pictures(root, path.parent)
    return draw_scalable(to_text(root), LOGO_SIDE)


@lru_cache(maxsize=16)
def logo_size(path: Path) -> tuple[int, int]:
    """The logo's size in pixels, from a picture's header alone (an SVG is drawn: its size is its drawing's)."""
    if path.suffix.lower() in SVG_SUFFIXES:
        return read_logo(path).size
    with Image.open(path) as logo:
        return logo.size
