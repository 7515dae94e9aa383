"""Filling a designer's layout template: decor, picture, texts, logo and label, layer by layer.

Each part of the template (``visuels.inputs.templates``) becomes one transparent layer the size
of the format, in the template's drawing order, so that the flat output and the layered working
file (``visuels.review.layers``) are made from the same layers. Colours and contrasts are
chosen against what is actually behind each element: the layers already drawn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import floor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from visuels.inputs.charter import Charter
from visuels.inputs.colour import darkest_and_lightest, relative_luminance
from visuels.inputs.fonts import typographic
from visuels.inputs.logos import read_logo
from visuels.inputs.svg import rasterize
from visuels.inputs.templates import LINE_SPACING, Slot, Template
from visuels.postprocess.crops import crops_kept
from visuels.postprocess.label import LabelPlacement, label_plate, label_text_size
from visuels.postprocess.layout import Box
from visuels.postprocess.logo import MIN_GRAPHIC_CONTRAST, LogoPlacement, logo_contrast, scaled_logo
from visuels.postprocess.typography import (
    MIN_TEXT_CONTRAST,
    SIZE_STEP,
    FittedText,
    TextBlock,
    background_range,
    font,
    worst_contrast,
    wrap,
)

LARGE_TEXT_PX = 24  # WCAG "large text": 18 pt, 24 CSS pixels; it needs 3:1 instead of 4.5:1
MIN_LARGE_TEXT_CONTRAST = 3.0
SLOT_LABELS = {"commune": "commune", "headline": "titre", "call_to_action": "appel à l’action"}


@dataclass(frozen=True)
class Layer:
    """One layer of the filled template, RGBA and the size of the format."""

    name: str
    kind: str  # picture, decor, text, logo, label
    image: Image.Image


@dataclass(frozen=True)
class TextFit:
    slot: str
    fitted: FittedText
    box: Box  # where the lines are, inside the slot
    contrast: float
    required: float


@dataclass
class FilledTemplate:
    image: Image.Image  # RGB
    layers: list[Layer]
    texts: list[TextFit]
    label: LabelPlacement
    logo: LogoPlacement

    def text_block(self) -> TextBlock:
        """The texts as the compliance check reads them: their worst contrast against its threshold."""
        by_slot = {text.slot: text for text in self.texts}
        worst = min(self.texts, key=lambda text: text.contrast / text.required)
        boxes = [text.box for text in self.texts]
        left, top = min(box.left for box in boxes), min(box.top for box in boxes)
        right, bottom = max(box.right for box in boxes), max(box.bottom for box in boxes)
        return TextBlock(
            box=Box(left, top, right - left, bottom - top),
            name=by_slot["commune"].fitted,
            below=[by_slot[name].fitted for name in ("headline", "call_to_action") if name in by_slot],
            contrast=worst.contrast,
            plate=False,
            required_contrast=worst.required,
        )


def fit_in_slot(text: str, font_path: Path, slot: Slot, min_px: int) -> FittedText:
    """The largest size at which ``text`` fits the slot's box (wrapped, as many lines as its height
    takes), down to ``min_px``; ``fits`` is False when even ``min_px`` overflows."""
    size = max(min_px, floor(slot.height / LINE_SPACING))
    while True:
        typeface = font(font_path, size)
        lines = wrap(text, typeface, floor(slot.width))
        max_lines = max(1, floor(slot.height / (size * LINE_SPACING)))
        fits = len(lines) <= max_lines and all(typeface.getlength(line) <= slot.width for line in lines)
        if fits or size <= min_px:
            return FittedText(lines=lines, size=size, fits=fits)
        size = max(min_px, min(size - 1, int(size * SIZE_STEP)))


def _aligned(slot: Slot, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of something of ``size`` placed in the slot by its alignment."""
    width, height = size
    left = {"left": slot.left, "center": slot.left + (slot.width - width) / 2, "right": slot.left + slot.width - width}
    top = {"top": slot.top, "middle": slot.top + (slot.height - height) / 2, "bottom": slot.top + slot.height - height}
    return round(left[slot.align]), round(top[slot.valign])


def _picture_layer(picture: Image.Image, slot: Slot, canvas: tuple[int, int]) -> Image.Image:
    """The picture (already the slot's size) in its slot, its corners rounded as the slot's."""
    layer = Image.new("RGBA", canvas)
    mask = Image.new("L", picture.size, 0)
    radius = round(slot.radius)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, picture.width - 1, picture.height - 1), radius=radius, fill=255)
    layer.paste(picture.convert("RGB"), _aligned(slot, picture.size), mask)
    return layer


def _text_layer(text: str, slot: Slot, charter: Charter, behind: Image.Image) -> tuple[Image.Image, TextFit]:
    fitted = fit_in_slot(text, charter.font, slot, charter.spec.typography.min_text_px)
    typeface = font(charter.font, fitted.size)
    widths = [typeface.getlength(line) for line in fitted.lines]
    block_width, block_height = round(max(widths)), round(len(fitted.lines) * fitted.size * LINE_SPACING)
    left, top = _aligned(slot, (block_width, block_height))
    box = Box(left, top, block_width, block_height)
    background = background_range(behind, box)  # what the lines actually lie on
    # The palette's darkest or lightest colour, whichever reads better on what is behind.
    candidates = darkest_and_lightest([colour.rgb for colour in charter.spec.palette])
    colour = max(candidates, key=lambda candidate: worst_contrast(candidate, background))
    layer = Image.new("RGBA", behind.size)
    draw = ImageDraw.Draw(layer)
    y = float(top)
    for line, width in zip(fitted.lines, widths, strict=True):
        x = {"left": left, "center": left + (block_width - width) / 2, "right": left + block_width - width}[slot.align]
        draw.text((round(x), round(y)), line, font=typeface, fill=(*colour, 255), anchor="la")
        y += fitted.size * LINE_SPACING
    required = MIN_LARGE_TEXT_CONTRAST if fitted.size >= LARGE_TEXT_PX else MIN_TEXT_CONTRAST
    return layer, TextFit(slot.name, fitted, box, worst_contrast(colour, background), required)


