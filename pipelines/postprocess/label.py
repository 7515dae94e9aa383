"""The visible AI label: the charter's text ("générée", or "modifiée" for an edited or photo-based
picture) with an "IA" badge on a backing plate, in the charter's corner (top right by default),
moved inward where the charter asks it to stay inside a platform's centred crops."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from visuels.inputs.charter import Charter, Corner
from visuels.inputs.colour import contrast_ratio, darkest_and_lightest, relative_luminance
from visuels.postprocess.crops import crops_kept, inside, safe_area
from visuels.postprocess.layout import Box, box_in_corner, margin


@lru_cache(maxsize=32)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.FreeTypeFont(str(path), size)  # this file only, never a system look-alike


@dataclass(frozen=True)
class LabelPlacement:
    box: Box
    text_px: int
    contrast: float
    crops: dict[str, bool]  # whether the label is wholly inside each centred crop (1:1, 4:5, 9:16, 16:9)


def label_text_size(charter: Charter, width: int, height: int) -> int:
    label = charter.spec.ai_label
    return max(label.min_text_px, round(min(width, height) * label.text_share))


def label_plate(charter: Charter, language: str, size: int, edited: bool = False) -> tuple[Image.Image, float]:
    """The label at text size ``size``: an opaque plate with the badge and the text (RGBA, transparent
    around its rounded corners), and the contrast of its text on the plate. ``edited``: the text of
    an edited or photo-based picture ("Image modifiée par IA")."""
    label = charter.spec.ai_label
    dark, light = darkest_and_lightest([colour.rgb for colour in charter.spec.palette])
    font = _font(charter.font, size)
    text = (label.edited_text if edited else label.text)[language]
    padding = max(3, size // 3)
    badge_box = font.getbbox(label.badge, anchor="lt")
    # Both texts' plates have one size, the larger: an edit's label drawn over the original's covers it.
    text_boxes = [font.getbbox(words[language], anchor="lt") for words in (label.text, label.edited_text)]
    text_width, text_height = max(box[2] for box in text_boxes), max(box[3] for box in text_boxes)
    badge_width = badge_box[2] + 2 * padding
    content_height = max(badge_box[3], text_height)
    width, height = badge_width + padding + text_width + 2 * padding, content_height + 4 * padding
    # Pillow's rectangles include their last row and column: the plate covers (width + 1) x (height + 1).
    plate = Image.new("RGBA", (width + 1, height + 1))
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((0, 0, width, height), radius=padding, fill=dark)
    draw.rounded_rectangle((padding, padding, padding + badge_width, height - padding), radius=padding // 2, fill=light)
    text_top = 2 * padding
    draw.text((2 * padding, text_top), label.badge, font=font, fill=dark, anchor="lt")
    draw.text((padding + badge_width + padding, text_top), text, font=font, fill=light, anchor="lt")
    return plate, contrast_ratio(relative_luminance(light), relative_luminance(dark))


def label_box(charter: Charter, size: tuple[int, int], canvas: tuple[int, int]) -> Box:
    """Where a label of ``size`` goes: the charter's corner; moved inward, as little as it takes, to
    stay inside the centred crops the charter names, where it fits there (else the corner)."""
    width, height = canvas
    corner = charter.spec.ai_label.position
    inset = margin(width, height)
    box = box_in_corner(corner, size, canvas, inset)
    area = safe_area(width, height, list(charter.spec.ai_label.keep_in_crops))
    if inside(box, area):
        return box
    if corner in (Corner.top_left, Corner.bottom_left):
        left = max(box.left, area.left + inset)
    else:
        left = min(box.left, area.right - inset - size[0])
    if corner in (Corner.top_left, Corner.top_right):
        top = max(box.top, area.top + inset)
    else:
        top = min(box.top, area.bottom - inset - size[1])
    moved = Box(left, top, *size)
    return moved if inside(moved, area) else box


def draw_ai_label(
    image: Image.Image, charter: Charter, language: str, edited: bool = False
) -> tuple[Image.Image, LabelPlacement]:
    """Draw the label on an opaque plate (see ``label_box``); say where, how big, what contrast, and
    which centred crops keep it."""
    width, height = image.size
    size = label_text_size(charter, width, height)
    plate, contrast = label_plate(charter, language, size, edited)
    box = label_box(charter, (plate.width - 1, plate.height - 1), (width, height))
    composed = image.convert("RGB")
    composed.paste(plate, (box.left, box.top), plate)
    return composed, LabelPlacement(box=box, text_px=size, contrast=contrast, crops=crops_kept(box, width, height))
