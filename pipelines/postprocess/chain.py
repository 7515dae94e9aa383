"""The post-processing chain applied to every generated picture."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from pipelines.charter import Charter
from pipelines.postprocess.label import draw_ai_label
from pipelines.postprocess.layout import Box
from pipelines.postprocess.logo import LogoPlacement, place_logo
from pipelines.postprocess.resize import fit_to_format


@dataclass(frozen=True)
class PostprocessResult:
    image: Image.Image
    logo: LogoPlacement
    label: Box


def postprocess(generated: Image.Image, charter: Charter, width: int, height: int, language: str) -> PostprocessResult:
    """Format, label, then logo (placed clear of the label)."""
    formatted = fit_to_format(generated, width, height)
    labelled, label_box = draw_ai_label(formatted, charter, language)
    final, logo = place_logo(labelled, charter, avoid=[label_box])
    return PostprocessResult(image=final, logo=logo, label=label_box)
