"""64-bit perceptual hash (DCT of a 32x32 greyscale copy): finds a file again after re-encoding."""

from __future__ import annotations

import cv2
import numpy as np

MATCH_DISTANCE = 6  # bits; re-encodes and resizes stay within ~2, distinct pictures are ~24+ apart


def perceptual_hash(rgb: np.ndarray) -> str:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()[1:]  # lowest frequencies, without the mean
    bits = np.concatenate([[0], low > np.median(low)])
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"
