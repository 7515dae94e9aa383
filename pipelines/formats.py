"""Named output formats: the sizes a campaign can ask for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MM_PER_INCH = 25.4


class FormatPreset(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    width: int
    height: int
    dpi: int = 72

    @property
    def aspect(self) -> float:
        return self.width / self.height


def _print_format(name: str, width_mm: float, height_mm: float, dpi: int) -> FormatPreset:
    return FormatPreset(
        name=name,
        width=round(width_mm / MM_PER_INCH * dpi),
        height=round(height_mm / MM_PER_INCH * dpi),
        dpi=dpi,
    )


FORMAT_PRESETS: dict[str, FormatPreset] = {
    preset.name: preset
    for preset in (
        FormatPreset(name="instagram_square", width=1080, height=1080),
        FormatPreset(name="story", width=1080, height=1920),
        FormatPreset(name="web_banner", width=1920, height=1080),
        _print_format("poster_a3", 297, 420, dpi=150),
    )
}