def _logo_layer(slot: Slot, charter: Charter, behind: Image.Image) -> tuple[Image.Image, LogoPlacement]:
    """The logo as large as the slot takes, in the variant that reads best on what is behind it;
    its clear zone is checked once every text is placed (``fill_template``)."""
    variants = {"colour": charter.logo_colour, "light": charter.logo_light, "dark": charter.logo_dark}
    source = read_logo(charter.logo_colour)
    scale = min(slot.width / source.width, slot.height / source.height)
    size = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
    left, top = _aligned(slot, size)
    box = Box(left, top, *size)
    pixels = np.asarray(behind.convert("RGB").crop(box.as_tuple()), dtype=np.float64).reshape(-1, 3)
    background = float(relative_luminance(pixels.mean(axis=0)))
    contrasts = {name: logo_contrast(path, background) for name, path in variants.items()}
    variant = "colour" if contrasts["colour"] >= MIN_GRAPHIC_CONTRAST else max(("light", "dark"), key=contrasts.get)
    layer = Image.new("RGBA", behind.size)
    layer.paste(scaled_logo(variants[variant], size), (left, top))
    canvas_width, canvas_height = behind.size
    clear = round(charter.spec.logo.clear_zone * box.height)
    zone = Box(box.left - clear, box.top - clear, box.width + 2 * clear, box.height + 2 * clear)
    placement = LogoPlacement(
        corner="template",
        variant=variant,
        box=box,
        zone=zone,
        contrast=contrasts[variant],
        width_ok=box.width >= charter.spec.logo.min_width_share * min(canvas_width, canvas_height),
        clear_zone_ok=True,
    )
    return layer, placement


def label_layer(
    slot: Slot, charter: Charter, language: str, canvas: tuple[int, int], edited: bool = False
) -> tuple[Image.Image, LabelPlacement]:
    """The label at the charter's size for the format, smaller if the slot needs it, never under
    the charter's minimum; which centred crops keep it is measured as for the built-in layout."""
    size = label_text_size(charter, *canvas)
    plate, contrast = label_plate(charter, language, size, edited)
    while (plate.width > slot.width or plate.height > slot.height) and size > charter.spec.ai_label.min_text_px:
        size -= 1
        plate, contrast = label_plate(charter, language, size, edited)
    left, top = _aligned(slot, plate.size)
    layer = Image.new("RGBA", canvas)
    layer.paste(plate, (left, top))
    box = Box(left, top, plate.width, plate.height)
    return layer, LabelPlacement(box=box, text_px=size, contrast=contrast, crops=crops_kept(box, *canvas))


def fill_template(
    template: Template,
    picture: Image.Image,
    charter: Charter,
    language: str,
    texts: dict[str, str],
    edited: bool = False,
) -> FilledTemplate:
    """Draw the template's parts in order over a transparent canvas. ``picture`` is the generated
    picture already fitted to the ``image`` slot; ``texts`` maps text slots to their texts (an
    empty text leaves its slot empty)."""
    canvas = (template.width, template.height)
    composite = Image.new("RGBA", canvas, (255, 255, 255, 255))  # what a printer's paper shows under nothing
    layers: list[Layer] = []
    fits: list[TextFit] = []
    text_boxes: list[Box] = []
    label = logo = None
    for part in template.parts:
        if part.slot is None:
            layer = Layer(part.name, "decor", rasterize(part.svg, *canvas, charter.font))
        elif part.slot == "image":
            layer = Layer("image générée", "picture", _picture_layer(picture, template.slots["image"], canvas))
        elif part.slot in ("commune", "headline", "call_to_action"):
            text = typographic(texts.get(part.slot, ""))
            if not text:
                continue
            image, fit = _text_layer(text, template.slots[part.slot], charter, composite)
            fits.append(fit)
            text_boxes.append(fit.box)
            layer = Layer(f"texte : {SLOT_LABELS[part.slot]}", "text", image)
        elif part.slot == "logo":
            image, logo = _logo_layer(template.slots["logo"], charter, composite)
            layer = Layer("logo", "logo", image)
        else:
            image, label = label_layer(template.slots["ai_label"], charter, language, canvas, edited)
            layer = Layer("mention IA", "label", image)
        layers.append(layer)
        composite.alpha_composite(layer.image)
    assert label is not None and logo is not None  # required slots (load_template)
    clear = not any(logo.zone.overlaps(box) for box in [*text_boxes, label.box])
    logo = dataclasses.replace(logo, clear_zone_ok=clear)
    return FilledTemplate(image=composite.convert("RGB"), layers=layers, texts=fits, label=label, logo=logo)
