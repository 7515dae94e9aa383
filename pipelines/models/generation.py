"""Batched generation through diffusers, deterministic per job: from text, or from a commune's photo
(img2img, its edges through a ControlNet, or both), with each model family's own arguments
(``visuels.models.families``)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    TCDScheduler,
    UniPCMultistepScheduler,
)
from visuels.errors import ModelError, first_line
from visuels.inputs.photos import edge_map, fit_photo
from visuels.models.families import Family, family_of_pipeline
from visuels.models.feature_cache import feature_cache, first_block_cache
from visuels.models.guidance import cutoff_arguments
from visuels.models.noise import starting_latents
from visuels.models.spec import BATCH_FIELDS, GenerationJob, HiresPass, batch_signature, generation_identity

# Each scheduler a campaign may name: its class, and what it changes in the model's own settings.
# Few-step models are distilled on the last timesteps of the schedule ("trailing"): spacing them
# from the start would skip the very noise level they start from.
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler_trailing": (EulerDiscreteScheduler, {"timestep_spacing": "trailing"}),
    "lcm": (LCMScheduler, {"timestep_spacing": "trailing"}),
    "tcd": (TCDScheduler, {"timestep_spacing": "trailing"}),
}


KLEIN_TEXT_LAYERS = (9, 18, 27)  # the hidden layers Flux2KleinPipeline reads by default
ZIMAGE_TEXT_BUDGET = 512  # ZImagePipeline's default max_sequence_length
ZIMAGE_TEXT_ROUNDING = 32  # its transformer pads the text to a multiple of this


def pipeline_family(pipeline: DiffusionPipeline) -> Family:
    """The family of a loaded text-to-image pipeline (described before it was loaded)."""
    family = family_of_pipeline(type(pipeline).__name__)
    if family is None:
        raise ModelError("model", None, "unsupported pipeline {name}", name=type(pipeline).__name__)
    return family


def text_arguments(pipeline: DiffusionPipeline, family: Family, jobs: Sequence[GenerationJob], guidance: float) -> dict:
    """The prompt and guidance arguments of a call for ``jobs``, as ``family`` takes them."""
    prompts, negatives = [job.prompt for job in jobs], [job.negative_prompt for job in jobs]
    return prompt_arguments(pipeline, family, prompts, negatives, guidance)


def prompt_arguments(
    pipeline: DiffusionPipeline, family: Family, prompts: list[str], negative_prompts: list[str], guidance: float
) -> dict:
    """Prompts and guidance as ``family`` takes them: a negative prompt only where it is read,
    guidance as ``guidance_scale`` or Qwen-Image's ``true_cfg_scale``; the text read as the
    model's own configs allow (``text_encoding``)."""
    arguments: dict[str, object] = {"prompt": prompts}
    if family.negative_prompt:
        arguments["negative_prompt"] = negative_prompts
    arguments["true_cfg_scale" if family.guidance_use == "true_cfg" else "guidance_scale"] = guidance
    if family.max_sequence_length is not None:
        arguments["max_sequence_length"] = family.max_sequence_length
    return arguments | text_encoding(pipeline)


def text_encoding(pipeline: DiffusionPipeline) -> dict:
    """How to encode the text where a model's configs differ from its published ones, which the
    pipelines' defaults assume (a test model or a pruned fine-tune): FLUX.2 klein's hidden layers
    read, as many as its transformer takes, spread over its text encoder as the published three
    are over Qwen3-4B's 36; Z-Image's token budget, within its position table. Nothing otherwise."""
    transformer = getattr(pipeline, "transformer", None)
    config = getattr(transformer, "config", None)
    kind = type(transformer).__name__
    if kind == "Flux2Transformer2DModel":
        text = pipeline.text_encoder.config
        wanted = config.joint_attention_dim // text.hidden_size
        if wanted == len(KLEIN_TEXT_LAYERS) and text.num_hidden_layers >= max(KLEIN_TEXT_LAYERS):
            return {}
        spread = {max(1, round(text.num_hidden_layers * (n + 1) / (wanted + 1))) for n in range(wanted)}
        return {"text_encoder_out_layers": tuple(sorted(spread))}
    if kind == "ZImageTransformer2DModel":
        # Its text takes positions 1 to its length rounded up to 32, the picture the next one.
        budget = (config.axes_lens[0] - 2) // ZIMAGE_TEXT_ROUNDING * ZIMAGE_TEXT_ROUNDING
        return {"max_sequence_length": budget} if budget < ZIMAGE_TEXT_BUDGET else {}
    return {}


