"""WCAG 2 relative luminance and contrast ratio."""

from __future__ import annotations

import numpy as np


def relative_luminance(rgb: np.ndarray | tuple[float, float, float]) -> np.ndarray | float:
    """WCAG relative luminance of sRGB values in 0-255 (last axis holds R, G, B)."""
    channels = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
    return float(luminance) if np.ndim(luminance) == 0 else luminance


def darkest_and_lightest(colours: list[tuple[int, int, int]]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The colours of lowest and highest WCAG luminance (text and plate colours)."""
    ordered = sorted(colours, key=relative_luminance)
    return ordered[0], ordered[-1]


def contrast_ratio(first: float, second: float) -> float:
    """WCAG contrast ratio between two relative luminances (1 to 21)."""
    lighter, darker = max(first, second), min(first, second)
    return (lighter + 0.05) / (darker + 0.05)
