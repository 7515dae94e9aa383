"""Fit a generated picture to an output format: centred cover crop, then Lanczos resize."""

from __future__ import annotations

from PIL import Image


def fit_to_format(image: Image.Image, width: int, height: int) -> Image.Image:
    """Crop to the format's aspect ratio around the centre, then resample to its size."""
    source_width, source_height = image.size
    target_aspect = width / height
    if source_width / source_height > target_aspect:
        crop_width, crop_height = round(source_height * target_aspect), source_height
    else:
        crop_width, crop_height = source_width, round(source_width / target_aspect)
    left = (source_width - crop_width) // 2
    top = (source_height - crop_height) // 2
    box = (left, top, left + crop_width, top + crop_height)
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS, box=box)
