"""Where a picture may sit inside a larger upload: a screenshot of a page, a post or a viewer, or
a photograph of a poster in the street.

The watermark's tiles are sought on a grid stretched over the whole upload, so a picture shown
small inside a screenshot has tiles too small to find. These boxes are the crops to look in
again. In a page (a flat background around): the upload without its plain border (a picture
viewer's, a letterbox), then its large busy areas. A picture has detail nearly everywhere; a
page's background and bars are flat. Lines of text are busy too, and run together with a picture
next to them: each area is also tried without its plain lines at its ends, and the likeliest
without a share of one end. In a photograph (no flat background: a street, a wall) nothing tells
the poster from what is around it, so squares of three sizes are laid over it, each overlapping
its neighbours by half: one of them falls inside the poster. In a collage (pictures side by side
or in a grid) each picture's mark is whole, but the whole upload's search folds them together:
its halves, its quarters and, where lines cross it there, its thirds are places. A poster
photographed at an angle has its far side shorter: its tiles shrink across it, beyond what one
tile period fits, so the upload and the likeliest boxes are also straightened as if seen at an
angle from each side (``KEYSTONES``). Which place holds the picture is left to the watermark's
sync pattern (``watermark.detect`` ranks them by it), and the decision to its CRC-checked payload:
a place is only somewhere to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # left, top, right, bottom in the upload's pixels
Side = Literal["left", "right", "top", "bottom"]

SEARCH_SIDE = 512  # the upload is looked over at most this large (long side): speed
PLAIN_LEVELS = 6.0  # a border row or column within this of the border's colour, for most of it, is plain
PLAIN_SHARE = 0.98
DETAIL_LEVELS = 3.0  # luminance levels off the local mean that make a pixel detailed (above JPEG's noise)
DENSITY_WINDOW = 7  # pixels (at SEARCH_SIDE) over which detail is counted
BUSY_DENSITY = 0.5  # share of detailed pixels that makes a place busy: pictures, not lines of text
MAX_CORE_PLAIN = 0.5  # rows (then columns) at a busy area's ends plainer than this are not its picture's
LINE_ROWS = 9  # rows (at SEARCH_SIDE) a line of text and its gap take: plainness is averaged over them
TRIMMED_AREAS = 2  # busy areas also tried less one of their ends
END_SHARES = (0.25, 1 / 3)
MAX_BOXES = 20  # each is ranked by how clearly the mark's sync pattern shows in it (no decoding)
MIN_PAGE_SHARE = 0.15  # of an upload in one plain level (a page's background) before boxes are looked for
MIN_SHARE = 0.03  # of the upload's area: smaller boxes hold too few tiles to carry the mark
MAX_SHARE = 0.9  # larger, it is the upload itself, already searched
MIN_SIDE = 96  # pixels of the upload: a box narrower or lower holds too few chips
# A photograph is searched in squares when its short side has at least this many pixels: a phone's
# (3024), or as a messaging app sends it (1200); a post (1080), a story or a screenshot (1080, 1170)
# is what was sent, searched whole (and a screenshot as a page). Squares of these shares of its short side:
PHOTO_MIN_SIDE = 1200
PHOTO_SQUARES = (0.6, 0.42, 0.3)
# A collage (pictures side by side or in a grid, as a newsletter or a profile's grid shows them):
# each picture's mark is whole, but the search over the whole upload folds them together. Its cells
# are places: always its halves and quarters (two pictures of one charter side by side can meet
# with no edge between them, and they cost about 10 ms each); its thirds and ninths, and two parts
# of unequal widths, where lines across the whole upload say so. A line is there where the
# luminance jumps across it along most of its length (a picture's edge against the next picture or
# a gutter; a picture's own edges rarely run the whole way), within a band around it.
THIRDS = (1 / 3, 2 / 3)  # shares of the side
# Of the upload's short side: a smaller one is a thumbnail, no collage (its halves would hold few
# tiles, and searching them doubled what an unmarked thumbnail costs).
GRID_MIN_SIDE = 480
SPLIT_RANGE = (0.2, 0.8)  # two pictures of unequal widths: the strongest line in here
SEAM_BAND = 0.025  # of the side, each way: a gutter's width, a collage not quite even
SEAM_LEVELS = 10.0  # luminance levels between the pixels either side of a one-pixel line: an edge
SEAM_SHARE = 0.6  # of the line's length,
SEAM_OVER_TYPICAL = 1.5  # and this many times the median line's (a busy picture jumps everywhere)
# A picture seen at an angle: its far side shorter by twice one of these shares of its length (8 to
# 24 %: a poster photographed from a few steps to one side). The search itself bears about 6 %.
KEYSTONE_INSETS = (0.04, 0.08, 0.12)


def picture_boxes(luminance: np.ndarray) -> list[Box]:
    """Boxes of ``luminance`` (H×W, float) where a picture may be. In a page (at most MAX_BOXES),
    likeliest first: the upload without its plain border, then each busy area (the least plain first), its
    core without the lines of text at its ends, and, for the likeliest, the area less a quarter or
    a third at one end (text run together with the picture, which no rule tells from it). Then,
    an upload as large as a photograph, squares over it (``_photo_squares``: 50 to 80 of them).
    Then a collage's cells (``_grid_cells``: 8 to 24)."""
    height, width = luminance.shape
    scale, small = min(1.0, SEARCH_SIDE / max(height, width)), at_most(luminance, SEARCH_SIDE)
    page = _plain_share(small, (0, 0, small.shape[1], small.shape[0])) >= MIN_PAGE_SHARE
    # A street's flat wall can pass for a page's background: the squares are laid over either.
    boxes = (_page_boxes(small, scale, width, height) if page else []) + _photo_squares(width, height)
    return boxes + [cell for cell in _grid_cells(small, width, height) if cell not in boxes]


