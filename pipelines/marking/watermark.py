"""Invisible watermark: a 64-bit payload in the luminance, found again after crops and resizes.

Design (tiled spread spectrum with a synchronisation pattern):
- The pattern lives on a canonical CANONICAL x CANONICAL grid stretched over the whole picture,
  so a plain resize, whatever the factor, changes nothing for the decoder.
- The grid is tiled with TILE x TILE tiles of CHIP x CHIP chips (±1). A quarter of a tile's chips
  (every other chip of every other row) carry a known synchronisation pattern; the rest carry
  the coded message, each coded bit on 3-4 chips in key-chosen places with key-chosen signs.
- Perceptual masking: where the picture is flat (a plate, a template's band, a clear sky) its
  tiles would show, and no texture of the picture's own drowns them: the pattern is written at
  FLAT_SHARE of its amplitude there, at all of it elsewhere. The detector reads signs, not levels:
  files marked before at the full amplitude read the same.
- Message: payload + CRC-32 (96 bits), protected by a rate-1/2 convolutional code (constraint
  length 7, generators 171/133 octal, zero-terminated: 204 coded bits), decoded by soft-decision
  Viterbi (``visuels._internal.payload_code``, shared with the starting-noise mark).
- Decoding: luminance on the canonical grid, high-passed and whitened; its autocorrelation peaks
  at the tile period (larger than TILE after a crop); every tile is folded into one; the sync
  pattern's circular cross-correlation gives the tile's shift; the chips give soft coded bits.
- Orientation: a flip or a quarter turn of the picture permutes the folded tile's cells the same
  way (a dihedral transform of the tile); the sync pattern is not symmetric, so of the tile's 8
  variants the one that matches it says how the picture was flipped or turned (``Detection``).
- Rotation by a small angle (a straightened horizon, a scan): the tile lattice turns with the
  picture, and the autocorrelation's strongest peaks off the axes point along it. Their angles
  (in the picture's own pixels, whatever its aspect) are tried: the luminance is turned back,
  its empty corners masked out, and the search above runs again on it.
- Read back before a picture leaves: where a picture's own texture happens to oppose enough of
  the coded bits under its key that the mark does not decode even untouched (about 1 picture and
  key in 300 on a textured photograph, benchmarks/RESULTS.md), ``embed_readable`` marks it again
  with the pattern 1.5, then 2 times as strong, then stronger still where the picture is busy
  (3 to 4 times there: blown-up noise, what models with random weights draw, needs it); the rest
  keep the usual amplitude, to the byte.
- Decision: a payload is reported only when the CRC-32 of the decoded message matches. On an
  unmarked picture the decoded message is, as far as the CRC is concerned, random, so each
  decoding matches with probability 2^-32; a picture gets at most MAX_ATTEMPTS decodings
  (PERIOD_CANDIDATES x SYNC_CANDIDATES = 10 on the picture as it is, and as many again for each
  of at most ANGLE_CANDIDATES angles and FRAMED_CANDIDATES places inside the upload: 70; ranking
  periods, orientations and angles by the sync peak decodes nothing), so the false-positive rate
  is at most 70 * 2^-32 = 1.6e-8 per picture, far under the 1e-6 asked (union bound; 160 unmarked
  pictures in the tests, 10,000 in benchmarks/watermark_false_positives.py).
- A screenshot, or a photograph of a poster: a picture shown small inside a page or a street has
  tiles too small for the search on the whole upload; the places where a picture may sit
  (``visuels.marking.framing``: a page's busy areas, squares over a photograph, a collage's cells) are ranked by how
  clearly the sync pattern shows in each (no decoding), and the clearest FRAMED_CANDIDATES
  searched again as crops; the detection says where (``within``).
- A poster photographed at an angle: its far side shorter, its tiles shrink across it beyond what
  one period fits (the search bears a side about 12 % shorter). The upload and the two likeliest
  places in it are also straightened as if seen at an angle from each side (``framing.KEYSTONES``)
  and ranked with the places above, the same FRAMED_CANDIDATES searched: no more decodings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import cv2
import numpy as np
from visuels._internal.payload_code import CODED_BITS, PAYLOAD_BITS, coded_bits, decode
from visuels.errors import Text
from visuels.marking.framing import KEYSTONES, Box, Keystone, at_most, picture_boxes

CANONICAL = 512
TILE = 128
CHIP = 4
CHIPS = TILE // CHIP  # per side
AMPLITUDE = 3.3  # luminance levels (0-255): PSNR 39.2 dB on a picture busy all over, more where it is flat
MIN_PERIOD, MAX_PERIOD = 96, 264  # tile periods searched on the canonical grid (crops to a half per side)
PERIOD_CANDIDATES = 5  # the canonical period, then up to 4 from the autocorrelation
REFINE_STEPS = (1.0, 0.5, 0.25)  # canonical pixels tried each side of each period, per axis, in turn
AUTOCORRELATION_PEAKS = 4  # per axis
SYNC_CANDIDATES = 2
ANGLE_CANDIDATES = 2  # rotations tried when the picture as it is gives nothing
MIN_ANGLE, MAX_ANGLE = 0.3, 20.0  # degrees: below, the search as it is copes; beyond, not a tilt
ANGLE_SECTORS = 18  # autocorrelation peaks kept per 10 degrees: long edges make ridges of peaks
ROTATION_SIDE = 1024  # the luminance is turned at most this large (pixels, long side): speed
# Sync strength (peak over spread) below which a turned-back picture is not decoded at all: on
# unmarked pictures it stays under 6.1 (200 measured, 99th percentile 5.7), on marked ones turned
# by up to 10 degrees it is 6.9 or more (benchmarks/RESULTS.md). Only speed depends on it.
ROTATION_SYNC_GATE = 6.3
# The same for a place inside a larger upload (a screenshot): on unmarked pages the places' sync
# peaks are 4.9 (median), 6.0 (99th percentile) of 526 measured; marked pictures shown a fifth of
# the screen wide on the hardest host, 6.0 and more. Only speed depends on it.
FRAMED_SYNC_GATE = 5.8
BAND_ROWS = 64  # rows marked at a time (embed)
# The pattern's amplitude, times AMPLITUDE, tried in turn (embed_readable): all over, and extra where
# the picture is busy (times its texture, 0-1). A busy texture is what drowns the usual pattern, and
# hides a stronger one: blown-up noise (what a model with random weights draws) needs up to 4 there.
STRENGTHS = ((1.0, 0.0), (1.5, 0.0), (2.0, 0.0), (2.0, 1.0), (2.0, 2.0))
TEXTURE_KNEE = 16.0  # local contrast (luminance levels, high-passed) at which a picture is fully busy
# Perceptual masking: where a picture is flat (a plate, a template's band, a clear sky) the eye
# sees the pattern's tiles, and the detector needs less of it there (no texture of its own drowns
# it). The usual amplitude is FLAT_SHARE of AMPLITUDE where the picture's high-passed luminance has
# a local contrast of FLAT_FLOOR levels or less, rising to all of it FLAT_RANGE levels above, measured
# over MASK_SPREAD canonical pixels (a glyph's edge masks only its own surroundings, as in the eye).
# The floor is above the masked pattern's own contrast (1.35 levels; 1.9 at most, where the weight
# read is 0.05 higher: under a level): a marked picture's flat parts still read as flat, so
# ``remove`` takes away what ``embed`` put there. At 0.6 the offsets round to about the same levels
# as at 0.5 (±2), which lost more after attacks; a floor of 2 masked more, and lost more.
FLAT_SHARE = 0.6
FLAT_FLOOR = 1.6
FLAT_RANGE = 2.0
MASK_SPREAD = 2.0
FRAMED_CANDIDATES = 4  # places inside a larger upload (a screenshot) searched when the whole gives nothing
STRAIGHTENED_BOXES = 2  # of those places, the likeliest also straightened as if seen at an angle
MAX_ATTEMPTS = PERIOD_CANDIDATES * SYNC_CANDIDATES * (1 + ANGLE_CANDIDATES + FRAMED_CANDIDATES)


@dataclass(frozen=True)
class Detection:
    payload: int | None  # the 64-bit payload, or None when no CRC-valid payload was found
    sync_strength: float  # sync peak over the correlation's spread: how clearly the tiles were found
    attempts: int
    flipped: bool = False  # found mirrored (a horizontal or vertical flip)
    quarter_turns: int = 0  # found turned by this many quarter turns (counter-clockwise)
    rotation: float = 0.0  # found turned by this many degrees besides (counter-clockwise)
    within: Box | None = None  # found in this part of a larger upload (a screenshot), not the whole
    keystone: Keystone | None = None  # found straightened: seen at an angle, so

    def geometry(self) -> Text | None:
        """How the picture was found changed, in words ("flipped, turned +3.0°"); None if as marked."""
        parts = []
        if self.within is not None:
            left, top, right, bottom = self.within
            box = {"left": left, "top": top, "right": right, "bottom": bottom}
            parts.append(Text("inside the upload at ({left}, {top})-({right}, {bottom})", **box))
        parts += [Text("at an angle")] if self.keystone else []
        parts += [Text("flipped")] if self.flipped else []
        if self.quarter_turns:
            parts.append(Text("turned {degrees}°", degrees=90 * self.quarter_turns))
        if self.rotation:
            parts.append(Text("turned {degrees}°", degrees=f"{self.rotation:+.1f}"))
        if not parts:
            return None
        joined = parts[-1]
        for part in reversed(parts[:-1]):
            joined = Text("{first}, {rest}", first=part, rest=joined)  # as the verdict lists marks
        return joined


@dataclass(frozen=True)
class _Orientation:
    """How a folded tile must be transformed to read as embedded: transposed, then turned."""

    transposed: bool
    turns: int

    def apply(self, tile: np.ndarray) -> np.ndarray:
        return np.rot90(tile.T if self.transposed else tile, self.turns)

    def undo(self, tile: np.ndarray) -> np.ndarray:
        turned_back = np.rot90(tile, -self.turns)
        return turned_back.T if self.transposed else turned_back


ORIENTATIONS = tuple(_Orientation(transposed, turns) for transposed in (False, True) for turns in range(4))


@lru_cache(maxsize=4)
def _layout(key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sync chip signs, which data chip carries which coded bit, and the data chips' signs."""
    rng = np.random.default_rng(key)
    rows, cols = np.indices((CHIPS, CHIPS))
    is_sync = (rows % 2 == 0) & (cols % 2 == 0)
    sync = np.where(is_sync, rng.choice([-1.0, 1.0], size=(CHIPS, CHIPS)), 0.0)
    data_cells = np.flatnonzero(~is_sync)
    bit_of_cell = np.resize(np.arange(CODED_BITS), len(data_cells))
    rng.shuffle(bit_of_cell)
    signs = rng.choice([-1.0, 1.0], size=len(data_cells))
    return sync, data_cells, bit_of_cell, signs


