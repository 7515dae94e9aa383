"""Campaign expansion into render jobs, each named by a hash of what shapes its pixels.

Same key, same file: a job whose key is unchanged never needs rendering again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from visuels._internal.collector import cycles_collected_after
from visuels._internal.hashing import cached_sha256_file, sha256_json
from visuels.config import cache_dir
from visuels.errors import CampaignError
from visuels.inputs.campaign import Campaign, SeedPolicy, filled_text
from visuels.inputs.charter import Fairness
from visuels.inputs.communes import Commune
from visuels.inputs.file_names import is_hidden
from visuels.inputs.formats import FORMAT_PRESETS, HIRES_STRENGTH, FormatPreset
from visuels.models.devices import DtypeName
from visuels.models.families import family_named
from visuels.models.noise_mark import VERSION as NOISE_MARK_VERSION
from visuels.models.reference import ModelInfo
from visuels.models.spec import HiresPass, KeyVisual, PhotoSource, batch_signature, generation_identity
from visuels.planning.alt_text import alt_text
from visuels.planning.fairness import Finding, diversity_words, scan, shows_people
from visuels.planning.layout_check import check_layout
from visuels.planning.model_use import (
    GenerationSettings,
    LicenceRecord,
    cannot_outpaint,
    check_capabilities,
    check_lora_fits,
    generation_settings,
    licence_record,
)
from visuels.postprocess import POSTPROCESS_VERSION

KEY_PREFIX_LENGTH = 12
# A format whose crop of the key visual keeps at least this share of its width (or height) is
# cropped from it (1:1 -> 4:5 keeps 80 %); below, the crop would lose the composition: outpainted.
CROP_MIN_SHARE = 0.75
FILE_SUFFIXES = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class RenderJob(BaseModel):
    """One output file: a commune, an audience, a language and a format."""

    model_config = ConfigDict(frozen=True)

    key: str
    campaign: str
    commune_insee: str
    commune_name: str
    headline: str
    call_to_action: str = ""
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
    guidance_cutoff: float | None = None
    deep_cache: int | None = None
    first_block_cache: float | None = None
    noise_mark: str | None = None  # the starting-noise mark's version (visuels.models.noise_mark)
    generation_key: str = ""  # the hash of GENERATION_FIELDS: jobs sharing a generated picture share it
    model_hash: str
    precision: DtypeName  # as asked ("auto" stays "auto"): the key is the same whichever machine plans
    lora_hash: str | None
    lora_scale: float | None
    speed_lora_hash: str | None = None  # the campaign's few-step LoRA, applied with the style LoRA
    speed_lora_scale: float | None = None
    charter_hash: str
    language: str
    file_type: str
    postprocess_version: str
    photo: PhotoSource | None = None
    key_visual: KeyVisual | None = None  # how this format comes from the commune's key visual
    layout: str | None = None  # the charter's template set, None: the built-in layout
    template_hash: str | None = None  # sha256 of the format's template in that set
    alt_text: str = ""  # for screen readers, in the job's language (visuels.planning.alt_text)
    review: list[str] = []  # sensitive terms found: rendered only if the campaign allows, for review
    banned: list[str] = []  # banned terms found: never rendered
    relative_path: str

    @property
    def photo_mode(self) -> tuple | None:
        return None if self.photo is None else self.photo.mode


def generation_size(preset: FormatPreset, model: ModelInfo) -> tuple[int, int]:
    """The format's aspect ratio at the model's native pixel count, on the model's size grid."""
    return size_for_aspect(preset.aspect, model)


class ModelSizes(Protocol):
    """What a model says of the sizes it draws at (``ModelInfo``, a retouch's recorded model)."""

    @property
    def native_size(self) -> int: ...
    @property
    def size_multiple(self) -> int: ...
    @property
    def longest_side(self) -> int | None: ...


def size_for_aspect(aspect: float, model: ModelSizes) -> tuple[int, int]:
    """A picture of ``aspect`` (width / height) at the model's native pixel count, on its size grid,
    its longest side within what the model's position tables reach."""
    area = model.native_size**2
    if model.longest_side is not None:
        area = min(area, model.longest_side**2 * min(aspect, 1 / aspect))
    multiple = model.size_multiple
    width = max(multiple, _on_grid(math.sqrt(area * aspect), multiple, model.longest_side))
    height = max(multiple, _on_grid(math.sqrt(area / aspect), multiple, model.longest_side))
    return width, height


