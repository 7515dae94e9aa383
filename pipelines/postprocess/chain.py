"""The post-processing chain applied to every generated picture, and what it measured."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from visuels.inputs.charter import Charter
from visuels.inputs.templates import Template
from visuels.postprocess.coherence import StyleSignature, style_signature
from visuels.postprocess.label import LabelPlacement, draw_ai_label
from visuels.postprocess.layout import margin
from visuels.postprocess.logo import LogoPlacement, place_logo
from visuels.postprocess.palette import conformity, grade_to_palette, score_copy
from visuels.postprocess.resize import crop_to_aspect, resample
from visuels.postprocess.template_fill import Layer, fill_template
from visuels.postprocess.typography import TextBlock, draw_text_block


@dataclass(frozen=True)
class Formatted:
    """A generated picture already cropped, resampled and graded to its picture size (on the
    rendering device: ``visuels.engine.device_format``), with the ungraded picture's score copy."""

    graded: np.ndarray  # H×W×3 uint8, at the picture size
    ungraded_small: np.ndarray  # the ungraded picture at its score size (``palette.score_size``)


def picture_size(template: Template | None, width: int, height: int) -> tuple[int, int]:
    """The picture's own size: a template's ``image`` slot, or the whole format in the built-in layout."""
    slot = template.slots["image"] if template is not None else None
    return (round(slot.width), round(slot.height)) if slot is not None else (width, height)


@dataclass(frozen=True)
class PostprocessResult:
    image: Image.Image
    palette_before: float
    palette_after: float
    label: LabelPlacement
    logo: LogoPlacement
    text: TextBlock
    style: StyleSignature  # of the graded picture, before the overlays every picture shares
    layers: list[Layer] | None = None  # a template's layers, bottom first; None for the built-in layout


def postprocess(
    generated: Image.Image | Formatted,
    charter: Charter,
    width: int,
    height: int,
    language: str,
    commune: str,
    headline: str,
    call_to_action: str = "",
    template: Template | None = None,
    edited: bool = False,
) -> PostprocessResult:
    """Format, grade the colours, then label, logo and text — overlays last, so grading never touches them.

    With a ``template``, the picture is fitted to its ``image`` slot and the template is filled;
    else the built-in layout places label, logo and text. ``edited``: the picture was made from a
    photo (its label says "modifiée"). A ``Formatted`` picture was cropped, resampled and graded
    already, on the rendering device."""
    spec = charter.spec
    palette = tuple(colour.rgb for colour in spec.palette)
    grading = spec.palette_grading
    if isinstance(generated, Formatted):
        graded, before = Image.fromarray(generated.graded), Image.fromarray(generated.ungraded_small)
    else:
        size = picture_size(template, width, height)
        # Graded after resampling, never before: grading pulls each colour to its nearest palette
        # colour, so on grain it switches pixel by pixel, and enlarging a graded picture would blur
        # those switches (24-36 dB away from grading the format's own pixels, measured).
        formatted = resample(crop_to_aspect(generated, size[0] / size[1]), *size)
        graded = Image.fromarray(grade_to_palette(formatted, palette, grading.strength))
        before = Image.fromarray(formatted)
    graded_small = score_copy(graded)  # reduced once for both measures (each reduces a larger picture)
    measured = {
        "palette_before": conformity(before, palette, grading.tolerance),
        "palette_after": conformity(graded_small, palette, grading.tolerance),
        "style": style_signature(graded_small, palette),
    }
    if template is not None:
        texts = {"commune": commune, "headline": headline, "call_to_action": call_to_action}
        filled = fill_template(template, graded, charter, language, texts, edited)
        return PostprocessResult(
            image=filled.image,
            label=filled.label,
            logo=filled.logo,
            text=filled.text_block(),
            layers=filled.layers,
            **measured,
        )
    labelled, label = draw_ai_label(graded, charter, language, edited)
    with_logo, logo = place_logo(labelled, charter, avoid=[label.box])
    typography = spec.typography
    final, text = draw_text_block(
        with_logo,
        commune,
        headline,
        charter.font,
        list(palette),
        obstacles=[label.box, logo.zone],
        position=typography.position,
        name_share=typography.name_size_share,
        headline_share=typography.headline_size_share,
        min_px=typography.min_text_px,
        max_lines=typography.max_name_lines,
        inset=margin(width, height),
        call_to_action=call_to_action,
    )
    return PostprocessResult(image=final, label=label, logo=logo, text=text, **measured)