def at_most(luminance: np.ndarray, side: int) -> np.ndarray:
    """The luminance scaled down to at most ``side`` pixels on its long side, for speed; a side
    never less than one pixel (a strip 20,000 pixels long and one high stays a strip)."""
    height, width = luminance.shape
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return luminance
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(luminance, size, interpolation=cv2.INTER_AREA)


def _grid_cells(small: np.ndarray, width: int, height: int) -> list[Box]:
    """Where the pictures of a collage may be, in the upload's pixels (``small``: it at most
    SEARCH_SIDE): its halves and quarters; its thirds and ninths, where lines cross it at both its
    thirds; its two parts, where a line crosses it elsewhere; one way or both. None in a thumbnail."""
    if min(width, height) < GRID_MIN_SIDE:
        return []
    columns, rows = _spans(small), _spans(np.ascontiguousarray(small.T))
    cells = [
        (round(left * width), round(top * height), round(right * width), round(bottom * height))
        for left, right in columns
        for top, bottom in rows
    ]
    return [cell for cell in cells if _searchable(cell, width, height)]


def _spans(luminance: np.ndarray) -> list[tuple[float, float]]:
    """Spans of ``luminance``'s width (shares of it) a collage's columns may take: the whole, its
    halves, its thirds where lines cross it at both, and the two sides of the strongest line
    crossing it elsewhere (two pictures of unequal widths)."""
    width = luminance.shape[1]
    jumps = (np.abs(luminance[:, 2:] - luminance[:, :-2]) > SEAM_LEVELS).mean(axis=0)  # at columns 1..W-2
    band = max(1, round(SEAM_BAND * width))
    seam = max(SEAM_SHARE, SEAM_OVER_TYPICAL * float(np.median(jumps)))

    def crossed(line: float) -> bool:
        at = round(line * width) - 1
        return float(jumps[max(0, at - band) : at + band + 1].max()) >= seam

    cuts: list[tuple[float, ...]] = [(0.5,)] + ([THIRDS] if all(crossed(line) for line in THIRDS) else [])
    start, end = (round(share * width) - 1 for share in SPLIT_RANGE)
    strongest = start + int(jumps[start:end].argmax())
    line = (strongest + 1) / width
    if jumps[strongest] >= seam and all(abs(line - at) > SEAM_BAND for lines in cuts for at in lines):
        cuts.append((line,))
    spans = [(0.0, 1.0)]
    for lines in cuts:
        ends = (0.0, *lines, 1.0)
        spans += list(pairwise(ends))
    return spans


def _page_boxes(small: np.ndarray, scale: float, width: int, height: int) -> list[Box]:
    """The places of a page (``small``: it at ``scale``) where a picture may sit, in the upload's pixels."""
    boxes = [_without_plain_border(small)]
    detailed = np.abs(small - cv2.GaussianBlur(small, (0, 0), 1.0)) > DETAIL_LEVELS
    density = cv2.blur(detailed.astype(np.float32), (DENSITY_WINDOW, DENSITY_WINDOW))
    busy = cv2.morphologyEx((density > BUSY_DENSITY).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=4)
    areas = [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:] if w * h >= MIN_SHARE * busy.size]
    areas.sort(key=lambda area: _plain_share(small, area))  # pictures before text
    for rank, area in enumerate(areas):
        boxes += [area, _picture_core(small, area)] + (_less_one_end(area) if rank < TRIMMED_AREAS else [])
    kept: list[Box] = []
    for left, top, right, bottom in boxes:
        right, bottom = min(width, int(np.ceil(right / scale))), min(height, int(np.ceil(bottom / scale)))
        box = (int(left / scale), int(top / scale), right, bottom)
        if _searchable(box, width, height) and box not in kept:
            kept.append(box)
    return kept[:MAX_BOXES]


def _searchable(box: Box, width: int, height: int) -> bool:
    """Whether ``box`` may hold a picture's mark, and is not the upload itself."""
    box_width, box_height = box[2] - box[0], box[3] - box[1]
    sized = MIN_SHARE * width * height <= box_width * box_height <= MAX_SHARE * width * height
    return sized and min(box_width, box_height) >= MIN_SIDE


