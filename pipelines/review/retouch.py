"""Retouching an output: with the model that made it (inpaint a masked area, or img2img at a
strength), or by instruction with an edit model (Qwen-Image-Edit: "make the sky bluer").

The model, LoRA and scale come from the record (``model_sources``: what the original's hashes
name); a model given by hand must have the same hash. An edit model is the designer's choice,
described from its files and refused when its licence does not let a region publish. Only the
area around the mask goes through the model, at the model's own resolution (a poster is far
larger than what it was generated at), and the result is pasted back through the mask: pixels
outside it do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from visuels.errors import ModelError
from visuels.inputs.model_refs import LoraWeights, ModelRef, parse_model_option
from visuels.models.families import edits_by_instruction, family_named
from visuels.models.generation import (
    derived,
    failures_in_one_line,
    img2img_steps,
    prompt_arguments,
    refuse_not_numbers,
    use_scheduler,
)
from visuels.models.host import ModelHost
from visuels.models.instruct import edit_pictures
from visuels.models.reference import ModelInfo, describe_model, describe_named_model
from visuels.planning.jobs import lora_hash, size_for_aspect
from visuels.record import ledger, model_sources
from visuels.record.database import Database
from visuels.review.derivatives import Edit, Original, outputs_inputs

RetouchMode = Literal["inpaint", "img2img", "instruct"]
CONTEXT_SHARE = 0.5  # the model sees the mask's box grown by half its size: enough to match the surroundings
FEATHER_SHARE = 0.02  # soft inner edge of the paste, as a share of the box's shorter side


class RetouchSettings(BaseModel):
    """What a designer asks for: a prompt of spaces alone is no prompt."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=1000, description="What to paint in the masked area.")
    mode: RetouchMode = Field(
        default="inpaint",
        description="inpaint the mask, img2img (the mask's area, or all), or instruct (an edit model obeys it).",
    )
    variants: int = Field(default=4, ge=1, le=16, description="How many variants to make.")
    strength: float = Field(default=0.85, gt=0.0, le=1.0, description="How far from the original: 0 keeps, 1 repaints.")
    seed: int = Field(default=0, ge=0, lt=2**32, description="Variant i uses seed + i.")
    steps: int | None = Field(default=None, ge=1, le=200, description="Denoising steps; default: the model's.")


@dataclass(frozen=True)
class RetouchModel:
    """The original's model set-up, as its record names it."""

    ref: ModelRef
    model_hash: str
    description: str
    family: str  # visuels.models.families: which editing pipelines it has
    native_size: int
    size_multiple: int
    longest_side: int | None  # what its position tables reach, in pixels; None: no limit
    lora: LoraWeights | None
    lora_hash: str | None
    negative_prompt: str
    steps: int
    guidance: float
    scheduler: str
    licence: str | None  # its licence id, recorded with each kept variant; None: unknown

    @classmethod
    def described(cls, info: ModelInfo, **settings: object) -> RetouchModel:
        """The model as its files describe it, run with ``settings`` (LoRA, prompt, steps...)."""
        return cls(
            ref=info.ref,
            model_hash=info.hash,
            description=info.description,
            family=info.family,
            native_size=info.native_size,
            size_multiple=info.size_multiple,
            longest_side=info.longest_side,
            licence=info.licence.id,
            **settings,
        )


def _render_inputs(database: Database, original: Original) -> dict:
    """The render job behind ``original``, or behind the first export in its lineage (a retouch of a retouch)."""
    if original.inputs:
        return original.inputs
    for row in ledger.lineage(database, original.row)[1:]:
        inputs = outputs_inputs(database, row["job_key"])
        if inputs:
            return inputs
    raise ModelError(original.path, "original", "no render job recorded for this picture: cannot find its model")


