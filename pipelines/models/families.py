"""The model families visuels renders with, and how each one is driven: its native size, its own
defaults (steps, guidance), how it uses guidance and a negative prompt, and which diffusers
pipelines it has for photos, high-resolution passes and outpainting. A model's family comes from
the pipeline class its ``model_index.json`` names. Pure data: planning reads it without torch.

Guidance, as each family uses it (``Family.guidance_use``):
- ``cfg``: classifier-free guidance at ``guidance``, against the negative prompt (SD1.5, SDXL, Z-Image);
- ``distilled``: the model was distilled to follow the prompt without a second pass; the value is
  what the pipeline's ``guidance_scale`` takes (FLUX.1 schnell ignores it, FLUX.2 klein 4B too when
  distilled; its base variant runs CFG), and no negative prompt is read;
- ``true_cfg``: classifier-free guidance at ``guidance`` against the negative prompt, through the
  pipeline's ``true_cfg_scale`` (Qwen-Image).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from visuels.inputs.campaign import SchedulerName

GuidanceUse = Literal["cfg", "distilled", "true_cfg"]
# The schedulers a campaign may name for a UNet family (``generation.SCHEDULERS`` makes them); the
# flow-matching families keep their own ("default").
UNET_SCHEDULERS = tuple(name.value for name in SchedulerName if name is not SchedulerName.default)


@dataclass(frozen=True)
class Family:
    """What visuels knows of one family of models."""

    name: str  # as campaigns, the record and the docs name it
    label: str  # as people call it
    pipeline: str  # the diffusers pipeline class of its text-to-image folders
    denoiser: Literal["unet", "transformer"]
    native_size: int | None  # pixels; None: from the UNet's config (sample_size x the VAE's factor)
    steps: int  # its publisher's default
    guidance: float
    guidance_use: GuidanceUse
    scheduler: str  # the default: one of UNET_SCHEDULERS, or "default" (the model's own)
    img2img: str | None  # the pipeline class for photos and the high-resolution pass; None: none
    inpaint: str | None  # the pipeline class for outpainting and retouching; None: none
    # The diffusers class of the ControlNets that steer it by a photo's edges; None: none does.
    controlnet: str | None = None
    # Whether diffusers has a pipeline for img2img and a ControlNet together (Qwen-Image's steers from text only).
    controlnet_img2img: bool = True
    # Classifier-free guidance that may stop early: the conditioning tensors its pipelines hold as
    # [unconditional rows; prompt rows], to halve when it stops. None: no such guidance to stop.
    guidance_cutoff: tuple[str, ...] | None = None
    max_sequence_length: int | None = None  # the text encoder's token budget the pipeline is given
    # diffusers' First Block Cache knows its transformer's blocks (its block registry).
    first_block_cache: bool = False
    # Steps and guidance of its undistilled base variant, which its pipeline's config tells apart
    # (``is_distilled: false``); None: it has no such variant.
    base_variant: tuple[int, float] | None = None
    # What a single-file checkpoint of it must hold, as the original (LDM) layout names its parts:
    # the UNet families read every part from the file; the transformers' file holds the transformer only.
    single_file_parts: tuple[tuple[str, str], ...] = ()

    @property
    def negative_prompt(self) -> bool:
        """Whether the negative prompt shapes its pictures."""
        return self.guidance_use != "distilled"

    @property
    def schedulers(self) -> tuple[str, ...]:
        """The scheduler names it takes: "default" keeps the one its folder names."""
        return (*UNET_SCHEDULERS, "default") if self.denoiser == "unet" else ("default",)


FAMILIES = (
    Family(
        name="sd15",
        label="Stable Diffusion 1.5",
        pipeline="StableDiffusionPipeline",
        denoiser="unet",
        native_size=None,
        steps=25,
        guidance=7.0,
        guidance_use="cfg",
        scheduler="euler",
        img2img="StableDiffusionImg2ImgPipeline",
        inpaint="StableDiffusionInpaintPipeline",
        controlnet="ControlNetModel",
        guidance_cutoff=("prompt_embeds",),
        single_file_parts=(
            ("UNet", "model.diffusion_model."),
            ("VAE", "first_stage_model."),
            ("text encoder", "cond_stage_model."),
        ),
    ),
    Family(
        name="sdxl",
        label="Stable Diffusion XL",
        pipeline="StableDiffusionXLPipeline",
        denoiser="unet",
        native_size=None,
        steps=25,
        guidance=7.0,
        guidance_use="cfg",
        scheduler="euler",
        img2img="StableDiffusionXLImg2ImgPipeline",
        inpaint="StableDiffusionXLInpaintPipeline",
        controlnet="ControlNetModel",
        guidance_cutoff=("prompt_embeds", "add_text_embeds", "add_time_ids"),
        single_file_parts=(
            ("UNet", "model.diffusion_model."),
            ("VAE", "first_stage_model."),
            ("text encoders", "conditioner.embedders."),
        ),
    ),
    Family(
        name="flux1",
        label="FLUX.1",
        pipeline="FluxPipeline",
        denoiser="transformer",
        native_size=1024,
        steps=4,  # schnell; FLUX.1 dev (non-commercial) takes 28-50
        guidance=0.0,
        guidance_use="distilled",
        scheduler="default",
        img2img="FluxImg2ImgPipeline",
        inpaint="FluxInpaintPipeline",
        controlnet="FluxControlNetModel",
        max_sequence_length=256,  # schnell's T5 budget
        first_block_cache=True,
    ),
    Family(
        name="flux2-klein",
        label="FLUX.2 klein",
        pipeline="Flux2KleinPipeline",
        denoiser="transformer",
        native_size=1024,
        steps=4,
        guidance=1.0,
        guidance_use="distilled",
        scheduler="default",
        img2img=None,  # its image input is a reference to follow, not a start to redraw at a strength
        inpaint="Flux2KleinInpaintPipeline",
        base_variant=(50, 4.0),  # klein Base 4B's card: classifier-free guidance against an empty prompt
        # diffusers 0.42's First Block Cache breaks on its single-stream blocks (they return one
        # tensor where the cache expects the double-stream blocks' pair): not served.
    ),
    Family(
        name="z-image",
        label="Z-Image",
        pipeline="ZImagePipeline",
        denoiser="transformer",
        native_size=1024,
        # Turbo's card: 8 model evaluations, which diffusers 0.42 makes 8 steps (9 before it);
        # Base takes about 50 at guidance 4 (its files do not tell it apart: the campaign says so).
        steps=8,
        guidance=0.0,
        guidance_use="cfg",
        scheduler="default",
        img2img="ZImageImg2ImgPipeline",
        inpaint="ZImageInpaintPipeline",
        guidance_cutoff=(),  # its prompts stay apart from the negative ones: only the scale goes to 0
    ),
    Family(
        name="qwen-image",
        label="Qwen-Image",
        pipeline="QwenImagePipeline",
        denoiser="transformer",
        native_size=1328,  # its card's 1:1 size
        steps=50,
        guidance=4.0,
        guidance_use="true_cfg",
        scheduler="default",
        img2img="QwenImageImg2ImgPipeline",
        inpaint="QwenImageInpaintPipeline",
        controlnet="QwenImageControlNetModel",
        controlnet_img2img=False,
        first_block_cache=True,
    ),
)
# Edit models: they redraw a picture as an instruction says (retouching by instruction), and
# render nothing from text alone. Qwen-Image-Edit's card: 40 steps, true CFG 4 against " ".
EDIT_FAMILIES = (
    Family(
        name="qwen-image-edit-plus",
        label="Qwen-Image-Edit (2509 and later)",
        pipeline="QwenImageEditPlusPipeline",
        denoiser="transformer",
        native_size=1024,
        steps=40,
        guidance=4.0,
        guidance_use="true_cfg",
        scheduler="default",
        img2img=None,
        inpaint=None,
    ),
    Family(
        name="qwen-image-edit",
        label="Qwen-Image-Edit",
        pipeline="QwenImageEditPipeline",
        denoiser="transformer",
        native_size=1024,
        steps=50,
        guidance=4.0,
        guidance_use="true_cfg",
        scheduler="default",
        img2img=None,
        inpaint=None,
    ),
)
BY_PIPELINE = {family.pipeline: family for family in FAMILIES}
EDIT_BY_PIPELINE = {family.pipeline: family for family in EDIT_FAMILIES}
EDIT_BY_NAME = {family.name: family for family in EDIT_FAMILIES}
BY_NAME = {family.name: family for family in FAMILIES} | EDIT_BY_NAME


def family_of_pipeline(class_name: str) -> Family | None:
    """The family of a text-to-image pipeline class (``model_index.json``'s ``_class_name``)."""
    return BY_PIPELINE.get(class_name)


def edits_by_instruction(family_name: str) -> bool:
    """Whether the family is an edit models' one (retouching by instruction), not a text-to-image one."""
    return family_name in EDIT_BY_NAME


def edit_family_of_pipeline(class_name: str) -> Family | None:
    """The family of an edit model's pipeline class (retouching by instruction)."""
    return EDIT_BY_PIPELINE.get(class_name)


def family_named(name: str) -> Family:
    return BY_NAME[name]


def own_defaults(family: Family, pipeline_config: Mapping[str, object]) -> tuple[int, float]:
    """A model's default steps and guidance: its family's, or its base variant's where its
    pipeline's config (``model_index.json``) says it is not distilled (FLUX.2 klein Base)."""
    if family.base_variant is not None and pipeline_config.get("is_distilled") is False:
        return family.base_variant
    return family.steps, family.guidance