def _on_grid(pixels: float, multiple: int, longest: int | None) -> int:
    """The nearest multiple, or the one below where the nearest would pass ``longest``."""
    nearest = round(pixels / multiple) * multiple
    return nearest if longest is None or nearest <= longest else longest - longest % multiple


def hires_pass(preset: FormatPreset, generation: tuple[int, int], model: ModelInfo) -> HiresPass | None:
    """The preset's high-resolution passes: up to ``hires_scale`` times the generation size, never
    beyond the format's own pixels, in equal steps of at most 2x (beyond that, one img2img step
    starts repeating subjects). None for a family with no img2img pipeline: post-processing
    enlarges its picture."""
    if preset.hires_scale is None or family_named(model.family).img2img is None:
        return None
    width, height = generation
    scale = min(preset.hires_scale, preset.width / width, preset.height / height)
    if model.longest_side is not None:
        scale = min(scale, model.longest_side / max(width, height))
    if scale <= 1:
        return None
    steps = math.ceil(math.log2(scale) - 1e-9)
    multiple = model.size_multiple
    sizes, longest = [], model.longest_side
    for step in range(1, steps + 1):
        factor = scale ** (step / steps)
        sizes.append((_on_grid(width * factor, multiple, longest), _on_grid(height * factor, multiple, longest)))
    return HiresPass(sizes=tuple(sizes), strength=HIRES_STRENGTH)


def derive_seed(policy: SeedPolicy, base: int, commune: Commune, audience: str, format_name: str) -> int:
    if policy is SeedPolicy.fixed:
        return base
    parts: list[object] = [base, commune.insee]
    if policy is SeedPolicy.per_job:
        parts += [audience, format_name]
    return int(sha256_json(parts)[:8], 16)


def build_prompt(campaign: Campaign, commune: Commune, audience: str, seed: int) -> str:
    """Charter style, the campaign's template for this commune and audience, the audience's tone words,
    and, where the prompt shows people, one value per diversity slot drawn from the seed."""
    spec = campaign.spec
    chosen = spec.audiences[audience]
    body = spec.prompt.format(
        commune=commune.name,
        # A commune taken from the COG alone has none: the commune's own name stands for its landmark.
        landmark=commune.landmarks[0] if commune.landmarks else commune.name,
        landscape=" and ".join(tag.value for tag in commune.landscapes[:2]),
        audience=chosen.prompt,
        season=spec.season,
    )
    body = re.sub(r"(,\s*)+,", ",", body)  # an empty placeholder leaves no empty item behind
    parts = [campaign.charter.spec.style.prompt, body, *chosen.tone]
    fairness = campaign.charter.spec.fairness
    if fairness.diversity and shows_people(body, fairness):
        parts += diversity_words(fairness, seed)
    return ", ".join(parts)


def file_hash(path: Path) -> str:
    """sha256 of a file, remembered between runs (weights and photos do not change often)."""
    return cached_sha256_file(path, cache_dir() / "file-hashes.json")


def folder_hash(path: Path, pattern: str = "*.safetensors") -> str:
    """Hash of a folder's weight files together, each under its path in the folder; never a hidden
    file's (a Mac's ``._NAME`` beside each, whose bytes change with no weight)."""
    files = sorted(
        file for file in path.rglob(pattern) if not any(is_hidden(part) for part in file.relative_to(path).parts)
    )
    return sha256_json([[file.relative_to(path).as_posix(), file_hash(file)] for file in files])


def lora_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    return folder_hash(path) if path.is_dir() else file_hash(path)


@dataclass(frozen=True)
class LoraHashes:
    """The campaign's LoRA files by their contents, hashed once per plan."""

    style: str | None
    speed: str | None


def photo_source(
    campaign: Campaign, commune: Commune, audience: str, controlnet_hash: str | None
) -> PhotoSource | None:
    """The photo a commune's pictures for ``audience`` start from: one of its photos, the same in every
    format and language, varied across audiences."""
    use = campaign.spec.photos
    if use is None or not commune.photos:
        return None
    photo = commune.photos[int(sha256_json([commune.insee, audience])[:8], 16) % len(commune.photos)]
    controlnet = campaign.controlnet_path
    return PhotoSource(
        path=str(photo.path),
        sha256=file_hash(photo.path),
        credit=photo.credit_line(),
        strength=use.strength,
        controlnet_path=str(controlnet) if controlnet else None,
        controlnet_hash=controlnet_hash,
        controlnet_scale=use.controlnet.scale if use.controlnet else None,
        canny_low=use.canny_low,
        canny_high=use.canny_high,
    )


