"""The centred crops platforms make of a picture (a feed's square or 4:5 preview, a story's 9:16, a
video's 16:9), and whether something placed on the picture stays inside them."""

from __future__ import annotations

from visuels.postprocess.layout import Box

CROPS = {"1:1": (1, 1), "4:5": (4, 5), "9:16": (9, 16), "16:9": (16, 9)}


def centred_crop(width: int, height: int, ratio: str) -> Box:
    """The largest centred crop of a ``width`` x ``height`` picture with the aspect ``ratio``."""
    across, down = CROPS[ratio]
    crop_width = min(width, round(height * across / down))
    crop_height = min(height, round(width * down / across))
    return Box((width - crop_width) // 2, (height - crop_height) // 2, crop_width, crop_height)


def safe_area(width: int, height: int, ratios: list[str]) -> Box:
    """Where a box is inside every one of these centred crops (the whole picture for none)."""
    crops = [centred_crop(width, height, ratio) for ratio in ratios] or [Box(0, 0, width, height)]
    left, top = max(crop.left for crop in crops), max(crop.top for crop in crops)
    right, bottom = min(crop.right for crop in crops), min(crop.bottom for crop in crops)
    return Box(left, top, max(0, right - left), max(0, bottom - top))


def inside(box: Box, area: Box) -> bool:
    return area.left <= box.left and box.right <= area.right and area.top <= box.top and box.bottom <= area.bottom


def crops_kept(box: Box, width: int, height: int) -> dict[str, bool]:
    """For each of the four crops, whether ``box`` is wholly inside it."""
    return {ratio: inside(box, centred_crop(width, height, ratio)) for ratio in CROPS}