def retouch_model(
    database: Database, original: Original, model_option: str | None = None, lora_option: str | None = None
) -> RetouchModel:
    """The model, LoRA and settings that made ``original``; a given model or LoRA must be the same files."""
    inputs = _render_inputs(database, original)
    model_hash = inputs["model_hash"]
    ref = parse_model_option(model_option) if model_option else model_sources.model_for(database, model_hash)
    if ref is None:
        raise ModelError(original.path, "model", "the record does not say which model made it: give it with --model")
    info = describe_named_model(ref, "--model") if model_option else describe_model(ref, source=str(original.path))
    if info.hash != model_hash:
        where = "--model" if model_option else "model"
        raise ModelError(
            original.path,
            where,
            "{description} is not the model that made this picture (other files)",
            description=info.description,
        )
    lora = None
    recorded_lora = inputs.get("lora_hash")
    if recorded_lora:
        path = lora_option or model_sources.lora_path_for(database, recorded_lora)
        if path is None:
            raise ModelError(original.path, "lora", "the record does not say which LoRA made it: give it with --lora")
        if not Path(path).exists() or lora_hash(Path(path)) != recorded_lora:
            raise ModelError(path, "lora", "not the LoRA that made this picture (missing or other weights)")
        lora = LoraWeights(path=str(path), scale=inputs["lora_scale"])
    return RetouchModel.described(
        info,
        lora=lora,
        lora_hash=recorded_lora,
        negative_prompt=inputs["negative_prompt"],
        steps=inputs["steps"],
        guidance=inputs["guidance"],
        scheduler=inputs["scheduler"],
    )


def instruct_model(edit_model: str | None) -> RetouchModel:
    """The edit model a designer names to retouch by instruction, with its card's settings; one whose
    licence refuses publication (non-commercial, research-only, revenue-capped) is refused."""
    if not edit_model:
        raise ModelError(
            "retouch",
            "--edit-model",
            "retouching by instruction needs an edit model (Qwen-Image-Edit): give its folder with --edit-model",
        )
    info = describe_named_model(parse_model_option(edit_model, "--edit-model"), "--edit-model", edits=True)
    if info.licence.refuses_publication:
        raise ModelError(
            edit_model,
            "edit model",
            "its licence ({licence}) does not let a region publish what it makes: choose another edit model",
            licence=info.licence.said(),
        )
    return RetouchModel.described(
        info,
        lora=None,
        lora_hash=None,
        negative_prompt="",
        steps=info.steps,
        guidance=info.guidance,
        scheduler="default",
    )


