"""Campaign expansion into render jobs, each named by a hash of what shapes its pixels.

Same key, same file: a job whose key is unchanged never needs rendering again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipelines.campaign import Campaign, SeedPolicy
from pipelines.communes import Commune
from pipelines.formats import FORMAT_PRESETS, HIRES_STRENGTH, FormatPreset
from pipelines.hashing import cached_sha256_file, sha256_files, sha256_json
from pipelines.model_reference import ModelInfo
from pipelines.paths import cache_dir
from pipelines.postprocess import POSTPROCESS_VERSION

KEY_PREFIX_LENGTH = 12
FILE_SUFFIXES = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class HiresPass(BaseModel):
    """Redraw a first pass at larger sizes, each an img2img pass from the one before (print formats)."""

    model_config = ConfigDict(frozen=True)

    sizes: tuple[tuple[int, int], ...]  # (width, height) of each pass, growing
    strength: float


class RenderJob(BaseModel):
    """One output file: a commune, an audience and a format."""

    model_config = ConfigDict(frozen=True)

    key: str
    campaign: str
    commune_insee: str
    commune_name: str
    headline: str
    audience: str
    format: str
    width: int
    height: int
    dpi: int
    generation_width: int
    generation_height: int
    hires: HiresPass | None = None
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    scheduler: str
    model_hash: str
    precision: str
    lora_hash: str | None
    lora_scale: float | None
    charter_hash: str
    language: str
    file_type: str
    postprocess_version: str
    relative_path: str


def generation_size(preset: FormatPreset, model: ModelInfo) -> tuple[int, int]:
    """The format's aspect ratio at the model's native pixel count, on the model's size grid."""
    area = model.native_size**2
    multiple = model.size_multiple
    width = max(multiple, round(math.sqrt(area * preset.aspect) / multiple) * multiple)
    height = max(multiple, round(math.sqrt(area / preset.aspect) / multiple) * multiple)
    return width, height


def hires_pass(preset: FormatPreset, generation: tuple[int, int], model: ModelInfo) -> HiresPass | None:
    """The preset's high-resolution passes: up to ``hires_scale`` times the generation size, never
    beyond the format's own pixels, in equal steps of at most 2x (beyond that, one img2img step
    starts repeating subjects)."""
    if preset.hires_scale is None:
        return None
    width, height = generation
    scale = min(preset.hires_scale, preset.width / width, preset.height / height)
    if scale <= 1:
        return None
    steps = math.ceil(math.log2(scale) - 1e-9)
    multiple = model.size_multiple
    sizes = []
    for step in range(1, steps + 1):
        factor = scale ** (step / steps)
        sizes.append((round(width * factor / multiple) * multiple, round(height * factor / multiple) * multiple))
    return HiresPass(sizes=tuple(sizes), strength=HIRES_STRENGTH)


def derive_seed(policy: SeedPolicy, base: int, commune: Commune, audience: str, format_name: str) -> int:
    if policy is SeedPolicy.fixed:
        return base
    parts: list[object] = [base, commune.insee]
    if policy is SeedPolicy.per_job:
        parts += [audience, format_name]
    return int(sha256_json(parts)[:8], 16)


def build_prompt(campaign: Campaign, commune: Commune, audience: str) -> str:
    spec = campaign.spec
    body = spec.prompt.format(
        commune=commune.name,
        landmark=commune.landmarks[0],
        landscape=" and ".join(tag.value for tag in commune.landscapes[:2]),
        audience=spec.audiences[audience],
        season=spec.season,
    )
    return f"{campaign.charter.spec.style.prompt}, {body}"


def lora_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    hash_cache = cache_dir() / "file-hashes.json"
    if path.is_dir():
        return sha256_files([p for p in path.rglob("*.safetensors")], path)
    return cached_sha256_file(path, hash_cache)


