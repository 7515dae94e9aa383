"""The visible AI label: the charter's text with an "IA" badge on a backing plate."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from visuels.inputs.charter import Charter
from visuels.inputs.colour import contrast_ratio, darkest_and_lightest, relative_luminance
from visuels.postprocess.layout import Box, box_in_corner, margin


@lru_cache(maxsize=32)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.FreeTypeFont(str(path), size)  # this file only, never a system look-alike


@dataclass(frozen=True)
class LabelPlacement:
    box: Box
    text_px: int
    contrast: float


def label_text_size(charter: Charter, width: int, height: int) -> int:
    label = charter.spec.ai_label
    return max(label.min_text_px, round(min(width, height) * label.text_share))


def draw_ai_label(image: Image.Image, charter: Charter, language: str) -> tuple[Image.Image, LabelPlacement]:
    """Draw the label on an opaque plate in the charter's corner; say where, how big, what contrast."""
    label = charter.spec.ai_label
    dark, light = darkest_and_lightest([colour.rgb for colour in charter.spec.palette])
    width, height = image.size
    size = label_text_size(charter, width, height)
    font = _font(charter.font, size)
    text = label.text[language]

    padding = max(3, size // 3)
    badge_box = font.getbbox(label.badge, anchor="lt")
    text_box = font.getbbox(text, anchor="lt")
    badge_width = badge_box[2] + 2 * padding
    content_height = max(badge_box[3], text_box[3])
    plate_size = (badge_width + padding + text_box[2] + 2 * padding, content_height + 4 * padding)
    plate = box_in_corner(label.position, plate_size, (width, height), margin(width, height))

    composed = image.convert("RGB")
    draw = ImageDraw.Draw(composed)
    draw.rounded_rectangle(plate.as_tuple(), radius=padding, fill=dark)
    badge_left, inner_top = plate.left + padding, plate.top + padding
    draw.rounded_rectangle(
        (badge_left, inner_top, badge_left + badge_width, plate.bottom - padding), radius=padding // 2, fill=light
    )
    text_top = inner_top + padding
    draw.text((badge_left + padding, text_top), label.badge, font=font, fill=dark, anchor="lt")
    draw.text((badge_left + badge_width + padding, text_top), text, font=font, fill=light, anchor="lt")
    contrast = contrast_ratio(relative_luminance(light), relative_luminance(dark))
    return composed, LabelPlacement(box=plate, text_px=size, contrast=contrast)
