"""``visuels detect --deep``: the starting-noise mark, read by inverting the model that made the
picture (``visuels.models.inversion``). It needs that model's files, and takes seconds on a CPU
where the other marks take milliseconds; its basis is reported apart from the pixel watermark's
and the manifest's, since it answers other attacks (docs/compliance.md).

The picture is taken back to the size its model generates at for its aspect ratio (a format's
crop keeps the generated picture's aspect for every format visuels makes): a crop to another
aspect moves the latent grid and loses the mark, as it does for Gaussian Shading.

A reading too worn to decode (a poster's second pass, a layout's overlays over a small latent) is
compared with the marks the deployment's ledger records, where it is reachable: the best of them
is confirmed when a picture never marked would agree so well with one of them with probability
2^-32 or less, the rate the decoder's CRC gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from visuels.errors import Text
from visuels.marking.watermark_keys import WatermarkKey
from visuels.models.host import ModelHost
from visuels.models.inversion import recover_noise
from visuels.models.noise_mark import NoiseReading, best_candidate, read_bits
from visuels.models.reference import ModelInfo
from visuels.planning.jobs import size_for_aspect
from visuels.review.detect import Mark


@dataclass
class DeepReader:
    """Reads the starting-noise mark with ``model``, trying each of ``keys`` (the deployment's)."""

    host: ModelHost
    model: ModelInfo
    keys: list[WatermarkKey]
    dtype: torch.dtype = torch.float32
    recorded: Callable[[], Sequence[int]] | None = None  # the ledger's noise marks, read when needed
    # Whether the ledger records the picture of a pixel watermark as drawn from marked noise (None: unknown).
    drawn_marked: Callable[[str], bool | None] | None = None

    def __call__(self, picture: Image.Image, watermark: str | None = None) -> Mark:
        """The mark read from ``picture``; ``watermark``: the payload its pixel watermark gave with a
        key of the deployment's, which may tell that no starting-noise mark is there to read."""
        if watermark is not None and self.drawn_marked is not None and self.drawn_marked(watermark) is False:
            # Drawn from a photo (or before the mark): an inversion, seconds on a CPU, would find nothing.
            return Mark.of(
                False,
                Text(
                    "none expected: the ledger records the picture of watermark {payload} as drawn without one"
                    " (from a commune photo, or before the mark was made)",
                    payload=watermark,
                ),
            )
        pixels = np.asarray(picture.convert("RGB"))
        width, height = size_for_aspect(pixels.shape[1] / pixels.shape[0], self.model)
        with self.host.use(self.model.ref, self.dtype, None) as pipeline:
            noise = recover_noise(pipeline, pixels, width, height)  # once: the keys only read its signs
        readings = [(key, read_bits(noise, key.value)) for key in self.keys]
        for key, reading in readings:
            if reading.payload is not None:
                return self._found(key, f"{reading.payload:016x}", None)
        confirmed = self._confirmed(readings)
        if confirmed is not None:
            return confirmed
        return Mark.of(
            False,
            Text("no starting-noise mark of this deployment's keys (inverting {model})", model=self.model.description),
        )

    def _confirmed(self, readings: list[tuple[WatermarkKey, NoiseReading]]) -> Mark | None:
        """The ledger's mark a reading agrees with well enough to confirm, as a found mark."""
        recorded = self.recorded() if self.recorded is not None and readings else []
        if not recorded:
            return None
        tries = len(recorded) * len(readings)
        for key, reading in readings:
            best = best_candidate(reading, recorded, tries)
            if best is not None and best.confirmed:
                how = Text(
                    "{agreeing} of 204 coded bits agree with the one the ledger records (a picture never marked"
                    " agrees so well with one of its {count} with probability {rate:.0e})",
                    agreeing=best.agreeing,
                    count=len(recorded),
                    rate=best.rate,
                )
                return self._found(key, f"{best.payload:016x}", how)
        return None

    def _found(self, key: WatermarkKey, payload: str, confirmed: Text | None) -> Mark:
        if key.demo:
            return Mark.of(
                False,
                Text(
                    "payload {payload}, read by inverting {model} with the public demo key: anyone can"
                    " write it, it proves nothing",
                    payload=payload,
                    model=self.model.description,
                ),
            )
        if confirmed is not None:
            return Mark.of(
                True,
                Text(
                    "payload {payload}, read by inverting {model} with this deployment's key {key}: {confirmed}",
                    payload=payload,
                    model=self.model.description,
                    key=key.id,
                    confirmed=confirmed,
                ),
            )
        return Mark.of(
            True,
            Text(
                "payload {payload}, read by inverting {model} with this deployment's key {key}"
                " (a picture never marked reads one with probability 2^-32)",
                payload=payload,
                model=self.model.description,
                key=key.id,
            ),
        )