def derived(pipeline: DiffusionPipeline, class_name: str | None) -> DiffusionPipeline:
    """The family's img2img or inpainting pipeline over ``pipeline``'s modules (weights, LoRA,
    scheduler): nothing is loaded or copied. Imported here for the reason ``redraw_larger`` gives."""
    import diffusers

    if class_name is None:  # planning refuses such jobs first: a guard
        name = type(pipeline).__name__
        raise ModelError("model", None, "{name} has no image-to-image or inpainting pipeline", name=name)
    pipeline_class = getattr(diffusers, class_name)
    # Its constructor's arguments from ours: the modules, then settings such as FLUX.2's is_distilled.
    # (``from_pipe`` would drop a module whose type differs from its annotation, as the demo's VAE.)
    offered = {name: value for name, value in pipeline.config.items() if not name.startswith("_")}
    offered |= pipeline.components
    wanted = inspect.signature(pipeline_class.__init__).parameters
    made = pipeline_class(**{name: value for name, value in offered.items() if name in wanted})
    made.set_progress_bar_config(disable=True)
    return made


def use_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    """Swap the pipeline's scheduler, keeping the model's own noise schedule settings; "default"
    is the model's own (the flow-matching families have no other).

    The model's own scheduler is kept on the pipeline the first time another replaces it: every
    later swap starts from its settings, not from the last campaign's (a trailing spacing would
    otherwise stay for the next campaign on the same loaded model)."""
    own = pipeline.__dict__.setdefault("model_scheduler", pipeline.scheduler)
    if name == "default":
        if pipeline.scheduler is not own:
            pipeline.scheduler = own
        return
    scheduler_class, changes = SCHEDULERS[name]
    current = pipeline.scheduler
    spacing = changes.get("timestep_spacing", own.config.get("timestep_spacing"))
    if type(current) is not scheduler_class or current.config.get("timestep_spacing") != spacing:
        pipeline.scheduler = scheduler_class.from_config(own.config, **changes)


def img2img_steps(steps: int, strength: float) -> int:
    """The schedule's length for an img2img pass of ``steps`` at ``strength``: diffusers runs
    ``int(steps * strength)`` of them, so a short schedule at a low strength would run none (and
    fail). At least one is run."""
    return max(steps, math.ceil(1 / strength))


def _generators(jobs: Sequence[GenerationJob]) -> list[torch.Generator]:
    return [torch.Generator(device="cpu").manual_seed(job.seed) for job in jobs]


def feature_reuse(pipeline: DiffusionPipeline, job: GenerationJob) -> AbstractContextManager:
    """Features reused across the steps of one call, as the job says (``visuels.models.feature_cache``):
    a UNet's deep features (``deep_cache``), a transformer's later blocks (``first_block_cache``,
    planned for text to image only); nothing otherwise."""
    if job.deep_cache is not None:
        return feature_cache(pipeline.unet, job.deep_cache)
    if job.first_block_cache is not None:
        return first_block_cache(pipeline.transformer, job.first_block_cache)
    return nullcontext()


def model_failures(job: GenerationJob) -> AbstractContextManager:
    """A model that fails on a job's size or inputs (a fine-tune's position tables too short for a
    format, a broken component) is one line naming the job, not a traceback; running out of GPU
    memory stays what it is (the host halves the batch)."""
    return failures_in_one_line(job.relative_path, job.generation_width, job.generation_height)