def expand_jobs(campaign: Campaign, model: ModelInfo, precision: str) -> list[RenderJob]:
    """Every (commune, audience, format) of the campaign as a render job, in a stable order.

    ``precision`` is the dtype the model runs in (float32, float16, bfloat16): half precisions
    change pictures visibly, so it is part of the key. The device is not: kernels on different
    devices differ by rounding only.
    """
    spec = campaign.spec
    lora = lora_hash(campaign.lora_path)
    jobs = []
    for commune in campaign.communes:
        for audience in spec.audiences:
            prompt = build_prompt(campaign, commune, audience)
            for format_name in spec.formats:
                preset = FORMAT_PRESETS[format_name]
                gen_width, gen_height = generation_size(preset, model)
                hires = hires_pass(preset, (gen_width, gen_height), model)
                shaping: dict[str, object] = {
                    "prompt": prompt,
                    "negative_prompt": campaign.charter.spec.style.negative_prompt,
                    "seed": derive_seed(spec.seed.policy, spec.seed.base, commune, audience, format_name),
                    "generation_width": gen_width,
                    "generation_height": gen_height,
                    "steps": spec.steps,
                    "guidance": spec.guidance,
                    "scheduler": spec.scheduler.value,
                    "model_hash": model.hash,
                    "precision": precision,
                    "lora_hash": lora,
                    "lora_scale": spec.lora.scale if spec.lora else None,
                    "charter_hash": campaign.charter.hash,
                    "postprocess_version": POSTPROCESS_VERSION,
                    # Post-processing draws these onto the picture.
                    "commune_name": commune.name,
                    "headline": spec.headline,
                    "format": format_name,
                    "width": preset.width,
                    "height": preset.height,
                    "dpi": preset.dpi,
                    "language": spec.language,
                    "file_type": spec.file_type,
                }
                if hires is not None:  # only when set: the keys of other formats stay as they were
                    shaping["hires"] = hires.model_dump(mode="json")
                key = sha256_json(shaping)
                name = f"{audience}-{key[:KEY_PREFIX_LENGTH]}.{FILE_SUFFIXES[spec.file_type]}"
                relative = f"{campaign.slug}/{campaign.commune_folders[commune.insee]}/{format_name}/{name}"
                jobs.append(
                    RenderJob(
                        key=key,
                        campaign=campaign.slug,
                        commune_insee=commune.insee,
                        audience=audience,
                        relative_path=relative,
                        **shaping,
                    )
                )
    return jobs


# What must be equal for jobs to share one model call (the model, LoRA and precision are the
# plan's). Prompts, negative prompts and seeds may differ: each job has its own generator.
BATCH_FIELDS = ("generation_width", "generation_height", "hires", "steps", "guidance", "scheduler")


def batch_signature(job: RenderJob) -> tuple:
    return tuple(getattr(job, name) for name in BATCH_FIELDS)


def batches(jobs: list[RenderJob], batch_size: int) -> Iterator[list[RenderJob]]:
    """Chunks of jobs that can share one model call (see ``BATCH_FIELDS``), in the jobs' order per group."""
    groups: dict[tuple, list[RenderJob]] = {}
    for job in jobs:
        groups.setdefault(batch_signature(job), []).append(job)
    for group in groups.values():
        iterator = iter(group)
        while chunk := list(islice(iterator, batch_size)):
            yield chunk


def shard_by_commune(jobs: list[RenderJob], shard_size: int) -> list[list[str]]:
    """INSEE codes in groups whose jobs number about ``shard_size`` (a commune is never split)."""
    per_commune: dict[str, int] = {}
    for job in jobs:
        per_commune[job.commune_insee] = per_commune.get(job.commune_insee, 0) + 1
    shards: list[list[str]] = [[]]
    filled = 0
    for code, count in per_commune.items():
        if shards[-1] and filled + count > shard_size:
            shards.append([])
            filled = 0
        shards[-1].append(code)
        filled += count
    return [shard for shard in shards if shard]
