"""Retouching by instruction with an edit model (Qwen-Image-Edit): its processor, read the same
way on every machine, and the call that redraws a picture as an instruction says.

Qwen-Image-Edit's text encoder (Qwen2.5-VL) sees the picture through a Qwen2-VL processor.
transformers' default image processor for it needs torchvision, and the processor a video
processor that needs it too; a retouch needs neither video nor torchvision. So the processor is
built here from the folder's own files with transformers' PIL image processor: a designer's laptop
without torchvision and a GPU machine with it give the text encoder the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2VLImageProcessorPil, Qwen2VLProcessor
from visuels.errors import ModelError, first_line

# The processor classes an edit model's ``model_index.json`` may name for its ``processor``.
PROCESSOR_CLASSES = frozenset({"Qwen2VLProcessor", "Qwen2_5_VLProcessor"})
# What the edit pipelines are given for "no negative prompt": Qwen-Image-Edit's card uses " ".
EMPTY_NEGATIVE = " "


class PictureOnlyProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor for pictures and text, without its video processor."""

    def __init__(
        self,
        image_processor: Qwen2VLImageProcessorPil | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        chat_template: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def processor_from_folder(folder: Path, source: str = "edit model") -> PictureOnlyProcessor:
    """The processor of an edit model's ``processor`` folder: its tokenizer, and its image settings
    (patch and merge sizes, pixel limits, normalisation) in the PIL image processor."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            source, "processor", "cannot read {folder}: {value}", folder=folder, value=first_line(exc)
        ) from None
    return PictureOnlyProcessor(image_processor=image_processor, tokenizer=tokenizer)


def edit_pictures(
    pipeline: DiffusionPipeline,
    picture: Image.Image,
    instruction: str,
    negative_prompt: str,
    size: tuple[int, int],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
) -> list[np.ndarray]:
    """``picture`` redrawn as ``instruction`` says, once per seed, at ``size`` (float pixels in 0-1).
    The edit pipelines take one picture per call; true CFG at ``guidance`` against the negative prompt."""
    pictures = []
    for seed in seeds:
        with torch.inference_mode():
            result = pipeline(
                image=picture,
                prompt=instruction,
                negative_prompt=negative_prompt or EMPTY_NEGATIVE,
                true_cfg_scale=guidance,
                num_inference_steps=steps,
                width=size[0],
                height=size[1],
                generator=torch.Generator(device="cpu").manual_seed(seed),
                output_type="np",
            )
        pictures.append(np.asarray(result.images[0]))
    return pictures