def context_box(mask: np.ndarray | None, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the picture the model sees: the mask's bounding box with some context, or everything."""
    width, height = size
    if mask is None:
        return (0, 0, width, height)
    rows, columns = np.nonzero(mask)
    left, top, right, bottom = int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1
    grow = max(16, round(CONTEXT_SHARE * max(right - left, bottom - top) / 2))
    return (max(0, left - grow), max(0, top - grow), min(width, right + grow), min(height, bottom + grow))


def paste_weights(mask: np.ndarray | None, box: tuple[int, int, int, int]) -> np.ndarray:
    """Per-pixel weight of the new pixels in the box: soft inside the mask's edge, exactly 0 outside it."""
    width, height = box[2] - box[0], box[3] - box[1]
    if mask is None:
        return np.ones((height, width), dtype=np.float32)
    inside = mask[box[1] : box[3], box[0] : box[2]].astype(np.float32)
    radius = max(1, round(FEATHER_SHARE * min(width, height)))
    soft = cv2.GaussianBlur(inside, (2 * radius + 1, 2 * radius + 1), 0)
    return np.minimum(soft * 2.0, 1.0) * inside  # full weight a little inside the edge, none outside


def _editing_pipeline(pipeline: DiffusionPipeline, mode: RetouchMode, model: RetouchModel) -> DiffusionPipeline:
    """The family's inpainting or img2img pipeline over the loaded modules (nothing loaded again)."""
    family = family_named(model.family)
    class_name = family.inpaint if mode == "inpaint" else family.img2img
    if class_name is None:
        raise ModelError(
            model.description,
            "mode",
            "{family} models have no {mode} pipeline in diffusers: retouch in another mode",
            family=family.label,
            mode=mode,
        )
    return derived(pipeline, class_name)


def retouch(
    host: ModelHost,
    model: RetouchModel,
    picture: Image.Image,
    mask: np.ndarray | None,
    settings: RetouchSettings,
    dtype: torch.dtype,
) -> list[Image.Image]:
    """``settings.variants`` retouched versions of ``picture``, at its size; outside ``mask`` nothing changes."""
    if settings.mode == "inpaint" and mask is None:
        raise ModelError("retouch", "mask", "inpainting needs a mask: paint where to change the picture")
    instructed = settings.mode == "instruct"
    if instructed != edits_by_instruction(model.family):
        raise ModelError(
            model.description,
            "mode",
            "retouching by instruction takes an edit model, the other modes the model that made the picture",
        )
    box = context_box(mask, picture.size)
    size = size_for_aspect((box[2] - box[0]) / (box[3] - box[1]), model)
    crop = picture.crop(box).resize(size, Image.Resampling.LANCZOS)
    seeds = [settings.seed + i for i in range(settings.variants)]
    with host.use(model.ref, dtype, model.lora) as loaded, failures_in_one_line(model.description, *size):
        if instructed:
            steps = settings.steps or model.steps
            generated = edit_pictures(
                loaded, crop, settings.prompt, model.negative_prompt, size, seeds, steps, model.guidance
            )
        else:
            generated = _redraw(loaded, model, crop, mask, box, size, settings, seeds)
    refuse_not_numbers([model.description] * len(generated), generated)
    weights = paste_weights(mask, box)[..., None]
    original = np.asarray(picture, dtype=np.float32)
    variants = []
    for pixels_01 in generated:
        new = np.asarray(
            Image.fromarray(_as_uint8(pixels_01)).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS),
            dtype=np.float32,
        )
        pixels = original.copy()
        region = pixels[box[1] : box[3], box[0] : box[2]]
        pixels[box[1] : box[3], box[0] : box[2]] = region * (1.0 - weights) + new * weights
        variants.append(Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8)))
    return variants


def _redraw(
    pipeline: DiffusionPipeline,
    model: RetouchModel,
    crop: Image.Image,
    mask: np.ndarray | None,
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    settings: RetouchSettings,
    seeds: list[int],
) -> list[np.ndarray]:
    """The crop inpainted through the mask, or redrawn at the settings' strength, by the model that made it."""
    arguments: dict = {}
    if settings.mode == "inpaint":
        assert mask is not None
        area = Image.fromarray((mask[box[1] : box[3], box[0] : box[2]] * 255).astype(np.uint8))
        arguments = {"mask_image": area.resize(size, Image.Resampling.BILINEAR), "width": size[0], "height": size[1]}
    editing = _editing_pipeline(pipeline, settings.mode, model)
    use_scheduler(editing, model.scheduler)
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    prompts = [settings.prompt] * len(seeds)
    negatives = [model.negative_prompt] * len(seeds)
    steps = img2img_steps(settings.steps or model.steps, settings.strength)
    with torch.inference_mode():
        result = editing(
            **prompt_arguments(editing, family_named(model.family), prompts, negatives, model.guidance),
            image=crop,
            strength=settings.strength,
            num_inference_steps=steps,
            generator=generators,
            output_type="np",
            **arguments,
        )
    return list(result.images)


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(pixels) * 255.0), 0, 255).astype(np.uint8)


def retouch_edit(model: RetouchModel, settings: RetouchSettings, variant: int) -> Edit:
    """How a kept variant was made, as its ledger row records it."""
    how = {
        "inpaint": "inpainting",
        "img2img": f"img2img at strength {settings.strength:g}",
        "instruct": f"by instruction with {model.description}",
    }[settings.mode]
    return Edit(
        description=f"retouch ({how}): {settings.prompt}",
        model_hash=model.model_hash,
        lora_hash=model.lora_hash,
        seed=settings.seed + variant,
        model_licence=model.licence,
    )
