"""Commune name and campaign headline in the charter font, fitted and placed clear of logo and label.

Long names are broken after hyphens and at spaces and set smaller until they fit the width and
the allowed number of lines; the block then goes in the free band above (or below) the other
elements, and a collision check says whether anything still overlaps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from visuels.inputs.colour import contrast_ratio, darkest_and_lightest, relative_luminance
from visuels.inputs.fonts import typographic
from visuels.postprocess import findings
from visuels.postprocess.layout import Box, app_covered

SIZE_STEP = 0.92  # each try sets the text this much smaller
LINE_SPACING = 1.15
PLATE_OPACITY = 0.82
MIN_TEXT_CONTRAST = 4.5  # WCAG AA for text


@lru_cache(maxsize=64)
def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.FreeTypeFont(str(path), size)


# French typography: "Saint-|Genest" or "Sainte-|Croix" must not end a line.
NO_BREAK_AFTER = {"saint-", "sainte-", "st-", "ste-"}


def break_points(text: str) -> list[tuple[str, str]]:
    """Pieces of ``text`` with what joins each to the next: "" after a hyphen, " " at a space.

    A hyphen after "Saint" or "Sainte" is no break point: the piece stays with the next one.
    """
    pieces: list[tuple[str, str]] = []
    for word in text.split():
        parts = re.findall(r"[^-]+-?|-", word)
        merged: list[str] = []
        for part in parts:
            if merged and merged[-1].lower() in NO_BREAK_AFTER:
                merged[-1] += part
            else:
                merged.append(part)
        pieces += [(part, "") for part in merged[:-1]] + [(merged[-1], " ")]
    return pieces


def wrap(text: str, typeface: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    """Greedy line filling at the break points; a piece wider than the line stays whole."""
    lines: list[str] = []
    current = ""
    joiner = ""
    for piece, next_joiner in break_points(text):
        candidate = f"{current}{joiner}{piece}" if current else piece
        if current and typeface.getlength(candidate) > max_width:
            lines.append(current)
            candidate = piece
        current, joiner = candidate, next_joiner
    if current:
        lines.append(current)
    return lines


@dataclass(frozen=True)
class FittedText:
    lines: list[str]
    size: int
    fits: bool


def fit(text: str, font_path: Path, start_size: int, min_size: int, max_width: int, max_lines: int) -> FittedText:
    """The largest size (down to ``min_size``) at which ``text`` fits ``max_width`` in ``max_lines``."""
    size = start_size
    while True:
        typeface = font(font_path, size)
        lines = wrap(text, typeface, max_width)
        fits = len(lines) <= max_lines and all(typeface.getlength(line) <= max_width for line in lines)
        if fits or size <= min_size:
            return FittedText(lines=lines, size=size, fits=fits)
        size = max(min_size, int(size * SIZE_STEP))


@dataclass
class TextBlock:
    """What was drawn, and what the compliance check needs to know about it."""

    box: Box
    name: FittedText
    below: list[FittedText]  # the headline and the call to action, those given
    contrast: float
    plate: bool
    collisions: list[str] = field(default_factory=list)
    note: str | None = None  # why the text is not in the series' usual tone
    required_contrast: float = MIN_TEXT_CONTRAST  # WCAG: 4.5:1, 3:1 for large text (templates)

    @property
    def overflow(self) -> bool:
        return not self.name.fits or any(not fitted.fits for fitted in self.below)


def _block_height(name: FittedText, below: list[FittedText]) -> int:
    height = round(len(name.lines) * name.size * LINE_SPACING)
    for fitted in below:
        height += round((len(fitted.lines) * LINE_SPACING + 0.4) * fitted.size)
    return height


def free_band(canvas: tuple[int, int], obstacles: list[Box], inset: int) -> tuple[int, int]:
    """Top and bottom of the vertical band left for text, clear of every obstacle's rows."""
    width, height = canvas
    covered_top, covered_bottom = app_covered(width, height)
    middle = height / 2
    tops = [box.bottom for box in obstacles if box.top < middle]
    bottoms = [box.top for box in obstacles if box.bottom > middle]
    upper = max([inset + covered_top, *[bottom + inset // 2 for bottom in tops]])
    lower = min([height - inset - covered_bottom, *[top - inset // 2 for top in bottoms]])
    return upper, lower


def background_range(image: Image.Image, box: Box) -> tuple[float, float]:
    """5th and 95th percentile luminance behind ``box`` (on a reduced copy: percentiles barely move)."""
    region = image.crop(box.as_tuple()).convert("RGB")
    region.thumbnail((256, 256), Image.Resampling.BOX)
    luminance = relative_luminance(np.asarray(region, dtype=np.float64).reshape(-1, 3))
    low, high = np.percentile(luminance, [5, 95])
    return float(low), float(high)


def worst_contrast(colour: tuple[int, int, int], background: tuple[float, float]) -> float:
    """Contrast of ``colour`` against the darker and the lighter end of the background."""
    text = relative_luminance(colour)
    return min(contrast_ratio(text, background[0]), contrast_ratio(text, background[1]))


def _with_plate(image: Image.Image, box: Box, pad: int, colour: tuple[int, int, int]) -> Image.Image:
    """``image`` with a translucent rounded plate of ``colour`` around ``box``."""
    composed = image.convert("RGB")
    outer = (box.left - pad, box.top - pad, box.right + pad, box.bottom + pad)
    region = composed.crop(outer).convert("RGBA")
    overlay = Image.new("RGBA", region.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rounded_rectangle(
        (0, 0, region.width - 1, region.height - 1), radius=pad, fill=(*colour, round(255 * PLATE_OPACITY))
    )
    region.alpha_composite(overlay)
    composed.paste(region.convert("RGB"), outer[:2])
    return composed


def draw_text_block(
    image: Image.Image,
    commune: str,
    headline: str,
    font_path: Path,
    palette: list[tuple[int, int, int]],
    obstacles: list[Box],
    position: str,
    name_share: float,
    headline_share: float,
    min_px: int,
    max_lines: int,
    inset: int,
    call_to_action: str = "",
) -> tuple[Image.Image, TextBlock]:
    """Fit, place and draw the commune name (then headline and call to action, at the headline's size);
    report size, contrast and collisions."""
    commune = typographic(commune)
    texts_below = [typographic(text) for text in (headline, call_to_action) if text]
    width, height = image.size
    short = min(width, height)
    upper, lower = free_band((width, height), obstacles, inset)
    name_start = max(min_px, round(short * name_share))
    headline_start = max(min_px, round(short * headline_share))
    # The plate must stay inside the margins the logo and label keep: the text
    # is fitted inside the inset minus the plate's padding (at its largest: the starting size's).
    pad = max(4, name_start // 5)
    max_width = width - 2 * (inset + pad)

    # Shrink both texts together until the block fits the free band's height too.
    scale = 1.0
    while True:
        name = fit(commune, font_path, max(min_px, round(name_start * scale)), min_px, max_width, max_lines)
        below = [
            fit(text, font_path, max(min_px, round(headline_start * scale)), min_px, max_width, 2)
            for text in texts_below
        ]
        block_height = _block_height(name, below)
        if block_height <= lower - upper - 2 * pad or name.size <= min_px:
            break
        scale *= SIZE_STEP

    # The block is as wide as its longest line, so a plate behind it is fitted to the text.
    text_width = max(font(font_path, fitted.size).getlength(line) for fitted in (name, *below) for line in fitted.lines)
    top = upper + pad if position == "top" else lower - pad - block_height
    box = Box(inset + pad, top, min(max_width, ceil(text_width)), block_height)
    overlapped = [index for index, other in enumerate(obstacles) if box.overlaps(other)]
    collisions = [findings.TEXT_OVERLAPS.format(index=index) for index in overlapped]
    if box.top < 0 or box.bottom > height:
        collisions.append(findings.TEXT_RUNS_OFF)

    # One tone for every picture of a series: light text on a dark plate; the other way round
    # only where the plate cannot carry the text (the placement then says why).
    dark, light = darkest_and_lightest(palette)
    colour, plate_colour, note = light, dark, None
    composed = _with_plate(image, box, pad, plate_colour)
    contrast = worst_contrast(colour, background_range(composed, box))
    if contrast < MIN_TEXT_CONTRAST:
        inverse = _with_plate(image, box, pad, light)
        inverse_contrast = worst_contrast(dark, background_range(inverse, box))
        if inverse_contrast > contrast:
            note = findings.DARK_TEXT.format(contrast=f"{contrast:.1f}")
            colour, composed, contrast = dark, inverse, inverse_contrast

    draw = ImageDraw.Draw(composed)
    y = float(box.top)
    for line in name.lines:
        draw.text((box.left, round(y)), line, font=font(font_path, name.size), fill=colour, anchor="la")
        y += name.size * LINE_SPACING
    for fitted in below:
        y += 0.4 * fitted.size
        for line in fitted.lines:
            draw.text((box.left, round(y)), line, font=font(font_path, fitted.size), fill=colour, anchor="la")
            y += fitted.size * LINE_SPACING
    block = TextBlock(box=box, name=name, below=below, contrast=contrast, plate=True, collisions=collisions, note=note)
    return composed, block
