"""Photos smaller than the pictures drawn from them.

``fit_photo`` enlarges a photo to the size its pictures are drawn at; past twice its pixels the
enlargement's blur shows through (img2img keeps it; a ControlNet's edges thin out). Said by
``visuels check`` and when a render is planned, never refused: a commune may have no better photo.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from visuels.errors import Text
from visuels.inputs.campaign import Campaign
from visuels.inputs.photos import CREDITS_FILE, CommunePhoto, enlargement, upright_size
from visuels.planning.jobs import RenderJob

SOFT_ENLARGEMENT = 2.0
SHOWN = 10  # photos named one by one; a region's thousands are counted after them


@dataclass(frozen=True)
class SoftPhoto:
    """A photo and the largest size a campaign's pictures are drawn from it at."""

    photo: CommunePhoto
    size: tuple[int, int]  # upright
    drawn_at: tuple[int, int]

    @property
    def enlargement(self) -> float:
        return enlargement(self.size, *self.drawn_at)

    @property
    def where(self) -> str:
        """The credits file (from the working folder, where it is under it) and its field naming the photo."""
        credits = self.photo.path.parent / CREDITS_FILE
        shown = credits.relative_to(Path.cwd()) if credits.is_relative_to(Path.cwd()) else credits
        return f"{shown}, {self.photo.field}"

    def message(self) -> Text:
        times = self.enlargement
        return Text(
            "{file} is {width}x{height}: enlarged {times}x to the {drawn_width}x{drawn_height} its pictures are "
            "drawn at, they will look soft (a photo of {sharp_width}x{sharp_height} or more draws them sharp)",
            file=self.photo.path.name,
            width=self.size[0],
            height=self.size[1],
            times=round(times, 1),
            drawn_width=self.drawn_at[0],
            drawn_height=self.drawn_at[1],
            sharp_width=math.ceil(self.size[0] * times),
            sharp_height=math.ceil(self.size[1] * times),
        )


def soft_photos(campaign: Campaign, jobs: Iterable[RenderJob]) -> list[SoftPhoto]:
    """The campaign's photos that its jobs enlarge more than SOFT_ENLARGEMENT times, each once (at
    the size that enlarges it most), in the order the jobs first use them."""
    photos = {str(photo.path): photo for commune in campaign.communes for photo in commune.photos}
    sizes: dict[str, tuple[int, int]] = {}
    worst: dict[str, SoftPhoto] = {}
    for job in jobs:
        if job.photo is None:
            continue
        path = job.photo.path
        if path not in sizes:
            sizes[path] = upright_size(photos[path].path)
        found = SoftPhoto(photos[path], sizes[path], (job.generation_width, job.generation_height))
        if found.enlargement > SOFT_ENLARGEMENT and (path not in worst or found.enlargement > worst[path].enlargement):
            worst[path] = found
    return list(worst.values())


def more_soft_photos(count: int) -> Text:
    """What follows the first SHOWN photos named: how many more are enlarged that much."""
    if count == 1:
        return Text("... and 1 more photo enlarged more than twice (`visuels check` names it)")
    return Text("... and {count} more photos enlarged more than twice (`visuels check` names each)", count=count)
