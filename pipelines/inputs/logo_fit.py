"""Whether a charter's logo, at its minimum size and with its clear zone, fits each format: checked
when a campaign is loaded, and the geometry post-processing places the logo with."""

from __future__ import annotations

import math

from visuels.errors import CharterError
from visuels.inputs.charter import Charter
from visuels.inputs.formats import FormatPreset
from visuels.inputs.logos import logo_size


def logo_geometry(charter: Charter, width: int, height: int) -> tuple[int, int, int]:
    """Logo width and height at the charter's minimum share, and the clear zone, in pixels."""
    rules = charter.spec.logo
    reference = logo_size(charter.logo_colour)
    logo_width = math.ceil(rules.min_width_share * min(width, height))
    logo_height = max(1, round(logo_width * reference[1] / reference[0]))
    return logo_width, logo_height, math.ceil(rules.clear_zone * logo_height)


def check_logo_fits(charter: Charter, preset: FormatPreset) -> None:
    """The logo with its clear zone must fit in a quarter of the format, or it crowds out the picture."""
    logo_width, logo_height, clear = logo_geometry(charter, preset.width, preset.height)
    zone = (logo_width + 2 * clear, logo_height + 2 * clear)
    if zone[0] > preset.width / 2 or zone[1] > preset.height / 2:
        raise CharterError(
            charter.path,
            "logo.min_width_share",
            "the logo with its clear zone needs {zone_width}x{zone_height} px, more than a quarter "
            "of {name} ({width}x{height})",
            zone_width=zone[0],
            zone_height=zone[1],
            name=preset.name,
            width=preset.width,
            height=preset.height,
        )