@dataclass(frozen=True)
class JobText:
    """What a job says, before any model is known: who and where, its seed, its prompt and texts."""

    commune: Commune
    audience: str
    language: str
    format_name: str
    seed: int
    prompt: str
    headline: str
    call_to_action: str

    def findings(self, fairness: Fairness) -> list[Finding]:
        """The charter's banned and sensitive terms in this job's prompt and texts."""
        texts = {"prompt": self.prompt, "headline": self.headline, "call_to_action": self.call_to_action}
        return scan(texts, fairness, self.commune.name, self.audience, self.language)


def job_texts(campaign: Campaign) -> Iterator[JobText]:
    """Every (commune, audience, language, format) of the campaign with its prompt and texts, in a
    stable order: what render planning and the bias review both go through."""
    spec = campaign.spec
    for commune in campaign.communes:
        for audience in spec.audiences:
            # A format's seed and prompt are the same in every language; a key visual's formats
            # share its seed: they are one picture.
            prompted: dict[str, tuple[int, str]] = {}
            for seeded_as in dict.fromkeys(spec.master_format or name for name in spec.formats):
                seed = derive_seed(spec.seed.policy, spec.seed.base, commune, audience, seeded_as)
                prompted[seeded_as] = (seed, build_prompt(campaign, commune, audience, seed))
            for language in spec.audience_languages(audience):
                headline, call_to_action = (
                    filled_text(text, commune, spec.season) for text in spec.texts(audience, language)
                )
                for format_name in spec.formats:
                    seed, prompt = prompted[spec.master_format or format_name]
                    yield JobText(commune, audience, language, format_name, seed, prompt, headline, call_to_action)


@cycles_collected_after()  # a region's 106,704 jobs: `visuels check` expands them too
def expand_jobs(campaign: Campaign, model: ModelInfo, precision: DtypeName) -> list[RenderJob]:
    """Every (commune, audience, language, format) of the campaign as a render job, in a stable order.

    ``precision`` is the precision asked for (``auto``, float32, float16, bfloat16), and it is part
    of the key as asked: ``auto`` is resolved by the machine that renders (``devices.choose_dtype``:
    bf16 or fp16 on a GPU, fp32 on a CPU), so every machine of a mixed pool plans the same keys and
    none renders again what another made. A fixed dtype pins the pictures to the bit; ``auto``
    pictures of one key may differ by rounding between machines, as they do between devices. A job
    also carries the charter's terms found in its prompt and texts (``visuels.planning.fairness``): the
    plan holds back those it may not render.
    """
    settings = generation_settings(campaign, model)
    check_capabilities(campaign, model)
    check_lora_fits(campaign, model)
    licence = licence_record(campaign, model)  # refuses before any job is planned
    lora = LoraHashes(style=lora_hash(campaign.lora_path), speed=lora_hash(campaign.speed_lora_path))
    controlnet = folder_hash(campaign.controlnet_path) if campaign.controlnet_path else None
    fairness = campaign.charter.spec.fairness
    photos: dict[tuple[str, str], PhotoSource | None] = {}  # one photo per commune and audience
    checked: set[tuple] = set()  # texts and labels known to fit their template's slots
    master = campaign.spec.master_format
    jobs = []
    for text in job_texts(campaign):
        where = (text.commune.insee, text.audience)
        if where not in photos:
            photos[where] = photo_source(campaign, text.commune, text.audience, controlnet)
        findings = text.findings(fairness)
        key_visual = None
        if master is not None and text.format_name != master:
            master_text = replace(text, format_name=master)
            master_job = _job(
                campaign, model, settings, licence, precision, lora, master_text, photos[where], findings, checked
            )
            key_visual = declination(master_job, FORMAT_PRESETS[text.format_name], model)
            if key_visual.method == "outpaint" and family_named(model.family).inpaint is None:
                raise cannot_outpaint(campaign, family_named(model.family))
        jobs.append(
            _job(
                campaign, model, settings, licence, precision, lora, text, photos[where], findings, checked, key_visual
            )
        )
    _one_job_per_picture(campaign, jobs)
    return jobs


