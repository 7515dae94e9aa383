"""Logo placement: an allowed corner with the least clutter, the variant with the best contrast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.charter import Charter
from pipelines.postprocess.colour import relative_luminance
from pipelines.postprocess.layout import Box, box_in_corner, margin

# WCAG 2 asks for 3:1 for graphical objects; below that the colour logo gives way to a monochrome one.
MIN_GRAPHIC_CONTRAST = 3.0


@dataclass(frozen=True)
class LogoPlacement:
    corner: str
    variant: str
    box: Box
    contrast: float


@lru_cache(maxsize=16)
def _load_logo(path: Path) -> Image.Image:
    with Image.open(path) as logo:
        return logo.convert("RGBA")


def logo_contrast(logo: Image.Image, background: float) -> float:
    """Median WCAG contrast of the logo's opaque pixels against a background luminance.

    Per pixel, not of the mean colour: a yellow sun beside a dark-blue word averages to a
    mid-tone that "contrasts" with black while the word itself vanishes into it.
    """
    pixels = np.asarray(logo, dtype=np.float64).reshape(-1, 4)
    opaque = pixels[pixels[:, 3] >= 128, :3]
    luminance = relative_luminance(opaque)
    ratios = (np.maximum(luminance, background) + 0.05) / (np.minimum(luminance, background) + 0.05)
    return float(np.median(ratios))


def _resize_premultiplied(logo: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Resampling straight RGBA bleeds the colour of transparent pixels into the edges (fringes).
    return logo.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")


def place_logo(image: Image.Image, charter: Charter, avoid: list[Box]) -> tuple[Image.Image, LogoPlacement]:
    """Composite the charter logo onto ``image`` and say where and which variant."""
    rules = charter.spec.logo
    width, height = image.size
    variants = {"colour": charter.logo_colour, "light": charter.logo_light, "dark": charter.logo_dark}
    reference = _load_logo(variants["colour"])
    logo_width = math.ceil(rules.min_width_share * min(width, height))
    logo_height = max(1, round(logo_width * reference.height / reference.width))
    clear = math.ceil(rules.clear_zone * logo_height)
    inset = max(margin(width, height), clear)

    luminance = np.asarray(image.convert("L"), dtype=np.float32)
    candidates = []
    for corner in rules.allowed_corners:
        box = box_in_corner(corner, (logo_width, logo_height), (width, height), inset)
        zone = Box(box.left - clear, box.top - clear, box.width + 2 * clear, box.height + 2 * clear)
        if any(zone.overlaps(other) for other in avoid):
            continue
        region = luminance[box.top : box.bottom, box.left : box.right]
        candidates.append((float(region.std()), corner, box))
    if not candidates:
        raise ValueError("no allowed logo corner is free of the label")
    _, corner, box = min(candidates, key=lambda candidate: candidate[0])

    behind = np.asarray(image.crop(box.as_tuple()), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    background = float(relative_luminance(behind))
    contrasts = {name: logo_contrast(_load_logo(path), background) for name, path in variants.items()}
    if contrasts["colour"] >= MIN_GRAPHIC_CONTRAST:
        variant = "colour"
    else:
        variant = max(("light", "dark"), key=contrasts.__getitem__)

    logo = _resize_premultiplied(_load_logo(variants[variant]), (box.width, box.height))
    composed = image.convert("RGBA")
    composed.alpha_composite(logo, dest=(box.left, box.top))
    placement = LogoPlacement(corner=corner.value, variant=variant, box=box, contrast=contrasts[variant])
    return composed.convert("RGB"), placement
