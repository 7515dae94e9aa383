"""Logo placement: the charter's first allowed corner unless the logo cannot be read there,
in its most legible variant."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from visuels.inputs.charter import Charter
from visuels.inputs.colour import relative_luminance
from visuels.inputs.logo_fit import logo_geometry
from visuels.inputs.logos import read_logo
from visuels.postprocess import findings
from visuels.postprocess.layout import Box, box_in_corner, margin

# WCAG 2 asks for 3:1 for graphical objects; below that the colour logo gives way to a monochrome one.
MIN_GRAPHIC_CONTRAST = 3.0


CLUTTER_SLACK = 1.15  # corners this close to the calmest one compete on contrast instead


@dataclass(frozen=True)
class LogoPlacement:
    corner: str
    variant: str
    box: Box
    zone: Box  # the logo and its clear zone
    contrast: float
    width_ok: bool
    clear_zone_ok: bool
    note: str | None = None  # why the logo is not in its usual corner


def clutter(region: np.ndarray) -> float:
    """Edge density plus luminance spread of a greyscale region (both in 0-255 units)."""
    gradient = cv2.magnitude(cv2.Sobel(region, cv2.CV_32F, 1, 0), cv2.Sobel(region, cv2.CV_32F, 0, 1))
    return float(gradient.mean() + region.std())


@lru_cache(maxsize=16)
def _opaque_luminance(path: Path) -> np.ndarray:
    """Relative luminance of the opaque pixels of a small copy of the logo."""
    small = read_logo(path).copy()
    small.thumbnail((160, 160), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64).reshape(-1, 4)
    return relative_luminance(pixels[pixels[:, 3] >= 128, :3])


def logo_contrast(path: Path, background: float) -> float:
    """Median WCAG contrast of the logo's opaque pixels against a background luminance.

    Per pixel, not of the mean colour: a yellow sun beside a dark-blue word averages to a
    mid-tone that "contrasts" with black while the word itself vanishes into it.
    """
    luminance = _opaque_luminance(path)
    ratios = (np.maximum(luminance, background) + 0.05) / (np.minimum(luminance, background) + 0.05)
    return float(np.median(ratios))


def resize_premultiplied(logo: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Resampling straight RGBA bleeds the colour of transparent pixels into the edges (fringes).
    return logo.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")


@lru_cache(maxsize=32)
def scaled_logo(path: Path, size: tuple[int, int]) -> Image.Image:
    """The logo at ``path`` resampled to ``size``, once per worker process: every picture of a
    format places it at the same size. Read only: callers composite it, never change it."""
    return resize_premultiplied(read_logo(path), size)


def place_logo(image: Image.Image, charter: Charter, avoid: list[Box]) -> tuple[Image.Image, LogoPlacement]:
    """Composite the charter logo in its usual corner (else a calm, legible one), in its most legible variant."""
    rules = charter.spec.logo
    width, height = image.size
    variants = {"colour": charter.logo_colour, "light": charter.logo_light, "dark": charter.logo_dark}
    logo_width, logo_height, clear = logo_geometry(charter, width, height)
    inset = max(margin(width, height), clear)

    candidates = []
    for corner in rules.allowed_corners:
        box = box_in_corner(corner, (logo_width, logo_height), (width, height), inset)
        zone = Box(box.left - clear, box.top - clear, box.width + 2 * clear, box.height + 2 * clear)
        if any(zone.overlaps(other) for other in avoid):
            continue
        behind = np.asarray(image.crop(box.as_tuple()), dtype=np.float64).reshape(-1, 3).mean(axis=0)
        background = float(relative_luminance(behind))
        contrasts = {name: logo_contrast(path, background) for name, path in variants.items()}
        variant = "colour" if contrasts["colour"] >= MIN_GRAPHIC_CONTRAST else max(("light", "dark"), key=contrasts.get)
        # Grey levels of the corner alone: converting the whole picture costs more than every corner.
        inside = (max(box.left, 0), max(box.top, 0), min(box.right, width), min(box.bottom, height))
        region = np.asarray(image.crop(inside).convert("L"), dtype=np.float32)
        candidates.append((clutter(region), contrasts[variant], corner, box, zone, variant))
    if not candidates:
        raise ValueError("no allowed logo corner is free of the label")
    # The charter's first allowed corner, on every picture of a series, unless the logo cannot be
    # read there; then the calmest corners compete on contrast, and the placement says why.
    note = None
    preferred = candidates[0]
    if preferred[1] >= MIN_GRAPHIC_CONTRAST:
        _, contrast, corner, box, zone, variant = preferred
    else:
        calmest = min(candidate[0] for candidate in candidates)
        calm = [candidate for candidate in candidates if candidate[0] <= calmest * CLUTTER_SLACK + 1e-6]
        _, contrast, corner, box, zone, variant = max(calm, key=lambda candidate: candidate[1])
        if corner != preferred[2]:
            note = findings.LOGO_MOVED.format(
                corner=preferred[2].value.replace("_", " "),
                contrast=f"{preferred[1]:.1f}",
                minimum=f"{MIN_GRAPHIC_CONTRAST:g}",
            )

    logo = scaled_logo(variants[variant], (box.width, box.height))
    # Composite on the logo's own region only: converting the whole picture costs more than the rest.
    composed = image.convert("RGB")
    region = composed.crop(box.as_tuple()).convert("RGBA")
    region.alpha_composite(logo)
    composed.paste(region.convert("RGB"), (box.left, box.top))
    placement = LogoPlacement(
        corner=corner.value,
        variant=variant,
        box=box,
        zone=zone,
        contrast=contrast,
        width_ok=box.width >= rules.min_width_share * min(width, height),
        clear_zone_ok=zone.left >= 0 and zone.top >= 0 and zone.right <= width and zone.bottom <= height,
        note=note,
    )
    return composed, placement