def _one_job_per_picture(campaign: Campaign, jobs: list[RenderJob]) -> None:
    """Refuse two jobs of one key: the same picture under two names, which the record (one row per
    key) cannot hold. Two audiences alike in all but their names make them (a copied audience
    whose words were not changed yet)."""
    seen: dict[str, RenderJob] = {}
    for job in jobs:
        first = seen.setdefault(job.key, job)
        if first is not job:
            names = {"first": first.relative_path, "second": job.relative_path}
            if job.audience == first.audience:
                raise CampaignError(
                    campaign.path,
                    None,
                    "{second} would be the same picture as {first}: nothing that makes it differs but a name",
                    **names,
                )
            raise CampaignError(
                campaign.path,
                f"audiences.{job.audience}",
                "{second} would be the same picture as {first}: nothing that makes it differs but a name;"
                " give the audiences different words, texts or languages, or keep one",
                **names,
            )


def declination(master_job: RenderJob, preset: FormatPreset, model: ModelInfo) -> KeyVisual:
    """How a format comes from the key visual ``master_job`` generates: cropped where the crop keeps
    at least CROP_MIN_SHARE of the key visual's width or height, outpainted to the format's aspect
    ratio (at the model's native size) where it would not."""
    key_aspect = master_job.generation_width / master_job.generation_height
    share = min(preset.aspect / key_aspect, key_aspect / preset.aspect)
    if share >= CROP_MIN_SHARE:
        method, size = "crop", (master_job.generation_width, master_job.generation_height)
    else:
        method, size = "outpaint", generation_size(preset, model)
    return KeyVisual(format=master_job.format, method=method, width=size[0], height=size[1], master_job=master_job.key)


# What makes a job's generated picture, before it is declined to a format and post-processed:
# jobs that share these share one generated picture (a commune's languages; a key visual's
# formats) and the payload of its starting noise (the first 64 bits of their hash).
GENERATION_FIELDS = (
    "prompt",
    "negative_prompt",
    "seed",
    "generation_width",
    "generation_height",
    "steps",
    "guidance",
    "scheduler",
    "guidance_cutoff",
    "deep_cache",
    "noise_mark",
    "hires",
    "photo",
    "model_hash",
    "precision",
    "lora_hash",
    "lora_scale",
)
# Added later: they count only when set, so that earlier jobs keep their generation keys (and
# their starting noise's payload).
LATER_GENERATION_FIELDS = ("first_block_cache", "speed_lora_hash", "speed_lora_scale")


def _set_only(
    campaign: Campaign,
    settings: GenerationSettings,
    licence: LicenceRecord,
    lora: LoraHashes,
    photo: PhotoSource | None,
    hires: HiresPass | None,
    key_visual: KeyVisual | None,
) -> dict[str, object]:
    """What shapes some jobs only, each in their key only where it is set: the keys of the other
    jobs, and of campaigns made before it existed, stay as they were."""
    shaping: dict[str, object] = {}
    if licence.licence.source == "campaign" or licence.override:  # a card's licence is in the model's hash
        shaping["model_licence"] = licence.model_dump(mode="json")
    if settings.guidance_cutoff is not None:
        shaping["guidance_cutoff"] = settings.guidance_cutoff
    if photo is None:
        # Text to image starts from noise carrying the keyed mark (visuels.models.noise).
        shaping["noise_mark"] = NOISE_MARK_VERSION
    if settings.deep_cache is not None:
        shaping["deep_cache"] = settings.deep_cache
    speed_lora = campaign.spec.speed_lora
    if lora.speed is not None and speed_lora is not None:
        shaping["speed_lora_hash"] = lora.speed
        shaping["speed_lora_scale"] = speed_lora.scale
    if settings.first_block_cache is not None and photo is None:  # text to image only (generation.feature_reuse)
        shaping["first_block_cache"] = settings.first_block_cache
    if hires is not None:
        shaping["hires"] = hires.model_dump(mode="json")
    if photo is not None:
        shaping["photo"] = photo.shaping()
    if key_visual is not None:
        shaping["key_visual"] = key_visual.model_dump(mode="json")
    return shaping


