"""Campaign coherence: how far each output's colours stray from the campaign's look.

Each output's style signature (mean and spread of its colours in CIELAB, and its palette
histogram: the share of pixels nearest each charter colour) is taken after palette grading and
before the overlays, which every picture shares. An output's style distance is measured against
the campaign's baseline, and against the charter's reference images; beyond the charter's
thresholds it is an outlier ("off-tone"), flagged in the report and listed first for review.

The baseline is fixed, so that a picture's flag does not move when other communes are rendered:
the median signature of the pictures of the campaign's first report, kept in
``style-baseline.json`` beside it, until the designer fixes it again (``visuels baseline``) from
the pictures they choose.

Distance, in ΔE-like units: |Δ mean Lab| + ½ |Δ spread Lab| + 100 × (half the L1 distance of the
palette histograms, i.e. the share of pixels that would have to change colour).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel
from visuels._internal.atomic import staged, write_text_atomic
from visuels._internal.json_text import read_json
from visuels.inputs.charter import Charter
from visuels.inputs.file_names import files_in
from visuels.postprocess.palette import palette_shares, rgb_to_lab, score_copy

log = logging.getLogger(__name__)

COHERENCE_FILE = "coherence.json"
BASELINE_FILE = "style-baseline.json"
REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class StyleSignature(BaseModel):
    lab_mean: list[float]
    lab_spread: list[float]
    palette: list[float]  # share of pixels nearest each charter colour, in the charter's order


class StyleBaseline(BaseModel):
    """What the campaign's pictures are measured against: fixed once, by its first report or by
    the designer."""

    signature: StyleSignature
    pictures: int  # how many pictures' median it is
    fixed_at: str  # ISO 8601, UTC
    fixed_by: Literal["first report", "designer"]


class Coherence(BaseModel):
    """One output's distances (to the campaign's baseline, to the charter's references), and
    whether it is an outlier."""

    distance: float
    reference_distance: float | None
    outlier: bool


def style_signature(image: Image.Image, palette_rgb: tuple[tuple[int, int, int], ...]) -> StyleSignature:
    small = score_copy(image)
    lab = rgb_to_lab(np.asarray(small)).reshape(-1, 3)
    return StyleSignature(
        lab_mean=[round(float(value), 3) for value in lab.mean(axis=0)],
        lab_spread=[round(float(value), 3) for value in lab.std(axis=0)],
        palette=[round(float(value), 4) for value in palette_shares(small, palette_rgb)],
    )


def median_signature(signatures: list[StyleSignature]) -> StyleSignature:
    def median(attribute: str) -> list[float]:
        return [float(value) for value in np.median([getattr(s, attribute) for s in signatures], axis=0)]

    return StyleSignature(lab_mean=median("lab_mean"), lab_spread=median("lab_spread"), palette=median("palette"))


def style_distances(signatures: list[StyleSignature], to: StyleSignature) -> np.ndarray:
    """Each signature's style distance to ``to``, all at once (a region's are 106,704)."""

    def gaps(attribute: str) -> np.ndarray:
        values = np.array([getattr(signature, attribute) for signature in signatures], dtype=np.float64)
        return values.reshape(len(signatures), -1) - np.array(getattr(to, attribute), dtype=np.float64)

    mean = np.sqrt((gaps("lab_mean") ** 2).sum(axis=1))
    spread = np.sqrt((gaps("lab_spread") ** 2).sum(axis=1))
    palette = np.abs(gaps("palette")).sum(axis=1) / 2
    return mean + 0.5 * spread + 100.0 * palette


def reference_signature(charter: Charter) -> StyleSignature | None:
    """The median signature of the charter's reference images (what the brand looks like)."""
    palette = tuple(colour.rgb for colour in charter.spec.palette)
    signatures = []
    for path in files_in(charter.references, REFERENCE_SUFFIXES):
        with Image.open(path) as image:
            signatures.append(style_signature(image, palette))
    return median_signature(signatures) if signatures else None


def assess_campaign(
    signatures: dict[str, StyleSignature], charter: Charter, baseline: StyleBaseline | None
) -> dict[str, Coherence]:
    """Each output's coherence (by key) against the campaign's baseline and the charter's references."""
    if not signatures:
        return {}
    limits = charter.spec.coherence
    references = reference_signature(charter)
    listed = list(signatures.values())
    distances = style_distances(listed, baseline.signature) if baseline is not None else np.zeros(len(listed))
    to_references = style_distances(listed, references) if references is not None else None
    assessed = {}
    for index, key in enumerate(signatures):
        distance = float(distances[index])
        to_reference = None if to_references is None else float(to_references[index])
        outlier = distance > limits.max_distance or (
            limits.max_reference_distance is not None
            and to_reference is not None
            and to_reference > limits.max_reference_distance
        )
        assessed[key] = Coherence(
            distance=round(distance, 2),
            reference_distance=None if to_reference is None else round(to_reference, 2),
            outlier=outlier,
        )
    return assessed


def new_baseline(signatures: list[StyleSignature], fixed_by: Literal["first report", "designer"]) -> StyleBaseline:
    return StyleBaseline(
        signature=median_signature(signatures),
        pictures=len(signatures),
        fixed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        fixed_by=fixed_by,
    )


def read_baseline(folder: Path) -> StyleBaseline | None:
    """The campaign's baseline; None when there is none, or when its file is damaged."""
    try:
        return StyleBaseline.model_validate_json((folder / BASELINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def campaign_baseline(folder: Path, signatures: list[StyleSignature]) -> StyleBaseline | None:
    """The campaign's baseline; fixed now from ``signatures`` (its first report's pictures) when
    it has none, or when its file is damaged (said in the log). Two machines reporting at once
    keep the one written first."""
    existing = read_baseline(folder)
    if existing is not None or not signatures:
        return existing
    damaged = (folder / BASELINE_FILE).exists()
    baseline = new_baseline(signatures, "first report")
    with staged(folder / BASELINE_FILE) as file:  # its temporary is removed whatever happens
        file.path.write_text(baseline.model_dump_json(indent=1), encoding="utf-8")
        if damaged:
            log.warning("%s was damaged: fixed again from the %d pictures recorded", BASELINE_FILE, len(signatures))
            file.publish()
            return baseline
        try:
            os.link(file.path, folder / BASELINE_FILE)  # refused if another report fixed one meanwhile
        except FileExistsError:
            return read_baseline(folder)
    return baseline


def fix_baseline(folder: Path, signatures: list[StyleSignature]) -> StyleBaseline:
    """The designer fixes the campaign's baseline again, from the pictures they chose."""
    baseline = new_baseline(signatures, "designer")
    write_text_atomic(folder / BASELINE_FILE, baseline.model_dump_json(indent=1))
    return baseline


def write_coherence(folder: Path, assessed: dict[str, Coherence]) -> Path:
    """``coherence.json`` beside the report: the review pages read it to list outliers first."""
    path = folder / COHERENCE_FILE
    write_text_atomic(path, json.dumps({key: value.model_dump() for key, value in assessed.items()}, indent=1))
    return path


def read_coherence(folder: Path) -> dict[str, Coherence]:
    try:
        data = read_json(folder / COHERENCE_FILE)
        if isinstance(data, dict):
            return {key: Coherence.model_validate(value) for key, value in data.items()}
    except (OSError, ValueError):  # a pydantic ValidationError is a ValueError too
        pass
    # No report written yet, or the file damaged: nothing is an outlier so far; the next report writes it.
    return {}
