"""How a campaign uses its model: the generation settings its family fills in, what the family
can do for it (photos, ControlNet, outpainting), and whether its licence lets a region publish.

Each refusal is one line naming the campaign file and the field, before any job is planned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from safetensors import safe_open
from visuels._internal.json_text import read_json
from visuels.config import demo_model_dir
from visuels.errors import CampaignError
from visuels.inputs.campaign import Campaign, PhotoUse
from visuels.inputs.file_names import is_hidden
from visuels.inputs.model_refs import DemoModelRef, DiffusersFolderRef, HubRef, SingleFileRef
from visuels.models.families import Family, family_named
from visuels.models.licences import Licence, known
from visuels.models.lora_layout import PEFT_FACTORS, lora_factors, shapes_from_config
from visuels.models.reference import ModelInfo, controlnet_class, demo_built, hub_snapshot

log = logging.getLogger(__name__)

# How LoRA files name the layers they change, by the kind of denoiser they were made for: diffusers'
# own layout ("unet." / "transformer.") and kohya's (lora_unet_down_blocks_… / lora_unet_double_blocks_…);
# the original layouts' "diffusion_model." names either kind, so it decides nothing. A LoRA is refused
# at planning only when its names are all of the other kind; loading it says the rest (models.host).
LORA_LAYERS = {
    "unet": ("unet.", "lora_unet_down_blocks", "lora_unet_up_blocks", "lora_unet_mid_block", "lora_unet_input_blocks"),
    "transformer": (
        "transformer.",
        "lora_transformer_",
        "lora_unet_double_blocks",
        "lora_unet_single_blocks",
        "lora_unet_transformer_blocks",
    ),
}


@dataclass(frozen=True)
class GenerationSettings:
    """Steps, guidance and scheduler of every job: the campaign's, or its model family's defaults."""

    steps: int
    guidance: float
    scheduler: str
    guidance_cutoff: float | None = None  # share of the steps with classifier-free guidance; None: all
    deep_cache: int | None = None  # a UNet's deep features computed every N steps; None: every step
    first_block_cache: float | None = None  # a transformer's later blocks skipped below this change


class LicenceRecord(BaseModel):
    """The model's licence as every picture records it, and the campaign's reason when it overrides."""

    model_config = ConfigDict(frozen=True)

    licence: Licence
    override: str | None = None


def generation_settings(campaign: Campaign, model: ModelInfo) -> GenerationSettings:
    spec, family = campaign.spec, family_named(model.family)
    scheduler = spec.scheduler.value if spec.scheduler is not None else family.scheduler
    if scheduler not in family.schedulers:
        raise CampaignError(
            campaign.path,
            "scheduler",
            "{family} models use their own flow-matching scheduler: write `scheduler: default` or leave it out",
            family=family.label,
        )
    if spec.guidance_cutoff is not None and family.guidance_cutoff is None:
        raise CampaignError(
            campaign.path,
            "guidance_cutoff",
            "{family} models run no classifier-free guidance that could stop early: remove `guidance_cutoff`",
            family=family.label,
        )
    if spec.deep_cache is not None and family.denoiser != "unet":
        raise CampaignError(
            campaign.path,
            "deep_cache",
            "{family} models have no UNet whose deep features could be reused: remove `deep_cache`",
            family=family.label,
        )
    if spec.first_block_cache is not None and not family.first_block_cache:
        raise CampaignError(
            campaign.path,
            "first_block_cache",
            "{family} models are not among those First Block Cache serves (FLUX.1, Qwen-Image):"
            " remove `first_block_cache`",
            family=family.label,
        )
    return GenerationSettings(
        steps=spec.steps if spec.steps is not None else model.steps,
        guidance=spec.guidance if spec.guidance is not None else model.guidance,
        scheduler=scheduler,
        guidance_cutoff=spec.guidance_cutoff,
        deep_cache=spec.deep_cache,
        first_block_cache=spec.first_block_cache,
    )


def fitted_to_run_model(campaign: Campaign, own_family: str | None, model: ModelInfo) -> Campaign:
    """The campaign as a run given another model renders it (``--model``, the run form's Model).

    Its steps, guidance and scheduler were chosen for its own model: on a model of another family
    (``own_family``; None: its files are not on this machine, so it is not known to differ), the
    run takes that family's own. Speed options, photo uses and LoRAs the run's model cannot serve
    are left out instead of refusing a campaign file that is right for its own model. Each change is
    logged as a warning, since the run's pictures are not the campaign's. The run's own ``steps``
    apply after this.
    """
    spec, family = campaign.spec, family_named(model.family)
    update: dict = {}
    if own_family is not None and own_family != family.name:
        written = {field: getattr(spec, field) for field in ("steps", "guidance", "scheduler")}
        if any(value is not None for value in written.values()):
            log.warning(
                "the campaign's steps, guidance and scheduler are for its own %s model: this %s model takes"
                " its own (%d steps, guidance %g)",
                family_named(own_family).label,
                family.label,
                model.steps,
                model.guidance,
            )
            update |= dict.fromkeys(written)
    elif spec.scheduler is not None and spec.scheduler.value not in family.schedulers:
        log.warning("the campaign's scheduler is not one %s models take: their own is used", family.label)
        update["scheduler"] = None
    unusable = {
        "guidance_cutoff": family.guidance_cutoff is None,
        "deep_cache": family.denoiser != "unet",
        "first_block_cache": not family.first_block_cache,
    }
    for field, cannot in unusable.items():
        if getattr(spec, field) is not None and cannot:
            log.warning("%s models cannot use the campaign's %s: left out", family.label, field)
            update[field] = None
    photos, controlnet_path = _photo_use_for(campaign, family)
    if photos != spec.photos:
        update["photos"] = photos
    paths: dict = {"controlnet_path": controlnet_path}
    for field, misfit in _misfitting_loras(campaign, model, family):
        if misfit == "denoiser":
            log.warning("the campaign's %s was made for another kind of model than %s: left out", field, family.label)
        else:
            log.warning("the campaign's %s does not fit %s (its layers or widths): left out", field, family.label)
        update[field], paths[f"{field}_path"] = None, None
    if not update:
        return campaign
    return campaign.model_copy(update={"spec": spec.model_copy(update=update), **paths})


def _photo_use_for(campaign: Campaign, family: Family) -> tuple[PhotoUse | None, Path | None]:
    """The campaign's use of photos less what the family cannot do (logged), and its ControlNet's folder."""
    photos, controlnet_path = campaign.spec.photos, campaign.controlnet_path
    if photos is None or not any(commune.photos for commune in campaign.communes):
        return photos, controlnet_path
    if controlnet_path is not None and controlnet_class(controlnet_path) != family.controlnet:
        log.warning("the campaign's ControlNet is not one for %s models: the photos' edges are not used", family.label)
        photos, controlnet_path = photos.model_copy(update={"controlnet": None}), None
    if photos.strength is not None and (family.img2img is None or (controlnet_path and not family.controlnet_img2img)):
        log.warning("%s models cannot start from a photo here: the pictures are drawn from the text", family.label)
        photos = photos.model_copy(update={"strength": None})
    if photos.strength is None and photos.controlnet is None:
        return None, None
    return photos, controlnet_path


def check_capabilities(campaign: Campaign, model: ModelInfo) -> None:
    """Refuse what the model's family cannot do for this campaign, naming the field to change."""
    spec, family = campaign.spec, family_named(model.family)
    if spec.photos is None or not any(commune.photos for commune in campaign.communes):
        return
    if spec.photos.controlnet is not None and family.controlnet is None:
        raise CampaignError(
            campaign.path,
            "photos.controlnet",
            "{family} models cannot be steered by a photo's edges (ControlNet): remove `photos.controlnet`"
            " or change the model (docs/models.md)",
            family=family.label,
        )
    if campaign.controlnet_path is not None and family.controlnet is not None:
        made_for = controlnet_class(campaign.controlnet_path)
        if made_for != family.controlnet:
            raise CampaignError(
                campaign.path,
                "photos.controlnet.path",
                "this ControlNet ({value}) is not one for {family} models (they take a {expected})",
                value=made_for,
                family=family.label,
                expected=family.controlnet,
            )
    if spec.photos.controlnet is not None and spec.photos.strength is not None and not family.controlnet_img2img:
        raise CampaignError(
            campaign.path,
            "photos.strength",
            "{family} models are steered by a photo's edges from text only (diffusers has no img2img"
            " ControlNet pipeline for them): set `photos.strength: null` or remove `photos.controlnet`",
            family=family.label,
        )
    if spec.photos.strength is not None and family.img2img is None:
        raise CampaignError(
            campaign.path,
            "photos",
            "{family} models cannot start from a photo (no img2img pipeline in diffusers): set `photos: null`"
            " or change the model (docs/models.md)",
            family=family.label,
        )


def cannot_outpaint(campaign: Campaign, family: Family) -> CampaignError:
    return CampaignError(
        campaign.path,
        "format_mode",
        "{family} models cannot outpaint a key visual (no inpainting pipeline in diffusers): use formats"
        " of close aspect ratios, `format_mode: native`, or another model (docs/models.md)",
        family=family.label,
    )


def licence_record(campaign: Campaign, model: ModelInfo) -> LicenceRecord:
    """The licence the model's files declare, or the campaign's where they declare none; a licence
    that refuses publication stops the campaign unless it records an override with its reason."""
    declared = campaign.spec.model_licence
    licence = model.licence
    if declared.licence is not None:
        if licence.id is not None and licence.id != declared.licence.strip().lower():
            raise CampaignError(
                campaign.path,
                "model_licence.licence",
                "the model's own files say its licence is {found}, not {declared}",
                found=licence.id,
                declared=declared.licence,
            )
        licence = known(declared.licence, "campaign")
    if licence.refuses_publication and declared.override is None:
        raise CampaignError(
            campaign.path,
            "model",
            "the model's licence ({licence}) does not let a region publish its pictures (non-commercial,"
            " research-only or revenue-capped); record a reason in `model_licence.override` to render anyway",
            licence=licence.said(),
        )
    return LicenceRecord(licence=licence, override=declared.override if licence.refuses_publication else None)


def _loras(campaign: Campaign) -> list[tuple[str, Path]]:
    """The campaign's LoRA files by their field: its style LoRA, its speed LoRA."""
    named = (("lora", campaign.lora_path), ("speed_lora", campaign.speed_lora_path))
    return [(field, path) for field, path in named if path is not None]


def made_for_other_denoiser(path: Path, family: Family) -> bool:
    """Whether a LoRA file changes only the layers of the other kind of denoiser than the family's
    (a FLUX LoRA for SD1.5, an SD LoRA for FLUX.2 klein), by its weights' names (its header only)."""
    if path.suffix != ".safetensors":
        return False  # a trusted pickle: loading it says what fits
    other = "transformer" if family.denoiser == "unet" else "unet"
    with safe_open(str(path), "pt") as weights:
        names = list(weights.keys())
    return any(name.startswith(LORA_LAYERS[other]) for name in names) and not any(
        name.startswith(LORA_LAYERS[family.denoiser]) for name in names
    )


def _model_folder(model: ModelInfo) -> Path | None:
    """The model's diffusers folder at hand (a hub id's: its snapshot in the local cache, at the
    commit it is pinned to; a single file's: its config folder); None for a demo model not built yet."""
    if isinstance(model.ref, DiffusersFolderRef):
        return Path(model.ref.path)
    if isinstance(model.ref, SingleFileRef):
        return Path(model.ref.config)
    if isinstance(model.ref, HubRef):
        return hub_snapshot(model.ref, "model")
    if isinstance(model.ref, DemoModelRef) and demo_built():
        return demo_model_dir()
    return None


def _component_shapes(model: ModelInfo, folder: Path, component: str) -> dict[str, tuple[int, ...]]:
    """A component's weight shapes: from its files' headers, or a single file's from its config
    (the file names its weights in the original layout)."""
    if isinstance(model.ref, SingleFileRef):
        return shapes_from_config(folder, component)
    return _weight_shapes(folder / component) if (folder / component).is_dir() else {}


def _weight_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """The shapes of a component's weights by name, from its files' headers (shards and variants
    alike); a text encoder's without the ``text_model.`` that older files put before them."""
    shapes = {}
    for file in sorted(path for path in folder.glob("*.safetensors") if not is_hidden(path.name)):  # a Mac's ._NAME
        with safe_open(str(file), "pt") as weights:
            shapes |= {name: tuple(weights.get_slice(name).get_shape()) for name in list(weights.keys())}
    return {name.removeprefix("text_model."): shape for name, shape in shapes.items()}


@dataclass
class _ModelFiles:
    """A model's files as a LoRA's fit reads them: its folder, its UNet's config, and each
    component's weight shapes, read once, for the first LoRA that needs them."""

    model: ModelInfo
    folder: Path
    unet_config: dict | None
    read: dict[str, dict[str, tuple[int, ...]]]  # by component, as they are asked for

    def shapes(self, component: str) -> dict[str, tuple[int, ...]]:
        if component not in self.read:
            self.read[component] = _component_shapes(self.model, self.folder, component)
        return self.read[component]


def _lora_misfit(path: Path, files: _ModelFiles, family: Family) -> str | None:
    """How a LoRA does not fit the model (``MISFITS``): "none" (no weight for this kind of model),
    "layers" (it names one the model lacks), "shapes" (widths that differ: an SDXL LoRA on SD1.5),
    or None. Its factors are read in any layout diffusers loads (its own, kohya's, ComfyUI's,
    BFL's) as diffusers converts them, for the denoiser and the text encoders."""
    components = lora_factors(path, family.pipeline, files.unet_config)
    if components == {}:
        return "none"
    for component, factors in (components or {}).items():
        shapes = files.shapes(component)
        for name, shape in factors.items():
            end, axis = next((end, axis) for end, axis in PEFT_FACTORS if name.endswith(end))
            layer = shapes.get(name[: -len(end)].removeprefix("text_model.") + ".weight")
            if layer is None:
                return "layers"
            if shape[axis] != layer[axis]:
                return "shapes"
    return None


def _misfitting_loras(campaign: Campaign, model: ModelInfo, family: Family) -> Iterator[tuple[str, str]]:
    """The campaign's LoRAs that do not fit the model, by field, and how: "denoiser" (made for the
    other kind, by its weights' names), "layers" or "shapes" (``_lora_misfit``, against its files)."""
    loras = _loras(campaign)
    folder = _model_folder(model) if loras else None  # a campaign without a LoRA reads nothing
    files = None
    if folder is not None:
        config = folder / "unet" / "config.json"
        unet_config = read_json(config) if family.denoiser == "unet" else None
        files = _ModelFiles(model, folder, unet_config, {})
    for field, path in loras:
        if made_for_other_denoiser(path, family):
            yield field, "denoiser"
            continue
        misfit = _lora_misfit(path, files, family) if files is not None else None
        if misfit is not None:
            yield field, misfit


# What a LoRA that does not fit its model is told, by how it does not (``_lora_misfit``).
MISFITS = {
    "none": "none of its weights names a layer of this model ({family}): a LoRA made for another model?",
    "layers": "it names layers this model ({family}) does not have: a LoRA made for another model?",
    "shapes": "its weights' shapes are not this model's ({family}): a LoRA made for another model?",
}


def check_lora_fits(campaign: Campaign, model: ModelInfo) -> None:
    """Refuse a style or speed LoRA made for another model, naming its field, before anything is
    rendered: one for the other kind of denoiser (by its weights' names), or one whose layers or
    widths are not this model's (by its weights' shapes, against the model's files)."""
    family = family_named(model.family)
    for field, misfit in _misfitting_loras(campaign, model, family):
        if misfit == "denoiser":
            raise CampaignError(
                campaign.path,
                f"{field}.path",
                "this LoRA changes a {other}'s layers: it was made for another kind of model than {family}",
                other="transformer" if family.denoiser == "unet" else "UNet",
                family=family.label,
            )
        raise CampaignError(campaign.path, f"{field}.path", MISFITS[misfit], family=family.label)
