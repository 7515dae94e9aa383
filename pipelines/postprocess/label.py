"""The visible AI label: the charter's text with an "IA" badge on a backing plate."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipelines.charter import Charter
from pipelines.postprocess.colour import relative_luminance
from pipelines.postprocess.layout import Box, box_in_corner, margin

MIN_TEXT_PX = 14  # below this a label is not legible on a phone
TEXT_SHARE = 0.022  # label text height as a share of the short side


@lru_cache(maxsize=32)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.FreeTypeFont(str(path), size)  # this file only, never a system look-alike


def label_text_size(width: int, height: int) -> int:
    return max(MIN_TEXT_PX, round(min(width, height) * TEXT_SHARE))


def draw_ai_label(image: Image.Image, charter: Charter, language: str) -> tuple[Image.Image, Box]:
    """Draw the label in the charter's corner; return the picture and the plate's box."""
    label = charter.spec.ai_label
    palette = sorted((colour.rgb for colour in charter.spec.palette), key=relative_luminance)
    dark, light = palette[0], palette[-1]
    width, height = image.size
    size = label_text_size(width, height)
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
    return composed, plate
