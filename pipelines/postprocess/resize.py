"""Fit a generated picture to an output format: content-aware crop, then resampling.

The crop keeps the window with the most detail (edge density), so the subject survives when a
square picture becomes a banner or a story; on a flat picture it stays centred.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from visuels.inputs.images import as_rgb

DETAIL_SIDE = 160  # the detail map is computed on a copy this many pixels on its long side
CENTRE_PREFERENCE = 0.15  # at most this share of detail is traded for staying near the centre


def detail_map(image: Image.Image) -> np.ndarray:
    """Edge density: blurred Sobel gradient magnitude of the luminance, on a small copy."""
    small = image.convert("L")
    small.thumbnail((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BOX)
    grey = np.asarray(small, dtype=np.float32)
    magnitude = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    return cv2.GaussianBlur(magnitude, (0, 0), sigmaX=2.0)


def _best_offset(profile: np.ndarray, window: int) -> float:
    """Start of the window over ``profile`` with the most detail, as a share of the free length."""
    sums = np.convolve(profile, np.ones(window), mode="valid")
    if len(sums) == 1 or sums.max() <= 0:
        return 0.5
    positions = np.arange(len(sums))
    centre = (len(profile) - window) / 2
    distance = np.abs(positions - centre) / max(centre, 1)
    score = sums / sums.max() - CENTRE_PREFERENCE * distance
    return int(score.argmax()) / (len(sums) - 1)


def crop_box(image: Image.Image, aspect: float) -> tuple[float, float, float, float]:
    """The crop (left, top, right, bottom) of ``image`` with ``aspect`` that keeps the most detail."""
    width, height = image.size
    details = detail_map(image)
    scale = details.shape[1] / width
    if width / height > aspect:  # too wide: slide a full-height window horizontally
        crop_width = height * aspect
        window = max(1, round(crop_width * scale))
        left = _best_offset(details.sum(axis=0), window) * (width - crop_width)
        return (left, 0.0, left + crop_width, float(height))
    crop_height = width / aspect
    window = max(1, round(crop_height * scale))
    top = _best_offset(details.sum(axis=1), window) * (height - crop_height)
    return (0.0, top, float(width), top + crop_height)


def crop_window(image: Image.Image, aspect: float) -> tuple[int, int, int, int]:
    """``crop_box`` rounded to whole pixels: the aspect is off by under a pixel, which resampling to
    the format's exact size absorbs."""
    left, top, right, bottom = (round(value) for value in crop_box(image, aspect))
    return left, top, right, bottom


def crop_to_aspect(image: Image.Image, aspect: float) -> Image.Image:
    """The window of ``image`` with ``aspect`` that keeps the most detail, at the picture's own resolution."""
    return as_rgb(image).crop(crop_window(image, aspect))


def resample(image: Image.Image, width: int, height: int) -> np.ndarray:
    """``image`` at exactly ``width`` x ``height``, as RGB pixels (the chain grades them before
    they become a picture again: no round trip through Pillow's own layout). OpenCV's bicubic
    enlarges (a sharp cubic, a = -0.75: close to Lanczos, about a tenth of Pillow's Lanczos time);
    its pixel-area average reduces, without aliasing."""
    pixels = np.asarray(as_rgb(image))
    if image.size == (width, height):
        return pixels
    enlarging = width * height > image.width * image.height
    interpolation = cv2.INTER_CUBIC if enlarging else cv2.INTER_AREA
    return cv2.resize(pixels, (width, height), interpolation=interpolation)


def reduced(pixels: np.ndarray, side: int) -> np.ndarray:
    """A copy at most ``side`` pixels on its long side, aspect kept, by pixel-area averaging
    (OpenCV's: a fifth of Pillow's Lanczos thumbnail time, without aliasing)."""
    height, width = pixels.shape[:2]
    scale = side / max(width, height)
    if scale >= 1:
        return pixels.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    while pixels.shape[1] >= 2 * size[0] and pixels.shape[0] >= 2 * size[1]:
        # Halving is OpenCV's fast path for area averaging; a fractional factor is its slow one.
        pixels = cv2.resize(pixels, (pixels.shape[1] // 2, pixels.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
