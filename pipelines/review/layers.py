"""A layered working file (PSD) of an output laid out in a template, for retouching in
Photoshop, GIMP, Krita or Photopea.

The layers are the template's, named as in the layers panel a designer expects: the generated
picture, each run of decor, each text, the logo and the AI label, in the template's drawing
order. The picture layer is the output's own pixels inside the ``image`` slot, so it keeps the
invisible watermark; where decor, a text, the logo or the label lay over the picture, the pixels
they covered are filled in (OpenCV's inpainting): moving a text reveals a smooth fill, not what
was generated there. The file says in its XMP that it is a working file made by AI, not a
deliverable: what the designer exports from it goes through ``visuels finalize``, which marks
it again, like any edited file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from psd_tools import PSDImage
from psd_tools.api.layers import PixelLayer
from psd_tools.constants import Resource
from psd_tools.psd.image_resources import ImageResource
from visuels._internal.atomic import keep_copy, staged, write_with
from visuels.errors import VisuelsError
from visuels.inputs.charter import Charter
from visuels.inputs.images import read_picture
from visuels.marking.xmp import DigitalSourceType, xmp_packet
from visuels.postprocess.template_fill import Layer, fill_template
from visuels.record.database import Database
from visuels.review.decisions import outside_approved
from visuels.review.derivatives import find_original, original_charter

INPAINT_RADIUS = 5  # pixels around each covered pixel that its fill is drawn from
WORKING_FILE_NOTE = "Fichier de travail (calques) : à finaliser avec « visuels finalize » avant publication"


class LayersError(VisuelsError):
    """An output whose layers cannot be made (not in the record, or not laid out in a template)."""


@dataclass(frozen=True)
class LayeredFile:
    path: Path
    layers: list[str]  # their names, bottom first


def output_layers(output: Image.Image, inputs: dict, charter: Charter, source: Path) -> list[Layer]:
    """The template's layers for an output, its picture layer taken from the output itself."""
    template = charter.template(inputs.get("layout"), inputs.get("format", ""))
    if template is None:
        raise LayersError(
            source, None, "this output uses the built-in layout: layered files are made for template layouts"
        )
    if template.sha256 != inputs.get("template_hash"):
        raise LayersError(source, None, "its template {name} changed since it was rendered", name=template.path.name)
    if output.size != (template.width, template.height):
        size = f"{output.width}x{output.height}"
        raise LayersError(
            source,
            None,
            "{size}, its template is {width}x{height}",
            size=size,
            width=template.width,
            height=template.height,
        )
    slot = template.slots["image"]
    left, top, right, bottom = slot.box()
    pixels = output.convert("RGB")
    texts = {name: inputs.get(key, "") for name, key in
             (("commune", "commune_name"), ("headline", "headline"), ("call_to_action", "call_to_action"))}  # fmt: skip
    made_from_a_photo = inputs.get("photo") is not None  # its label says "modifiée", as the output's does
    filled = fill_template(
        template, pixels.crop((left, top, right, bottom)), charter, inputs["language"], texts, made_from_a_photo
    )
    picture_index = next(index for index, layer in enumerate(filled.layers) if layer.kind == "picture")
    covered = np.zeros((template.height, template.width), dtype=bool)
    for layer in filled.layers[picture_index + 1 :]:
        covered |= np.asarray(layer.image.getchannel("A")) > 0
    picture_layer = filled.layers[picture_index]
    inside = np.asarray(picture_layer.image.getchannel("A")) > 0
    mask = (covered & inside).astype(np.uint8) * 255
    restored = cv2.inpaint(np.asarray(pixels), mask, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    picture = Image.fromarray(restored).convert("RGBA")
    picture.putalpha(picture_layer.image.getchannel("A"))
    layers = list(filled.layers)
    layers[picture_index] = Layer(picture_layer.name, "picture", picture)
    return layers


def write_psd(layers: list[Layer], size: tuple[int, int], target: Path, creator: str) -> None:
    """A PSD of ``layers`` (bottom first), each cropped to what it draws, with its XMP."""
    # RGBA: each layer keeps its transparency as such (in an RGB document psd-tools would turn it
    # into a layer mask, which editors show as a second thing to move).
    psd = PSDImage.new("RGBA", size, color=(255, 255, 255, 255))
    for layer in layers:
        box = layer.image.getbbox()
        if box is None:
            continue
        psd.append(PixelLayer.frompil(layer.image.crop(box), psd, layer.name, top=box[1], left=box[0]))
    xmp = xmp_packet(DigitalSourceType.composite, creator, f"visuels ({WORKING_FILE_NOTE})")
    psd.image_resources[Resource.XMP_METADATA] = ImageResource(key=Resource.XMP_METADATA, data=xmp.encode())
    write_with(target, lambda temporary: psd.save(str(temporary)))


def layered_file(
    path: Path, charter: Charter | None, database: Database, output_root: Path | None, target: Path | None = None
) -> LayeredFile:
    """Write the layered working file of the output at ``path`` (by default beside it, .psd, or
    beside its export for an approved copy; a designer's working file there is never written over:
    ``-2.psd`` then), laid out in ``charter``, else in the one it was made with (``original_charter``)."""
    original = find_original(database, path, output_root)
    if original.inputs is None:
        raise LayersError(path, None, "the record does not hold how this output was made")
    charter = charter or original_charter(database, original)
    output = read_picture(path, "file")
    layers = output_layers(output, original.inputs, charter, path)
    if target is not None:
        write_psd(layers, output.size, target, charter.spec.creator)
    else:
        beside = outside_approved(path, original.row["file"]).with_suffix(".psd")
        with staged(beside) as draft:  # then under the first name free, or holding these very bytes
            write_psd(layers, output.size, draft.path, charter.spec.creator)
            try:
                target = keep_copy(draft.path, lambda number: beside.with_stem(_numbered(beside.stem, number)))
            except FileExistsError:
                raise LayersError(beside, None, "999 layered files are beside this output already") from None
    return LayeredFile(path=target, layers=[layer.name for layer in layers if layer.image.getbbox()])


def _numbered(stem: str, number: int) -> str:
    return stem if number == 1 else f"{stem}-{number}"
