"""``visuels detect --deep``: the starting-noise mark, read by inverting the model that made the
picture (``visuels.models.inversion``). It needs that model's files, and takes seconds on a CPU
where the other marks take milliseconds; its basis is reported apart from the pixel watermark's
and the manifest's, since it answers other attacks (docs/compliance.md).

The picture is taken back to the size its model generates at for its aspect ratio (a format's
crop keeps the generated picture's aspect for every format visuels makes): a crop to another
aspect moves the latent grid and loses the mark, as it does for Gaussian Shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from visuels.errors import Text
from visuels.marking.watermark_keys import WatermarkKey
from visuels.models.host import ModelHost
from visuels.models.inversion import recover_noise
from visuels.models.noise_mark import read_bits
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

    def __call__(self, picture: Image.Image) -> Mark:
        pixels = np.asarray(picture.convert("RGB"))
        width, height = size_for_aspect(pixels.shape[1] / pixels.shape[0], self.model)
        with self.host.use(self.model.ref, self.dtype, None) as pipeline:
            noise = recover_noise(pipeline, pixels, width, height)  # once: the keys only read its signs
        for key in self.keys:
            reading = read_bits(noise, key.value)
            if reading.payload is None:
                continue
            payload = f"{reading.payload:016x}"
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
        return Mark.of(
            False,
            Text("no starting-noise mark of this deployment's keys (inverting {model})", model=self.model.description),
        )
