"""Boxes and corners: where logo and label go on a format."""

from __future__ import annotations

from dataclasses import dataclass

from visuels.inputs.charter import Corner

MARGIN_SHARE = 0.03  # outer margin, as a share of the short side


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)

    def overlaps(self, other: Box) -> bool:
        return not (
            self.right <= other.left or other.right <= self.left or self.bottom <= other.top or other.bottom <= self.top
        )


FULL_SCREEN_ASPECT = 9 / 16
APP_TOP_SHARE = 0.14  # Instagram's story safe zone: about 250 px of 1920 at the top
APP_BOTTOM_SHARE = 0.20  # and about 340 px at the bottom (reply bar, stickers)


def margin(width: int, height: int) -> int:
    return max(4, round(min(width, height) * MARGIN_SHARE))


def app_covered(width: int, height: int) -> tuple[int, int]:
    """Rows at the top and bottom that an app's own interface covers, on full-screen vertical
    formats (stories, reels: 9:16): its header and its reply bar. Nothing that must be seen goes there."""
    if abs(width / height - FULL_SCREEN_ASPECT) > 0.01:
        return 0, 0
    return round(APP_TOP_SHARE * height), round(APP_BOTTOM_SHARE * height)


def box_in_corner(corner: Corner, size: tuple[int, int], canvas: tuple[int, int], inset: int) -> Box:
    """A box of ``size`` placed ``inset`` pixels from the two edges of ``corner`` (and clear of what an app covers)."""
    box_width, box_height = size
    canvas_width, canvas_height = canvas
    covered_top, covered_bottom = app_covered(canvas_width, canvas_height)
    left = inset if corner in (Corner.top_left, Corner.bottom_left) else canvas_width - inset - box_width
    if corner in (Corner.top_left, Corner.top_right):
        top = inset + covered_top
    else:
        top = canvas_height - inset - covered_bottom - box_height
    return Box(left, top, box_width, box_height)
