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


def label_plate(charter: Charter, language: str, size: int) -> tuple[Image.Image, float]:
    """The label at text size ``size``: an opaque plate with the badge and the text (RGBA, transparent
    around its rounded corners), and the contrast of its text on the plate."""
    label = charter.spec.ai_label
    dark, light = darkest_and_lightest([colour.rgb for colour in charter.spec.palette])
    font = _font(charter.font, size)
    text = label.text[language]
    padding = max(3, size // 3)
    badge_box = font.getbbox(label.badge, anchor="lt")
    text_box = font.getbbox(text, anchor="lt")
    badge_width = badge_box[2] + 2 * padding
    content_height = max(badge_box[3], text_box[3])
    width, height = badge_width + padding + text_box[2] + 2 * padding, content_height + 4 * padding
    # Pillow's rectangles include their last row and column: the plate covers (width + 1) x (height + 1).
    plate = Image.new("RGBA", (width + 1, height + 1))
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((0, 0, width, height), radius=padding, fill=dark)
    draw.rounded_rectangle((padding, padding, padding + badge_width, height - padding), radius=padding // 2, fill=light)
    text_top = 2 * padding
    draw.text((2 * padding, text_top), label.badge, font=font, fill=dark, anchor="lt")
    draw.text((padding + badge_width + padding, text_top), text, font=font, fill=light, anchor="lt")
    return plate, contrast_ratio(relative_luminance(light), relative_luminance(dark))


def draw_ai_label(image: Image.Image, charter: Charter, language: str) -> tuple[Image.Image, LabelPlacement]:
    """Draw the label on an opaque plate in the charter's corner; say where, how big, what contrast."""
    width, height = image.size
    size = label_text_size(charter, width, height)
    plate, contrast = label_plate(charter, language, size)
    plate_size = (plate.width - 1, plate.height - 1)
    box = box_in_corner(charter.spec.ai_label.position, plate_size, (width, height), margin(width, height))
    composed = image.convert("RGB")
    composed.paste(plate, (box.left, box.top), plate)
    return composed, LabelPlacement(box=box, text_px=size, contrast=contrast)
