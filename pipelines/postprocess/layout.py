"""Boxes and corners: where logo and label go on a format."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.charter import Corner

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


def margin(width: int, height: int) -> int:
    return max(4, round(min(width, height) * MARGIN_SHARE))


def box_in_corner(corner: Corner, size: tuple[int, int], canvas: tuple[int, int], inset: int) -> Box:
    """A box of ``size`` placed ``inset`` pixels from the two edges of ``corner``."""
    box_width, box_height = size
    canvas_width, canvas_height = canvas
    left = inset if corner in (Corner.top_left, Corner.bottom_left) else canvas_width - inset - box_width
    top = inset if corner in (Corner.top_left, Corner.top_right) else canvas_height - inset - box_height
    return Box(left, top, box_width, box_height)
