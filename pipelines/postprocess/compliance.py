"""Compliance of one output with its charter: measurements, then pass or fail with reasons."""

from __future__ import annotations

from pydantic import BaseModel
from visuels.inputs.charter import Charter
from visuels.postprocess import findings
from visuels.postprocess.chain import PostprocessResult
from visuels.postprocess.coherence import StyleSignature
from visuels.postprocess.logo import MIN_GRAPHIC_CONTRAST
from visuels.postprocess.typography import MIN_TEXT_CONTRAST


class Compliance(BaseModel):
    palette_before: float
    palette_after: float
    logo_corner: str
    logo_variant: str
    logo_contrast: float
    logo_clear_zone: bool
    label_text_px: int
    label_contrast: float
    label_crops: dict[str, bool] = {}  # inside each centred crop (1:1, 4:5, 9:16, 16:9); older records: none
    text_px: int
    text_lines: int
    text_contrast: float
    text_required_contrast: float = MIN_TEXT_CONTRAST  # 3:1 for large text in a template
    text_plate: bool
    text_overflow: bool
    collisions: list[str]
    passed: bool
    reasons: list[str]
    notes: list[str] = []  # choices a designer should know of: the logo out of its usual corner...
    style: StyleSignature | None = None  # colours, for the campaign's coherence (older records: none)


def assess(result: PostprocessResult, charter: Charter) -> Compliance:
    """Check one post-processed output against the charter's rules."""
    spec = charter.spec
    reasons = []
    if result.palette_after < spec.palette_grading.min_conformity:
        minimum = f"{spec.palette_grading.min_conformity:.0%}"
        reasons.append(findings.PALETTE_UNDER.format(conformity=f"{result.palette_after:.0%}", minimum=minimum))
    if result.logo.contrast < MIN_GRAPHIC_CONTRAST:
        contrast = f"{result.logo.contrast:.1f}"
        reasons.append(findings.LOGO_CONTRAST_UNDER.format(contrast=contrast, minimum=MIN_GRAPHIC_CONTRAST))
    if not result.logo.clear_zone_ok or not result.logo.width_ok:
        reasons.append(findings.LOGO_ZONE)
    if result.label.text_px < spec.ai_label.min_text_px:
        reasons.append(findings.LABEL_TEXT_UNDER.format(size=result.label.text_px, minimum=spec.ai_label.min_text_px))
    if result.label.contrast < MIN_TEXT_CONTRAST:
        contrast = f"{result.label.contrast:.1f}"
        reasons.append(findings.LABEL_CONTRAST_UNDER.format(contrast=contrast, minimum=MIN_TEXT_CONTRAST))
    if result.text.overflow:
        reasons.append(findings.TEXT_DOES_NOT_FIT)
    if result.text.contrast < result.text.required_contrast:
        contrast, minimum = f"{result.text.contrast:.1f}", f"{result.text.required_contrast:g}"
        reasons.append(findings.TEXT_CONTRAST_UNDER.format(contrast=contrast, minimum=minimum))
    reasons += result.text.collisions
    lost = [ratio for ratio in spec.ai_label.keep_in_crops if not result.label.crops.get(ratio, True)]
    label_note = findings.LABEL_OUTSIDE_CROPS.format(crops=", ".join(lost)) if lost else None
    return Compliance(
        palette_before=round(result.palette_before, 4),
        palette_after=round(result.palette_after, 4),
        logo_corner=result.logo.corner,
        logo_variant=result.logo.variant,
        logo_contrast=round(result.logo.contrast, 2),
        logo_clear_zone=result.logo.clear_zone_ok and result.logo.width_ok,
        label_text_px=result.label.text_px,
        label_contrast=round(result.label.contrast, 2),
        label_crops=result.label.crops,
        text_px=result.text.name.size,
        text_lines=len(result.text.name.lines),
        text_contrast=round(result.text.contrast, 2),
        text_required_contrast=result.text.required_contrast,
        text_plate=result.text.plate,
        text_overflow=result.text.overflow,
        collisions=result.text.collisions,
        passed=not reasons,
        reasons=reasons,
        notes=[note for note in (result.logo.note, result.text.note, label_note) if note],
        style=result.style,
    )
