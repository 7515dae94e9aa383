"""Does the LoRA bring pictures closer to the references? A colour-statistics measure.

The statistic is the mean and standard deviation of each CIELAB channel over a set of pictures:
six numbers that capture a palette's lightness, hue and spread, cheap to compare and meaningful
for flat, charter-coloured illustrations. The distance is the Euclidean distance between two of
them, in CIELAB units.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from diffusers import DiffusionPipeline
from visuels.models.families import own_defaults
from visuels.models.generation import pipeline_family, prompt_arguments

EVALUATION_PICTURES = 8


@dataclass(frozen=True)
class ColourEvaluation:
    """Colour distances to the references, for pictures made without and with the LoRA."""

    without_lora: float
    with_lora: float


def colour_statistics(pictures: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of L*, a*, b* over RGB pictures (N, H, W, 3) of uint8."""
    lab = np.concatenate([cv2.cvtColor(picture, cv2.COLOR_RGB2LAB).reshape(-1, 3) for picture in pictures])
    lab = lab.astype(np.float64) * np.array([100 / 255, 1, 1]) - np.array([0, 128, 128])  # OpenCV's 8-bit coding
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


def colour_distance(pictures: np.ndarray, references: np.ndarray) -> float:
    return float(np.linalg.norm(colour_statistics(pictures) - colour_statistics(references)))


def sampling_arguments(pipeline: DiffusionPipeline, prompt: str, steps: int | None = None) -> dict:
    """How validation and evaluation pictures are drawn: with the model's own guidance, taken as
    its renders take it (no negative prompt), and ``steps``, else its own (20 for a UNet family)."""
    family = pipeline_family(pipeline)
    own_steps, guidance = own_defaults(family, pipeline.config)
    arguments = prompt_arguments(pipeline, family, [prompt], [""], guidance)
    return arguments | {"num_inference_steps": steps or (20 if family.denoiser == "unet" else own_steps)}


def _generate(pipeline: DiffusionPipeline, prompts: list[str], resolution: int, steps: int | None) -> np.ndarray:
    pictures = []
    for seed, prompt in enumerate(prompts):
        generator = torch.Generator().manual_seed(seed)
        image = pipeline(
            height=resolution,
            width=resolution,
            generator=generator,
            output_type="np",
            **sampling_arguments(pipeline, prompt, steps),
        ).images[0]
        pictures.append(np.round(image * 255).astype(np.uint8))
    return np.stack(pictures)


def evaluate_colours(
    pipeline: DiffusionPipeline, captions: list[str], references: np.ndarray, resolution: int, steps: int | None = None
) -> ColourEvaluation:
    """Generate from the references' own captions, with the LoRA switched off then on, and compare
    (``steps``: the pictures' denoising steps; None: the model's own)."""
    prompts = captions[:EVALUATION_PICTURES]
    modules = [getattr(pipeline, name, None) for name in ("unet", "transformer", "text_encoder")]
    adapted = [module for module in modules if getattr(module, "peft_config", None)]
    for module in adapted:
        module.disable_adapters()
    try:
        without = _generate(pipeline, prompts, resolution, steps)
    finally:
        for module in adapted:
            module.enable_adapters()
    with_lora = _generate(pipeline, prompts, resolution, steps)
    return ColourEvaluation(
        without_lora=colour_distance(without, references), with_lora=colour_distance(with_lora, references)
    )