def _photo_squares(width: int, height: int) -> list[Box]:
    """Squares over a photograph, the largest first, each size's overlapping by half; none for an
    upload too small to be a photograph of a picture (it is the picture, searched whole)."""
    short = min(width, height)
    if short < PHOTO_MIN_SIDE:
        return []
    squares = []
    for share in PHOTO_SQUARES:
        side = round(short * share)
        step = side // 2
        squares += [
            (left, top, left + side, top + side)
            for top in range(0, height - side + 1, step)
            for left in range(0, width - side + 1, step)
        ]
    return squares


def _less_one_end(box: Box) -> list[Box]:
    """``box`` less a quarter, or a third, of its height at its top or its bottom, or of its width at a side."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    boxes = []
    for share in END_SHARES:
        cut_x, cut_y = round(width * share), round(height * share)
        boxes += [(left, top + cut_y, right, bottom), (left, top, right, bottom - cut_y)]
        boxes += [(left + cut_x, top, right, bottom), (left, top, right - cut_x, bottom)]
    return boxes


def _plain_share(luminance: np.ndarray, box: Box) -> float:
    """The share of ``box`` in its commonest level: a page's background between lines of text (half
    or more), little of a picture (its flat sky still varies, and carries the mark)."""
    left, top, right, bottom = box
    levels = np.rint(luminance[top:bottom, left:right]).astype(np.int64).ravel()
    commonest = int(np.bincount(np.clip(levels, 0, 255), minlength=256).argmax())
    return float((np.abs(levels - commonest) <= PLAIN_LEVELS).mean())


def _picture_core(luminance: np.ndarray, box: Box) -> Box:
    """``box`` less its rows, then its columns, at the ends that are mostly plain: lines of text (a
    post's, a caption, comments) run together with the picture next to them."""
    left, top, right, bottom = box
    rows = np.flatnonzero(_plain_lines(luminance[top:bottom, left:right]) <= MAX_CORE_PLAIN)
    if len(rows):
        top, bottom = top + int(rows[0]), top + int(rows[-1]) + 1
    columns = np.flatnonzero(_plain_lines(luminance[top:bottom, left:right].T) <= MAX_CORE_PLAIN)
    if len(columns):
        left, right = left + int(columns[0]), left + int(columns[-1]) + 1
    return (left, top, right, bottom)


def _plain_lines(luminance: np.ndarray) -> np.ndarray:
    """Per row, the share of it in its own commonest level, averaged over a line of text's height
    around it: text on any background is mostly that background; a picture's row is not."""
    levels = np.clip(np.rint(luminance), 0, 255).astype(np.int64)
    shares = []
    for row in levels:
        commonest = int(np.bincount(row, minlength=256).argmax())
        shares.append(float((np.abs(row - commonest) <= PLAIN_LEVELS).mean()))
    return np.convolve(shares, np.ones(LINE_ROWS) / LINE_ROWS, mode="same")


def _without_plain_border(luminance: np.ndarray) -> Box:
    """The upload less the rows and columns at its edges in the colour of its corner."""
    border = float(np.median([luminance[0, 0], luminance[0, -1], luminance[-1, 0], luminance[-1, -1]]))
    plain = np.abs(luminance - border) <= PLAIN_LEVELS
    rows = np.flatnonzero(plain.mean(axis=1) < PLAIN_SHARE)
    columns = np.flatnonzero(plain.mean(axis=0) < PLAIN_SHARE)
    if not len(rows) or not len(columns):
        return (0, 0, luminance.shape[1], luminance.shape[0])
    return (int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)


@dataclass(frozen=True)
class Keystone:
    """A picture seen at an angle: ``far_side`` shorter by ``inset`` of its length at each end."""

    far_side: Side
    inset: float

    def corners(self, width: int, height: int) -> np.ndarray:
        """Where the corners (top-left, top-right, bottom-right, bottom-left; float32, 4x2) of a
        picture seen so are, in the ``width`` x ``height`` box it fills."""
        shift_y, shift_x = self.inset * height, self.inset * width
        corners = {
            "left": [[0, shift_y], [width, 0], [width, height], [0, height - shift_y]],
            "right": [[0, 0], [width, shift_y], [width, height - shift_y], [0, height]],
            "top": [[shift_x, 0], [width - shift_x, 0], [width, height], [0, height]],
            "bottom": [[0, 0], [width, 0], [width - shift_x, height], [shift_x, height]],
        }
        return np.float32(corners[self.far_side])

    def straighten(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H×W, or H×W×C) as the picture it shows would be seen face on, at its size."""
        height, width = image.shape[:2]
        rectangle = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        warp = cv2.getPerspectiveTransform(self.corners(width, height), rectangle)
        return cv2.warpPerspective(image, warp, (width, height), flags=cv2.INTER_LINEAR)


KEYSTONES = tuple(Keystone(side, inset) for side in ("left", "right", "top", "bottom") for inset in KEYSTONE_INSETS)
