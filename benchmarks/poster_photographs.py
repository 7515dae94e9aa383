"""A marked poster photographed in the street: the whole photograph, and the photograph cropped to it.

    .venv/bin/python benchmarks/poster_photographs.py

A marked 1080x1080 picture (the sample charter's references, marked as exports mark them) is
pasted into a 4032x2268 photograph (a phone's, 1/f noise for the street around it) at a fifth to
nearly half of its width, turned away by a keystone (one side shorter by 0-10 % of the width),
saved as JPEG q85. The watermark is sought in the whole photograph, then in the photograph cropped
to the poster's box, as a person does with a phone's photo editor before sending it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEY = 0x9E3779B97F4A7C15F39CC0605CEDC834  # fixed: runs compare
PAYLOAD = 0x0123456789ABCDEF
PHOTO = (4032, 2268)
SHARES = (0.2, 0.3, 0.45)
KEYSTONES = (0.0, 0.03, 0.06, 0.1)
sys.path.insert(0, str(REPO))

from visuels.marking.watermark import detect, embed_readable  # noqa: E402

from tests.watermark_attacks import REFERENCES, encode, pink_noise  # noqa: E402


def photographed(poster: np.ndarray, share: float, keystone: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photograph, and the poster's box in it."""
    width, height = PHOTO
    street = np.asarray(pink_noise(height, width, 3).convert("RGB"))
    shown = round(width * share)
    left, top = (width - shown) // 2, (height - shown) // 2
    corners = np.float32([[0, 0], [poster.shape[1], 0], [poster.shape[1], poster.shape[0]], [0, poster.shape[0]]])
    inset = keystone * shown
    right, bottom = left + shown, top + shown
    placed = np.float32([[left, top + inset], [right, top], [right, bottom], [left, bottom - inset]])
    warp = cv2.getPerspectiveTransform(corners, placed)
    drawn = cv2.warpPerspective(poster, warp, PHOTO, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones(poster.shape[:2], np.uint8), warp, PHOTO)
    photo = np.where(inside[..., None] > 0, drawn, street)
    return encode(photo, "JPEG", quality=85), (left, top, right, bottom)


def main() -> None:
    from PIL import Image

    with Image.open(REFERENCES[0]) as reference:
        picture = np.asarray(reference.convert("RGB").resize((1080, 1080), Image.Resampling.LANCZOS))
    poster, _ = embed_readable(picture, PAYLOAD, KEY)
    print("| poster's share of the width | keystone | whole photograph | cropped to the poster | seconds |")
    print("|---|---|---|---|---|")
    for share in SHARES:
        for keystone in KEYSTONES:
            photo, (left, top, right, bottom) = photographed(poster, share, keystone)
            started = time.perf_counter()
            whole = detect(photo, KEY).payload == PAYLOAD
            middle = time.perf_counter()
            cropped = detect(np.ascontiguousarray(photo[top:bottom, left:right]), KEY).payload == PAYLOAD
            ended = time.perf_counter()
            print(
                f"| {share:.0%} | {keystone:.0%} | {'found' if whole else 'not found'} |"
                f" {'found' if cropped else 'not found'} | {middle - started:.1f}, {ended - middle:.1f} |"
            )


if __name__ == "__main__":
    main()
