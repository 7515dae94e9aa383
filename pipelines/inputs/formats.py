"""Named output formats: the sizes a campaign can ask for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MM_PER_INCH = 25.4
# How far a high-resolution pass repaints: enough to draw detail at the larger size, little enough
# that the first pass's composition (what the seed chose) stays where it was.
HIRES_STRENGTH = 0.35


class FormatPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    width: int
    height: int
    dpi: int = 72
    hires_scale: float | None = Field(
        default=None,
        description="Print formats: redraw the picture at this many times the model's size "
        "(img2img passes of at most 2x each) before the final resize.",
    )

    @property
    def aspect(self) -> float:
        return self.width / self.height


def _print_format(name: str, width_mm: float, height_mm: float, dpi: int, hires_scale: float) -> FormatPreset:
    return FormatPreset(
        name=name,
        width=round(width_mm / MM_PER_INCH * dpi),
        height=round(height_mm / MM_PER_INCH * dpi),
        dpi=dpi,
        hires_scale=hires_scale,
    )


FORMAT_PRESETS: dict[str, FormatPreset] = {
    preset.name: preset
    for preset in (
        FormatPreset(name="instagram_square", width=1080, height=1080),
        FormatPreset(name="story", width=1080, height=1920),
        FormatPreset(name="web_banner", width=1920, height=1080),
        _print_format("poster_a3", 297, 420, dpi=150, hires_scale=2.0),
        _print_format("poster_a3_300dpi", 297, 420, dpi=300, hires_scale=4.0),
    )
}