@lru_cache(maxsize=64)
def _canonical_pattern(payload: int, key: int) -> np.ndarray:
    """The ±1 chip pattern over the canonical grid, float32."""
    sync, data_cells, bit_of_cell, signs = _layout(key)
    chips = sync.copy().reshape(-1)
    bits = coded_bits(payload).astype(np.float64) * 2 - 1
    chips[data_cells] = bits[bit_of_cell] * signs
    tile = np.kron(chips.reshape(CHIPS, CHIPS), np.ones((CHIP, CHIP)))
    repeats = CANONICAL // TILE
    return np.tile(tile, (repeats, repeats)).astype(np.float32)


def embed(rgb: np.ndarray, payload: int, key: int, strength: float = 1.0, textured: float = 0.0) -> np.ndarray:
    """Add the payload's pattern, ``strength`` times the usual amplitude (plus ``textured`` times
    AMPLITUDE where the picture is busy), to the luminance of an (h, w, 3) uint8 image; returns uint8."""
    return _added(rgb, _weighted_pattern(_high_passed(rgb), payload, key, strength, textured))


def _added(rgb: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """``rgb`` with the canonical-grid ``pattern`` (luminance levels) stretched over it and added."""
    height, width = rgb.shape[:2]
    offset = cv2.resize(pattern, (width, height))
    # Same offset on R, G and B: a pure luminance change, no colour shift (the grey-to-RGB copy
    # is OpenCV's fastest way to repeat it). OpenCV adds in float32 and rounds half to even with
    # saturation, as rint and clip would: the same bytes, 3x faster. A band of rows at a time:
    # its three-channel offsets stay in the core's cache for the add.
    marked = np.empty(rgb.shape, dtype=np.uint8)  # C order: each band a contiguous destination
    for top in range(0, height, BAND_ROWS):
        rows = slice(top, top + BAND_ROWS)
        three = cv2.cvtColor(offset[rows], cv2.COLOR_GRAY2RGB)
        cv2.add(np.ascontiguousarray(rgb[rows]), three, dst=marked[rows], dtype=cv2.CV_8U)
    return marked


def embed_readable(
    rgb: np.ndarray, payload: int, key: int, stored: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """``embed``, read back where it was put (``read_as_embedded``) from what the file will hold
    of it (``stored``: a lossy encoding decoded again; default the marked pixels), and marked
    again more strongly (``STRENGTHS``) while the payload does not come back. Returns the marked
    pixels and the strengths that read back (all over, extra on texture); None where none did
    (marked at the strongest: the caller says so)."""
    residual = _high_passed(rgb)  # the masks' source, once for every strength tried
    for strength, textured in STRENGTHS:
        marked = _added(rgb, _weighted_pattern(residual, payload, key, strength, textured))
        if read_as_embedded(stored(marked) if stored else marked, key) == payload:
            return marked, (strength, textured)
    return marked, None


def _high_passed(rgb: np.ndarray) -> np.ndarray:
    """The picture's luminance on the canonical grid, less its smooth part: what the masks read."""
    # Reduced in bytes, then made floats: a third of the time, and no weight moves by a measurable step.
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (CANONICAL, CANONICAL), interpolation=cv2.INTER_AREA)
    canonical = grey.astype(np.float32)
    return canonical - cv2.GaussianBlur(canonical, (0, 0), 2.5)


def _weighted_pattern(residual: np.ndarray, payload: int, key: int, strength: float, textured: float) -> np.ndarray:
    """The pattern's offsets on the canonical grid (luminance levels): ``strength`` times the usual
    amplitude, masked by the picture's high-passed luminance ``residual`` (FLAT_SHARE of AMPLITUDE
    where flat, all of it where not), plus ``textured`` times AMPLITUDE where busy."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError("payload must be a 64-bit unsigned integer")
    unmasked = np.clip((_local_contrast(residual, MASK_SPREAD) - FLAT_FLOOR) / FLAT_RANGE, 0.0, 1.0)
    weight = (AMPLITUDE * strength) * (FLAT_SHARE + (1 - FLAT_SHARE) * unmasked)
    if textured:  # how busy, as the detector sees it: its local contrast, over TEXTURE_KNEE
        weight += (AMPLITUDE * textured) * np.minimum(_local_contrast(residual, 8.0) / TEXTURE_KNEE, 1.0)
    return _canonical_pattern(payload, key) * weight


def _local_contrast(residual: np.ndarray, spread: float) -> np.ndarray:
    """The high-passed luminance's local contrast (root mean square), over ``spread`` pixels."""
    return np.sqrt(cv2.GaussianBlur(residual * residual, (0, 0), spread))


def read_as_embedded(rgb: np.ndarray, key: int) -> int | None:
    """The payload read where ``embed`` put it: the canonical period, no shift, no turn or flip.
    ``detect`` searches every geometry and finds whatever this finds on an untouched picture."""
    residual = _whitened_residual(_luminance(rgb))
    tiles = CANONICAL // TILE  # at the canonical period, folding is the mean of whole tiles
    tile = residual.reshape(tiles, TILE, tiles, TILE).mean(axis=(0, 2), dtype=np.float64)
    return decode(_soft_bits(tile, key))


def remove(rgb: np.ndarray, payload: int, key: int, where: np.ndarray | None = None) -> np.ndarray:
    """Subtract the payload's pattern (where ``where`` is True): a derivative's unchanged areas still
    carry their original's mark, which would otherwise garble the new payload laid over it. At the
    usual strength: of a mark written stronger (``embed_readable``) a part stays, and the new mark
    is read back in its turn."""
    height, width = rgb.shape[:2]
    # Masked as ``embed`` masked it: read on the marked picture, its flat parts still read as flat.
    pattern = cv2.resize(_weighted_pattern(_high_passed(rgb), payload, key, 1.0, 0.0), (width, height))
    if where is not None:
        pattern = pattern * where
    return np.clip(np.rint(rgb.astype(np.float32) - pattern[..., None]), 0, 255).astype(np.uint8)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _whitened_residual(luminance: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Canonical-grid luminance minus its smooth part, divided by the local contrast; zero outside
    ``valid`` (the picture's own pixels, where it was turned back)."""
    canonical = cv2.resize(luminance, (CANONICAL, CANONICAL), interpolation=cv2.INTER_AREA)
    residual = canonical - cv2.GaussianBlur(canonical, (0, 0), 2.5)
    local = np.sqrt(cv2.GaussianBlur(residual * residual, (0, 0), 8.0)) + 1.0
    # Clipped: glyph and logo edges would otherwise outweigh the faint pattern.
    whitened = np.clip(residual / local, -2.5, 2.5)
    if valid is not None:
        inside = cv2.resize(valid, (CANONICAL, CANONICAL), interpolation=cv2.INTER_AREA) > 0.999
        # The edge of the turned picture's corners is no pattern: keep clear of it.
        whitened *= cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(np.float32)
    return whitened


def _autocorrelation(residual: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft2(residual)
    return np.fft.irfft2(spectrum * np.conj(spectrum), s=residual.shape)


def _along(residual: np.ndarray) -> np.ndarray:
    """The autocorrelation along the rows (shifts between rows of 0 and ±1), per pixel of overlap,
    without wrapping
    round: a circular one folds a period near half the grid onto its mirror image (a crop to a
    quarter of the picture's area has a period of exactly half the grid)."""
    rows = np.fft.rfft(residual, n=2 * CANONICAL, axis=1)
    below = rows[1:] * np.conj(rows[:-1])
    power = (rows * np.conj(rows)).sum(axis=0) + below.sum(axis=0) + np.conj(below).sum(axis=0)
    # Divided by the overlap: a long period is seen over fewer pixels, not less clearly.
    return np.fft.irfft(power, n=2 * CANONICAL)[:CANONICAL] / (CANONICAL - np.arange(CANONICAL))


def _periods(residual: np.ndarray) -> list[tuple[float, float]]:
    """Candidate tile periods (x, y) from the autocorrelation's strongest peaks along each axis."""
    along_x, along_y = _along(residual), _along(np.ascontiguousarray(residual.T))

    def peaks(profile: np.ndarray) -> list[float]:
        lags = np.arange(MIN_PERIOD, MAX_PERIOD + 1)
        values = profile[lags]
        is_peak = (values >= profile[lags - 1]) & (values >= profile[lags + 1])
        found = []
        for lag in lags[is_peak][np.argsort(values[is_peak])[::-1][:AUTOCORRELATION_PEAKS]]:
            left, centre, right = profile[lag - 1], profile[lag], profile[lag + 1]
            denominator = left - 2 * centre + right
            offset = 0.5 * (left - right) / denominator if denominator < 0 else 0.0
            found.append(float(lag + np.clip(offset, -0.5, 0.5)))
        return found

    # Overlays (label, logo, text lines) make peaks of their own, so several are kept, and paired
    # across the axes (a crop's share differs between them); a crop of the same share on both
    # axes gives equal periods, so each peak is also tried for both axes.
    xs, ys = peaks(along_x), peaks(along_y)
    pairs = [(x, y) for x in xs[:3] for y in ys[:3]]
    return list(dict.fromkeys(pairs + [(p, p) for p in xs + ys]))


def _angles(autocorrelation: np.ndarray, height: int, width: int) -> list[float]:
    """Angles (degrees, counter-clockwise) the picture may have been turned by, from the strongest
    autocorrelation peaks off the axes, in the picture's own pixels; at most ANGLE_CANDIDATES."""
    shifted = np.fft.fftshift(autocorrelation)
    offsets = np.arange(CANONICAL) - CANONICAL // 2
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    radius = np.hypot(dx, dy)
    upper = (dy > 0) | ((dy == 0) & (dx > 0))  # the autocorrelation is symmetric: half is enough
    local_max = shifted >= cv2.dilate(shifted.astype(np.float32), np.ones((7, 7), np.uint8))
    candidates = np.flatnonzero(upper & local_max & (radius >= MIN_PERIOD) & (radius <= MAX_PERIOD))
    sector_of = (np.degrees(np.arctan2(dy, dx)) % 180 // (180 / ANGLE_SECTORS)).astype(int).ravel()
    angles: list[float] = []
    used: set[int] = set()
    for flat in candidates[np.argsort(shifted.ravel()[candidates])[::-1]]:
        if sector_of[flat] in used:
            continue
        used.add(sector_of[flat])
        # In pixels of the picture: the canonical grid stretches its width and height apart.
        angle = float(np.degrees(np.arctan2(dy.flat[flat] * height, dx.flat[flat] * width)))
        angle = (angle + 45.0) % 90.0 - 45.0  # a quarter turn is the orientation's business
        if MIN_ANGLE <= abs(angle) <= MAX_ANGLE and all(abs(angle - seen) > MIN_ANGLE for seen in angles):
            angles.append(angle)
        if len(used) >= 3:  # the three strongest directions
            break
    return angles[:ANGLE_CANDIDATES]


def _turned_back(luminance: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The luminance turned by ``angle`` degrees (at most ROTATION_SIDE on its long side), and where
    it holds the picture's own pixels (1) rather than the empty corners (0)."""
    luminance = at_most(luminance, ROTATION_SIDE)
    height, width = luminance.shape
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(luminance, turn, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    valid = cv2.warpAffine(np.ones_like(luminance), turn, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return turned, valid


def _oriented(tile: np.ndarray, key: int) -> tuple[float, _Orientation]:
    """The orientation under which the tile best matches the sync pattern, and how well.

    The oriented tile against the sync pattern is the tile against the pattern oriented back, at
    other shifts: one transform of the tile, eight products with spectra computed once.
    """
    correlations = np.fft.irfft2(np.fft.rfft2(tile)[None] * _oriented_sync_spectra(key), s=tile.shape)
    strengths = correlations.max(axis=(1, 2)) / (correlations.std(axis=(1, 2)) + 1e-12)
    best = int(np.argmax(strengths))
    return float(strengths[best]), ORIENTATIONS[best]


@lru_cache(maxsize=4)
def _oriented_sync_spectra(key: int) -> np.ndarray:
    sync = np.kron(_layout(key)[0], np.ones((CHIP, CHIP)))
    return np.stack([np.conj(np.fft.rfft2(np.ascontiguousarray(way.undo(sync)))) for way in ORIENTATIONS])


def _refine(residual: np.ndarray, period_x: float, period_y: float, key: int) -> tuple[float, float]:
    """Nudge the period on each axis to where the sync pattern stands out most, in smaller and
    smaller steps: a period found from the autocorrelation may be a pixel or two off."""
    best = (_oriented(_fold(residual, period_x, period_y), key)[0], (period_x, period_y))
    for step in REFINE_STEPS:
        for axis in (0, 1):
            period_x, period_y = best[1]
            for sign in (-1.0, 1.0):
                candidate = (period_x + sign * step, period_y) if axis == 0 else (period_x, period_y + sign * step)
                best = max(best, (_oriented(_fold(residual, *candidate), key)[0], candidate))
    return best[1]


def _phase(period: float) -> np.ndarray:
    """The place in the tile (0..TILE-1) of each canonical coordinate, for a tile ``period`` long."""
    return np.floor((np.arange(CANONICAL) % period) * (TILE / period)).astype(np.int64) % TILE


def _fold(residual: np.ndarray, period_x: float, period_y: float) -> np.ndarray:
    """Average all tiles into one TILE x TILE tile, mapping each pixel by its phase in the period.

    The phase of a pixel depends on its row along y and its column along x only, so each pixel
    adds to one cell: one weighted count over the picture (three times quicker than the two
    matrix products it replaced, and exact in float64).
    """
    rows, cols = _phase(period_y), _phase(period_x)
    cells = (rows[:, None] * TILE + cols[None, :]).ravel()
    sums = np.bincount(cells, weights=residual.ravel(), minlength=TILE * TILE).reshape(TILE, TILE)
    counts = np.outer(np.bincount(rows, minlength=TILE), np.bincount(cols, minlength=TILE))
    return sums / np.maximum(counts, 1.0)


@lru_cache(maxsize=4)
def _sync_spectrum(key: int) -> np.ndarray:
    sync = np.kron(_layout(key)[0], np.ones((CHIP, CHIP)))
    return np.conj(np.fft.fft2(sync))


def _read_bits(tile: np.ndarray, key: int) -> list[np.ndarray]:
    """Align the folded tile on its strongest sync peaks; return their soft-bit vectors."""
    correlation = np.real(np.fft.ifft2(np.fft.fft2(tile) * _sync_spectrum(key)))
    candidates = []
    for flat in np.argsort(correlation.ravel())[::-1][:SYNC_CANDIDATES]:
        shift_y, shift_x = divmod(int(flat), TILE)
        candidates.append(_soft_bits(np.roll(tile, (-shift_y, -shift_x), axis=(0, 1)), key))
    return candidates


def _soft_bits(aligned: np.ndarray, key: int) -> np.ndarray:
    """The coded bits' soft values from a folded tile aligned as embedded: each bit's chips, signed."""
    _, data_cells, bit_of_cell, signs = _layout(key)
    chips = aligned.reshape(CHIPS, CHIP, CHIPS, CHIP).mean(axis=(1, 3)).reshape(-1)
    return np.bincount(bit_of_cell, weights=chips[data_cells] * signs, minlength=CODED_BITS)


class _Residual:
    """A whitened residual with its autocorrelation's candidate periods, found once for every key."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    @cached_property
    def periods(self) -> list[tuple[float, float]]:
        return _periods(self.values)


class Views:
    """What detection derives from a picture whatever the key, computed when first needed and
    kept for the next key tried (``find_mark`` tries a deployment's keys in turn): the whitened
    residual as the picture is, turned back by each candidate angle, and in each place a picture
    may sit inside a larger upload."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.luminance = _luminance(rgb)
        self._turned: dict[float, _Residual] = {}
        self._straightened: dict[tuple[Box | None, Keystone], _Residual] = {}

    @cached_property
    def whole(self) -> _Residual:
        return _Residual(_whitened_residual(self.luminance))

    @cached_property
    def angles(self) -> list[float]:
        return _angles(_autocorrelation(self.whole.values), *self.luminance.shape)

    def turned(self, angle: float) -> _Residual:
        if angle not in self._turned:
            self._turned[angle] = _Residual(_whitened_residual(*_turned_back(self.luminance, angle)))
        return self._turned[angle]

    @cached_property
    def framed(self) -> list[tuple[Box, _Residual]]:
        return [(box, _Residual(_whitened_residual(self._inside(box)))) for box in picture_boxes(self.luminance)]

    def straightened(self, box: Box | None, keystone: Keystone) -> _Residual:
        """The upload (``box`` None) or a box in it, straightened as if seen at an angle."""
        if (box, keystone) not in self._straightened:
            part = at_most(self._inside(box), ROTATION_SIDE)
            self._straightened[(box, keystone)] = _Residual(_whitened_residual(keystone.straighten(part)))
        return self._straightened[(box, keystone)]

    def _inside(self, box: Box | None) -> np.ndarray:
        return self.luminance if box is None else self.luminance[box[1] : box[3], box[0] : box[2]]


def _ranked_periods(residual: _Residual, key: int) -> list[tuple[float, tuple[float, float]]]:
    """The autocorrelation's periods, each with how clearly the sync pattern appears at it, best
    first (no decoding, so no false-positive cost)."""
    scored = [(_oriented(_fold(residual.values, *period), key)[0], period) for period in residual.periods]
    return sorted(scored, key=lambda item: -item[0])


def _search(residual: _Residual, key: int, attempts: int, gate: float = 0.0) -> Detection:
    """Look for a payload in one canonical residual: the canonical period first, then the
    autocorrelation's, refined; each fold read in its best orientation. Attempts are counted
    from ``attempts``. ``gate``: decode nothing unless the sync pattern stands out this clearly
    at some period (a turned-back picture: the angle came from the picture, not from a mark)."""
    canonical = (float(TILE), float(TILE))
    ranked = None
    if gate:
        ranked = _ranked_periods(residual, key)
        clearest = max([_oriented(_fold(residual.values, *canonical), key)[0], *(sync for sync, _ in ranked[:1])])
        if clearest < gate:
            return Detection(payload=None, sync_strength=clearest, attempts=attempts)
    best_sync = 0.0
    # A resize alone keeps the canonical period: try it first, as is; then the autocorrelation's.
    periods = [canonical]
    for index in range(PERIOD_CANDIDATES):
        if index == 1:
            ranked = ranked or _ranked_periods(residual, key)
            periods += [_refine(residual.values, *period, key) for _, period in ranked[: PERIOD_CANDIDATES - 1]]
        if index >= len(periods):
            break
        tile = _fold(residual.values, *periods[index])
        sync, way = _oriented(tile, key)
        best_sync = max(best_sync, sync)
        for soft in _read_bits(way.apply(tile), key):
            attempts += 1
            payload = decode(soft)
            if payload is not None:
                # A picture turned by k quarter turns has its tile turned by k too: undone by 4 - k.
                turns = (4 - way.turns) % 4
                return Detection(payload, sync, attempts, flipped=way.transposed, quarter_turns=turns)
    return Detection(payload=None, sync_strength=best_sync, attempts=attempts)


def detect(rgb: np.ndarray, key: int) -> Detection:
    """Look for a payload in an (h, w, 3) uint8 image of any size, flipped or turned."""
    return detect_in(Views(rgb), key)


def detect_in(views: Views, key: int) -> Detection:
    """``detect`` on a picture's views, which other keys' searches share."""
    found = _search(views.whole, key, 0)
    if found.payload is not None:
        return found
    best_sync = found.sync_strength
    for angle in views.angles:
        found = _search(views.turned(angle), key, found.attempts, gate=ROTATION_SYNC_GATE)
        if found.payload is not None:
            # Turning back by ``angle`` (counter-clockwise) undid a turn by -angle.
            return Detection(
                found.payload,
                found.sync_strength,
                found.attempts,
                flipped=found.flipped,
                quarter_turns=found.quarter_turns,
                rotation=-angle,
            )
        best_sync = max(best_sync, found.sync_strength)
    framed = _search_framed(views, key, found.attempts)
    if framed.payload is not None:
        return framed
    return Detection(payload=None, sync_strength=max(best_sync, framed.sync_strength), attempts=framed.attempts)


def _search_framed(views: Views, key: int, attempts: int) -> Detection:
    """Search the places inside a larger upload where a picture may sit (a screenshot of a page,
    a photograph of a poster), and the upload and the likeliest of those places straightened as if
    seen at an angle; all ranked by how clearly the sync pattern shows in each (no decoding: free of
    false-positive cost), the clearest FRAMED_CANDIDATES searched. Found, the detection says where
    (``within``) and how it was straightened (``keystone``)."""

    def clarity(residual: _Residual) -> float:
        # The canonical period and the autocorrelation's strongest pair: a quick measure.
        periods = [(float(TILE), float(TILE)), *residual.periods[:1]]
        return max(_oriented(_fold(residual.values, *period), key)[0] for period in periods)

    boxes = sorted(((clarity(residual), box, None, residual) for box, residual in views.framed), key=_clearest)
    places = list(boxes)
    for box in [None, *(box for _, box, _, _ in boxes[:STRAIGHTENED_BOXES])]:
        for keystone in KEYSTONES:
            residual = views.straightened(box, keystone)
            places.append((clarity(residual), box, keystone, residual))
    best_sync = 0.0
    for _, box, keystone, residual in sorted(places, key=_clearest)[:FRAMED_CANDIDATES]:
        found = _search(residual, key, attempts, gate=FRAMED_SYNC_GATE)
        if found.payload is not None:
            return replace(found, within=box, keystone=keystone)
        attempts, best_sync = found.attempts, max(best_sync, found.sync_strength)
    return Detection(payload=None, sync_strength=best_sync, attempts=attempts)


def _clearest(place: tuple) -> float:
    return -place[0]


def best_guess_bits(rgb: np.ndarray, key: int) -> np.ndarray:
    """Hard decisions of the 204 coded bits where the sync pattern is strongest, before decoding
    (on the picture as it is: no rotation search).

    For measuring bit accuracy under attacks (benchmarks); ``detect`` is what decides.
    """
    residual = _whitened_residual(_luminance(rgb))
    periods = [(float(TILE), float(TILE)), *_periods(residual)]
    period = max(periods, key=lambda p: _oriented(_fold(residual, *p), key)[0])
    tile = _fold(residual, *_refine(residual, *period, key))
    _, way = _oriented(tile, key)
    return _read_bits(way.apply(tile), key)[0] > 0
