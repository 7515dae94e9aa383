"""Palette conformity (CIEDE2000 in CIELAB) and grading towards the charter's palette.

Score: the share of pixels, on a downsampled copy, within ``tolerance`` ΔE00 of a palette
colour. Grading: every colour moves a share (the charter's strength) of the way to its nearest
palette colour in Lab — chroma fully, lightness by half, so shapes and detail survive. The move
is computed once per palette and strength on a 64³ RGB lattice (a 3D LUT of offsets, gathered
per pixel: about 10 ms for a 1080² picture).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image
from visuels.inputs.images import as_rgb

SCORE_SIDE = 128  # the score is computed on a copy whose long side is this many pixels
LUT_BITS = 6  # grading offsets on a 64x64x64 lattice of RGB cells
LIGHTNESS_PULL = 0.5  # share of the strength applied to L*: keep light and shade
# Rows graded at a time: a band's cells and offsets stay in the core's cache between the passes
# over them (a fifth of the grading's time on a 1080² picture, benchmarks/RESULTS.md).
BAND_ROWS = 64


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0-255 (any shape ending in 3) to CIELAB (D65)."""
    flat = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb))


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB to sRGB in 0-255 floats, clipped to the gamut."""
    flat = np.asarray(lab, dtype=np.float32).reshape(-1, 1, 3)
    return (np.clip(cv2.cvtColor(flat, cv2.COLOR_Lab2RGB), 0, 1) * 255.0).reshape(np.shape(lab))


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference, broadcasting over leading axes (Sharma et al., 2005)."""
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma_zero = (c1p * c2p) == 0

    dlp = l2 - l1
    dcp = c2p - c1p
    dhp = h2p - h1p
    dhp = np.where(dhp > 180, dhp - 360, np.where(dhp < -180, dhp + 360, dhp))
    dhp = np.where(chroma_zero, 0.0, dhp)
    big_dh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dhp / 2))

    lp_bar = (l1 + l2) / 2
    cp_bar = (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_bar = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    hp_bar = np.where(chroma_zero, h_sum, hp_bar)
    t = (
        1
        - 0.17 * np.cos(np.radians(hp_bar - 30))
        + 0.24 * np.cos(np.radians(2 * hp_bar))
        + 0.32 * np.cos(np.radians(3 * hp_bar + 6))
        - 0.20 * np.cos(np.radians(4 * hp_bar - 63))
    )
    d_theta = 30 * np.exp(-(((hp_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (lp_bar - 50) ** 2 / np.sqrt(20 + (lp_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dlp / s_l) ** 2 + (dcp / s_c) ** 2 + (big_dh / s_h) ** 2 + r_t * (dcp / s_c) * (big_dh / s_h))


@lru_cache(maxsize=8)
def _palette_lattice(palette_rgb: tuple[tuple[int, int, int], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each cell of a 64³ RGB lattice: its centre in Lab, its nearest palette colour, the ΔE00 to it.

    Computed once per palette (about a second); every score and grading afterwards is a lookup.
    """
    cells = 1 << LUT_BITS
    centres = (np.arange(cells, dtype=np.float32) + 0.5) * (256 / cells)
    lattice = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = rgb_to_lab(lattice)
    palette_lab = rgb_to_lab(np.array(palette_rgb, dtype=np.float32))
    nearest = np.empty(len(lab), dtype=np.intp)
    distance = np.empty(len(lab), dtype=np.float32)
    for start in range(0, len(lab), 65536):  # in slices: the full distance table is ~100 MB
        chunk = ciede2000(lab[start : start + 65536, None, :], palette_lab[None, :, :])
        nearest[start : start + len(chunk)] = chunk.argmin(axis=1)
        distance[start : start + len(chunk)] = chunk.min(axis=1)
    return lab, nearest, distance


def grading_strength(strength: float) -> float:
    """The strength as the grading tables are kept (one table per thousandth)."""
    return round(strength, 3)


def score_size(width: int, height: int) -> tuple[int, int]:
    """The size of a picture's score copy: at most ``SCORE_SIDE`` pixels on its long side."""
    scale = min(1.0, SCORE_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _cells(rgb: np.ndarray) -> np.ndarray:
    """Index of each pixel's lattice cell."""
    coarse = rgb >> (8 - LUT_BITS)  # shifted while still bytes: a third of the memory traffic
    red, green = (coarse[..., channel].astype(np.int32) for channel in range(2))
    return (red << (2 * LUT_BITS)) | (green << LUT_BITS) | coarse[..., 2]


def _cells_of_words(words: np.ndarray) -> np.ndarray:
    """``_cells`` of RGBA pixels read as little-endian 32-bit words (R in the low byte): the same
    indices in a few passes over one array, where ``_cells`` makes several of three."""
    shift = 8 - LUT_BITS
    top = (1 << LUT_BITS) - 1
    coarse = words >> shift
    coarse &= top * 0x010101  # each channel's top bits, in place in its own byte
    cells = coarse & top
    cells <<= 2 * LUT_BITS  # red
    green = coarse >> (8 - LUT_BITS)
    green &= top << LUT_BITS
    cells |= green
    cells |= coarse >> 16  # blue
    return cells


def score_copy(image: Image.Image) -> Image.Image:
    """The picture in RGB at most ``SCORE_SIDE`` pixels on its long side: what every score reads
    (box-averaged, straight from the picture: no full-size copy first)."""
    rgb = as_rgb(image)
    size = score_size(*rgb.size)
    if size == rgb.size:
        return rgb
    return rgb.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def conformity(image: Image.Image, palette_rgb: tuple[tuple[int, int, int], ...], tolerance: float) -> float:
    """Share of pixels (0-1) within ``tolerance`` ΔE00 of some palette colour, on a downsampled copy."""
    small = score_copy(image)
    _, _, distance = _palette_lattice(palette_rgb)
    return float((distance[_cells(np.asarray(small))] <= tolerance).mean())


def palette_shares(image: Image.Image, palette_rgb: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """Share of pixels (0-1) nearest to each palette colour, on a downsampled copy: the palette histogram."""
    small = score_copy(image)
    _, nearest, _ = _palette_lattice(palette_rgb)
    counts = np.bincount(nearest[_cells(np.asarray(small))].ravel(), minlength=len(palette_rgb))
    return counts / counts.sum()


@lru_cache(maxsize=8)
def grading_offsets(palette_rgb: tuple[tuple[int, int, int], ...], strength: float) -> np.ndarray:
    """What grading adds to each lattice cell's colour (64³ × 3 int16, cells indexed as ``_cells``).

    Offsets vary slowly with the colour, so the offset at a cell's centre serves every colour in
    the cell: grading is one gather per pixel, not an interpolation, and a graded colour is exactly
    clip(colour + offset) wherever it is computed (here, or on the rendering device).
    """
    lab, nearest, _ = _palette_lattice(palette_rgb)
    palette_lab = rgb_to_lab(np.array(palette_rgb, dtype=np.float32))
    pull = np.array([strength * LIGHTNESS_PULL, strength, strength], dtype=np.float32)
    graded = lab + (palette_lab[nearest] - lab) * pull
    return np.rint(lab_to_rgb(graded) - lab_to_rgb(lab)).astype(np.int16)


@lru_cache(maxsize=8)
def _grading_table(palette_rgb: tuple[tuple[int, int, int], ...], strength: float) -> np.ndarray:
    """``grading_offsets`` as 64³ words of 64 bits, each the R, G, B offsets (and an unused fourth)
    as int16: one gather per pixel, then one saturating add (OpenCV's, in 16 bits, saturated to
    bytes), which is exactly clip(colour + offset)."""
    offsets = grading_offsets(palette_rgb, strength)
    words = np.zeros((len(offsets), 4), dtype=np.int16)
    words[:, :3] = offsets
    return words.view(np.uint64).ravel()


def grade_to_palette(rgb: np.ndarray, palette_rgb: tuple[tuple[int, int, int], ...], strength: float) -> np.ndarray:
    """Move the colours of ``rgb`` (H×W×3 uint8) towards the palette; strength 0 changes nothing."""
    if strength <= 0:
        return rgb
    table = _grading_table(palette_rgb, grading_strength(strength))
    graded = np.empty(rgb.shape, dtype=np.uint8)  # C order: each band a contiguous destination
    for top in range(0, rgb.shape[0], BAND_ROWS):
        band = np.ascontiguousarray(rgb[top : top + BAND_ROWS])
        rgba = cv2.cvtColor(band, cv2.COLOR_RGB2RGBA)
        cells = _cells_of_words(rgba.view(np.uint32)[..., 0])
        offsets = np.take(table, cells).view(np.int16).reshape(*band.shape[:2], 4)
        cv2.cvtColor(cv2.add(rgba, offsets, dtype=cv2.CV_8U), cv2.COLOR_RGBA2RGB, dst=graded[top : top + BAND_ROWS])
    return graded