@contextmanager
def failures_in_one_line(file: str | Path, width: int, height: int) -> Iterator[None]:
    """A model failing on a picture of ``width`` x ``height`` for ``file``: one line naming it."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, IndexError, ValueError) as exc:
        raise ModelError(
            file,
            "model",
            "the model failed on a {width}x{height} picture: {reason}",
            width=width,
            height=height,
            reason=first_line(exc),
        ) from exc


def generate(
    pipeline: DiffusionPipeline,
    jobs: Sequence[GenerationJob],
    controlnet: torch.nn.Module | None = None,
    noise_key: int | None = None,
) -> list[np.ndarray]:
    """Render jobs that share a batch signature in one diffusers call: H×W×3 uint8 pictures.

    ``controlnet``: loaded by the caller for jobs whose photo steers through one. ``noise_key``:
    the deployment's watermark key, under which jobs planned with the starting-noise mark start
    from marked noise (``visuels.models.noise``; the renderer always gives it); without it they
    start from ordinary noise of their seed (tests and benchmarks of everything else).

    Each job gets its own CPU generator seeded with its seed, so its starting noise does not
    depend on the batch it lands in or on the device. The pictures become bytes on the device,
    so only a quarter of the floats' size crosses to the host.
    """
    first = jobs[0]
    signature = batch_signature(first)
    for job in jobs[1:]:
        for field, wanted, got in zip(BATCH_FIELDS, signature, batch_signature(job), strict=True):
            if got != wanted:
                raise ValueError(f"jobs in one batch must share `{field}`: got {wanted!r} and {got!r}")
    if first.first_block_cache is not None and len(jobs) > 1:
        # First Block Cache decides over the whole batch: one picture per call keeps each job's
        # pixels its own (these transformers gain little from batches at their native sizes).
        return [picture for job in jobs for picture in generate(pipeline, [job], controlnet, noise_key)]
    use_scheduler(pipeline, first.scheduler)
    family = pipeline_family(pipeline)
    with torch.inference_mode(), model_failures(first):
        with feature_reuse(pipeline, first):
            if first.photo is None:
                marked = first.noise_mark is not None and noise_key is not None
                result = pipeline(
                    **text_arguments(pipeline, family, jobs, first.guidance),
                    **cutoff_arguments(family, first.guidance_cutoff),
                    **({"latents": starting_latents(pipeline, jobs, noise_key)} if marked else {}),
                    width=first.generation_width,
                    height=first.generation_height,
                    num_inference_steps=first.steps,
                    generator=_generators(jobs),
                    output_type="pt",
                )
            else:
                result = from_photos(pipeline, jobs, controlnet)
        refuse_flagged(jobs, result)
        pictures = result.images
        if first.hires is not None:
            pictures = redraw_larger(pipeline, jobs, pictures, first.hires)
        return as_pixels(jobs, pictures)


def _as_batch(pictures: list[np.ndarray]) -> torch.Tensor:
    """H×W×3 uint8 pictures as the B×3×H×W floats in [0, 1] that diffusers' image processors take."""
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255.0


def fitted_photos(jobs: Sequence[GenerationJob]) -> list[np.ndarray]:
    """Each job's photo fitted to the generation size (H×W×3 uint8)."""
    first = jobs[0]
    photos = []
    for job in jobs:
        assert job.photo is not None
        photos.append(fit_photo(Path(job.photo.path), first.generation_width, first.generation_height))
    return photos


def sized(img2img: DiffusionPipeline, size: dict[str, int]) -> dict[str, int]:
    """``size`` for an img2img pipeline that takes one: FLUX's and Qwen-Image's draw at their default
    1024² without it, whatever their picture's size; SD's take their picture's size and have none."""
    return size if "height" in inspect.signature(img2img.__call__).parameters else {}


def from_photos(
    pipeline: DiffusionPipeline, jobs: Sequence[GenerationJob], controlnet: torch.nn.Module | None
) -> object:
    """The first pass from each job's photo: img2img from it, its edges steering a ControlNet (SD1.5,
    SDXL, FLUX.1, Qwen-Image from text only), or both.

    The derived pipelines share ``pipeline``'s modules (weights, LoRA, scheduler): nothing is
    loaded or copied. Imported here for the reason ``redraw_larger`` gives.
    """
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    first = jobs[0]
    source = first.photo
    assert source is not None
    family = pipeline_family(pipeline)
    photos = fitted_photos(jobs)
    steps = first.steps if source.strength is None else img2img_steps(first.steps, source.strength)
    common = {
        **text_arguments(pipeline, family, jobs, first.guidance),
        "num_inference_steps": steps,
        "generator": _generators(jobs),
        "output_type": "pt",
    }
    size = {"width": first.generation_width, "height": first.generation_height}  # the photos are fitted to it
    if source.controlnet_path is None:
        redraw = derived(pipeline, family.img2img)
        cutoff = cutoff_arguments(family, first.guidance_cutoff)
        return redraw(image=_as_batch(photos), strength=source.strength, **sized(redraw, size), **common, **cutoff)
    if controlnet is None:
        raise ModelError(source.controlnet_path, "photos.controlnet", "the ControlNet was not loaded")
    # Only a ControlNet reads the edges (their map for reviewers is saved at export).
    edges = [
        edge_map(photo, job.photo.canny_low, job.photo.canny_high) for job, photo in zip(jobs, photos, strict=True)
    ]
    edge_batch = _as_batch([np.repeat(edge[..., None], 3, axis=2) for edge in edges])
    steering = {"controlnet_conditioning_scale": source.controlnet_scale}
    if source.strength is None:
        steer = AutoPipelineForText2Image.from_pipe(pipeline, controlnet=controlnet)
        steer.set_progress_bar_config(disable=True)
        # The edges: SD's ControlNet pipelines call them ``image``, FLUX's and Qwen-Image's ``control_image``.
        edges_argument = "control_image" if "control_image" in inspect.signature(steer.__call__).parameters else "image"
        return steer(**{edges_argument: edge_batch}, **size, **steering, **common)
    steer = AutoPipelineForImage2Image.from_pipe(pipeline, controlnet=controlnet)
    steer.set_progress_bar_config(disable=True)
    return steer(
        image=_as_batch(photos), control_image=edge_batch, strength=source.strength, **size, **steering, **common
    )


