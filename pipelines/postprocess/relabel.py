"""Put the AI label back where a picture's layout puts it: a retouch or an outside edit that
touched the label gets it drawn again before it is marked, so no deliverable leaves without it."""

from __future__ import annotations

from PIL import Image
from visuels.inputs.charter import Charter
from visuels.inputs.templates import Template
from visuels.postprocess.label import LabelPlacement, draw_ai_label
from visuels.postprocess.template_fill import label_layer


def label_place(
    image_size: tuple[int, int], charter: Charter, language: str, template: Template | None
) -> LabelPlacement:
    """Where the label of a picture of this size stands: the template's ``ai_label`` slot (a
    picture at the template's size), else the charter's corner."""
    return relabel(Image.new("RGB", image_size), charter, language, template)[1]


def relabel(
    image: Image.Image, charter: Charter, language: str, template: Template | None, edited: bool = True
) -> tuple[Image.Image, LabelPlacement]:
    """``image`` with the label drawn again in its place (see ``label_place``), saying "modifiée"
    unless ``edited`` is False."""
    if template is None or image.size != (template.width, template.height):
        return draw_ai_label(image, charter, language, edited)
    layer, placement = label_layer(template.slots["ai_label"], charter, language, image.size, edited)
    composed = image.convert("RGBA")
    composed.alpha_composite(layer)
    return composed.convert("RGB"), placement