def _job(
    campaign: Campaign,
    model: ModelInfo,
    settings: GenerationSettings,
    licence: LicenceRecord,
    precision: DtypeName,
    lora: LoraHashes,
    text: JobText,
    photo: PhotoSource | None,
    findings: list[Finding],
    checked: set[tuple],
    key_visual: KeyVisual | None = None,
) -> RenderJob:
    """One job and its key: the hash of everything that shapes its pixels and metadata. A job
    declined from a key visual generates the key visual (its format's size and high-resolution
    pass), then ``key_visual`` says how its own format comes from it."""
    spec = campaign.spec
    preset = FORMAT_PRESETS[text.format_name]
    generated = preset if key_visual is None else FORMAT_PRESETS[key_visual.format]
    gen_width, gen_height = generation_size(generated, model)
    hires = hires_pass(generated, (gen_width, gen_height), model)
    family = family_named(model.family)
    # A distilled family reads no negative prompt: it stays out of its jobs and keys.
    negative_prompt = campaign.charter.spec.style.negative_prompt if family.negative_prompt else ""
    shaping: dict[str, object] = {
        "prompt": text.prompt,
        "negative_prompt": negative_prompt,
        "seed": text.seed,
        "generation_width": gen_width,
        "generation_height": gen_height,
        "steps": settings.steps,
        "guidance": settings.guidance,
        "scheduler": settings.scheduler,
        "model_hash": model.hash,
        "precision": precision,
        "lora_hash": lora.style,
        "lora_scale": spec.lora.scale if spec.lora else None,
        "charter_hash": campaign.charter.hash,
        "postprocess_version": POSTPROCESS_VERSION,
        # Post-processing draws these onto the picture.
        "commune_name": text.commune.name,
        "headline": text.headline,
        "call_to_action": text.call_to_action,
        "format": text.format_name,
        "width": preset.width,
        "height": preset.height,
        "dpi": preset.dpi,
        "language": text.language,  # the texts' and the AI label's
        "file_type": spec.file_type,
    }
    shaping |= _set_only(campaign, settings, licence, lora, photo, hires, key_visual)
    template = campaign.charter.template(spec.layout, text.format_name)
    if template is not None:  # only when set: jobs in the built-in layout keep their keys
        check_layout(campaign, template, text, checked)
        shaping["layout"] = spec.layout
        shaping["template_hash"] = template.sha256
    label = campaign.charter.spec.ai_label.text[text.language]
    shaping["alt_text"] = alt_text(spec.name, text.commune, text.language, label)
    key = sha256_json(shaping)
    generation = {name: shaping.get(name) for name in GENERATION_FIELDS}
    generation |= {name: shaping[name] for name in LATER_GENERATION_FIELDS if name in shaping}
    generation_key = sha256_json(generation)
    name = f"{text.audience}-{text.language}-{key[:KEY_PREFIX_LENGTH]}.{FILE_SUFFIXES[spec.file_type]}"
    relative = f"{campaign.slug}/{campaign.commune_folders[text.commune.insee]}/{text.format_name}/{name}"
    return RenderJob(
        key=key,
        campaign=campaign.slug,
        commune_insee=text.commune.insee,
        audience=text.audience,
        relative_path=relative,
        review=[finding.message() for finding in findings if finding.severity == "sensitive"],
        banned=[finding.message() for finding in findings if finding.severity == "banned"],
        generation_key=generation_key,
        **{**shaping, "photo": photo, "key_visual": key_visual},
    )


def batches(jobs: list[RenderJob], batch_size: int) -> Iterator[list[RenderJob]]:
    """Chunks of jobs that can share one model call (see ``BATCH_FIELDS``), in the jobs' order per group.

    A chunk holds ``batch_size`` distinct pictures (``generation_identity``) with every job of the
    group that shares one of them (the same picture in several languages; a key visual's formats),
    so the model host generates each picture once.
    """
    groups: dict[tuple, dict[tuple, list[RenderJob]]] = {}
    for job in jobs:
        groups.setdefault(batch_signature(job), {}).setdefault(generation_identity(job), []).append(job)
    for group in groups.values():
        pictures = iter(group.values())
        while chunk := list(islice(pictures, batch_size)):
            yield [job for sharing in chunk for job in sharing]


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