def as_pixels(jobs: Sequence[GenerationJob], pictures: torch.Tensor) -> list[np.ndarray]:
    """A pipeline's B×3×H×W pictures in [0, 1] as H×W×3 uint8, rounded as diffusers' own conversion
    to PIL is (float32, × 255, half to even)."""
    refuse_not_numbers([job.relative_path for job in jobs], pictures)
    pixels = (pictures.float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return list(pixels.cpu().numpy())


def refuse_not_numbers(names: Sequence[str], pictures: Sequence[torch.Tensor] | Sequence[np.ndarray]) -> None:
    """Refuse the batch when a picture holds values that are not numbers, naming the first: they
    would be exported black (a LoRA or checkpoint with broken weights, float16 overflowing)."""
    broken = [
        name
        for name, picture in zip(names, pictures, strict=True)
        if not bool(torch.isfinite(torch.as_tensor(picture)).all())
    ]
    if broken:
        raise ModelError(
            broken[0],
            "model",
            "the model drew {count} of {total} pictures with values that are not numbers (NaN): none is"
            " exported; its weights or its LoRA's may be broken, or float16 overflows (try --dtype bfloat16)",
            count=len(broken),
            total=len(names),
        )


def refuse_flagged(jobs: Sequence[GenerationJob], result: object) -> None:
    """Stop at a picture the model's own safety checker blacked out (hub models may carry one):
    a black picture must never be exported as if it were the render."""
    flags = getattr(result, "nsfw_content_detected", None) or []
    flagged = [job for job, flag in zip(jobs, flags, strict=False) if flag]
    if len(flagged) == 1:
        raise ModelError(
            flagged[0].relative_path,
            "safety checker",
            "the model's safety checker blacked out this picture: none is exported; change the prompt or the seed",
        )
    if flagged:
        raise ModelError(
            flagged[0].relative_path,
            "safety checker",
            "the model's safety checker blacked out {count} pictures: none is exported; change the prompt or the seed",
            count=len(flagged),
        )


def redraw_larger(
    pipeline: DiffusionPipeline, jobs: Sequence[GenerationJob], pictures: torch.Tensor, hires: HiresPass
) -> torch.Tensor:
    """The high-resolution pass: enlarge, then let img2img redraw detail at the new size, per size step.

    At a low strength the first pass's composition stays; only texture and edges are drawn again,
    which a Lanczos resize cannot invent. The VAE works in tiles here, so encoding and decoding a
    poster-sized picture needs the memory of one tile. Each pass seeds the job's generator again,
    so a picture depends on its job alone, as in the first pass.
    """
    first = jobs[0]
    family = pipeline_family(pipeline)
    # Made in ``derived``, once a model is loaded and the libraries' chatter is off: diffusers'
    # pipeline classes import every family's image processors (a second, and warnings).
    redraw = derived(pipeline, family.img2img)
    pipeline.vae.enable_tiling()
    try:
        for width, height in hires.sizes:
            larger = torch.nn.functional.interpolate(pictures, size=(height, width), mode="bicubic").clamp(0, 1)
            with feature_reuse(pipeline, first):  # features kept for this pass alone
                result = redraw(
                    **text_arguments(pipeline, family, jobs, first.guidance),
                    **cutoff_arguments(family, first.guidance_cutoff),
                    image=larger,
                    **sized(redraw, {"width": width, "height": height}),
                    strength=hires.strength,
                    num_inference_steps=img2img_steps(first.steps, hires.strength),
                    generator=_generators(jobs),
                    output_type="pt",
                )
            refuse_flagged(jobs, result)
            pictures = result.images
    finally:
        pipeline.vae.disable_tiling()  # the first pass of the next batch decodes whole, as before
    return pictures


@dataclass(frozen=True)
class GeneratedPicture:
    """A job's picture (H×W×3 uint8) and, for a job declined from a key visual, that key visual."""

    pixels: np.ndarray
    key_visual: np.ndarray | None = None


SEAM_PX = 16  # the band inside the key visual's edge that the outpaint redraws and blends over
# The added area starts from the key visual's edges stretched outwards and blurred, redrawn at this
# strength: its colours and light continue the key visual's, its content is the model's.
OUTPAINT_STRENGTH = 0.85


def key_visual_box(key_visual_size: tuple[int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """Where an outpainted picture of ``width`` x ``height`` holds its key visual: (left, top, width,
    height), the key visual scaled to fit inside and centred."""
    kv_width, kv_height = key_visual_size
    scale = min(width / kv_width, height / kv_height)
    inner_width, inner_height = round(kv_width * scale), round(kv_height * scale)
    return (width - inner_width) // 2, (height - inner_height) // 2, inner_width, inner_height


def _outpaint_inputs(key_visual: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canvas the model extends (the key visual in place, its edges stretched outwards and
    blurred), the mask of what it redraws (1: the added area
    and the seam band), and the weight of the key visual in the final blend (1 inside, 0 outside)."""
    left, top, inner_width, inner_height = key_visual_box((key_visual.shape[1], key_visual.shape[0]), width, height)
    inner = cv2.resize(key_visual, (inner_width, inner_height), interpolation=cv2.INTER_AREA)
    right, bottom = width - left - inner_width, height - top - inner_height
    canvas = cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE)
    blurred = cv2.GaussianBlur(canvas, (0, 0), sigmaX=max(width, height) / 32)
    weight = np.zeros((height, width), np.float32)
    weight[top : top + inner_height, left : left + inner_width] = 1.0
    # Inside the key visual, the weight ramps from 0 at its edge to 1 at SEAM_PX: the seam blends.
    ramp = cv2.distanceTransform((weight > 0).astype(np.uint8), cv2.DIST_L2, 3)
    weight = np.clip(ramp / SEAM_PX, 0.0, 1.0).astype(np.float32)
    canvas = np.where(weight[..., None] > 0, canvas, blurred)
    mask = (weight < 1.0).astype(np.float32)
    return canvas, mask, weight


def outpaint(
    pipeline: DiffusionPipeline, jobs: Sequence[GenerationJob], key_visuals: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each job's key visual extended to its format (``job.key_visual``'s size) by the same model,
    LoRA, prompt and seed: the added area is generated, the key visual's own pixels are kept (only
    the seam band is blended). Jobs share the declined size."""
    first = jobs[0]
    assert first.key_visual is not None
    family = pipeline_family(pipeline)
    width, height = first.key_visual.width, first.key_visual.height
    inputs = [_outpaint_inputs(picture, width, height) for picture in key_visuals]
    paint = derived(pipeline, family.inpaint)
    with torch.inference_mode(), model_failures(first):
        result = paint(
            **text_arguments(pipeline, family, jobs, first.guidance),
            image=_as_batch([canvas for canvas, _, _ in inputs]),
            mask_image=torch.from_numpy(np.stack([mask for _, mask, _ in inputs]))[:, None],
            width=width,
            height=height,
            strength=OUTPAINT_STRENGTH,
            num_inference_steps=img2img_steps(first.steps, OUTPAINT_STRENGTH),
            generator=_generators(jobs),
            output_type="pt",
        )
        refuse_flagged(jobs, result)
        painted = as_pixels(jobs, result.images)
    finished = []
    for (canvas, _, weight), picture in zip(inputs, painted, strict=True):
        blend = weight[..., None]
        finished.append(np.round(canvas * blend + picture * (1.0 - blend)).astype(np.uint8))
    return finished


def decline(
    pipeline: DiffusionPipeline, jobs: Sequence[GenerationJob], key_visuals: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each job's picture from its generated key visual: the key visual itself (a native job, or a
    crop, which post-processing makes around the detail as for any picture), or outpainted to its
    format, one model call per declined size; a job repeated in another language is painted once."""
    pictures = list(key_visuals)
    groups: dict[tuple[int, int], dict[tuple, list[int]]] = {}
    for index, job in enumerate(jobs):
        if job.key_visual is not None and job.key_visual.method == "outpaint":
            size = (job.key_visual.width, job.key_visual.height)
            groups.setdefault(size, {}).setdefault(generation_identity(job), []).append(index)
    for same_size in groups.values():
        firsts = [indices[0] for indices in same_size.values()]
        painted = outpaint(pipeline, [jobs[index] for index in firsts], [key_visuals[index] for index in firsts])
        for indices, picture in zip(same_size.values(), painted, strict=True):
            for index in indices:
                pictures[index] = picture
    return pictures
