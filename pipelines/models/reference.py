"""What must be known about a model before loading it: its hash, family, native size, licence and
description, from its files alone (the reference a campaign names is ``visuels.inputs.model_refs``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from safetensors import safe_open
from visuels._internal.hashing import cached_sha256_file, sha256_file, sha256_json
from visuels._internal.json_text import read_json
from visuels.config import cache_dir, demo_model_dir
from visuels.errors import ModelError, Text
from visuels.inputs.model_refs import (
    WEIGHT_SUFFIXES,
    DemoModelRef,
    DiffusersFolderRef,
    HubRef,
    ModelRef,
    SingleFileRef,
)
from visuels.inputs.weight_files import weights_file_problem, weights_problem
from visuels.models.families import Family, edit_family_of_pipeline, family_of_pipeline, own_defaults
from visuels.models.licences import Licence, card_licence, checkpoint_licence

# How a UNet's weights begin, in diffusers' layout and in the original (LDM) one.
UNET_WEIGHTS = ("down_blocks.", "up_blocks.", "mid_block.", "model.diffusion_model.input_blocks.")
# The demo model is built by visuels from configs and a seed: the project's own licence.
DEMO_LICENCE = Licence(id="apache-2.0", use="publishable", source="built in")
# Recorded in English (manifests, the ledger); a command says it in its reader's words.
DEMO_DESCRIPTION = Text("demo model (random weights)")
PUBLISHED_VAE_FACTOR = 8  # pixels per latent cell of every transformer family's published VAE
DEMO_FAMILY = "sd15"  # the demo model is a tiny StableDiffusionPipeline (visuels.models.demo)


class ModelInfo(BaseModel):
    """What job expansion needs to know about a model without loading its weights."""

    model_config = ConfigDict(frozen=True)

    hash: str
    family: str = Field(description="Its family (visuels.models.families), from its pipeline class.")
    native_size: int
    size_multiple: int = Field(description="Width and height must be multiples of this.")
    longest_side: int | None = Field(
        default=None, description="The longest side its position tables reach, in pixels; None: no limit."
    )
    steps: int = Field(description="Its default steps: its family's, or its variant's as its files say.")
    guidance: float = Field(description="Its default guidance, as its steps.")
    description: str
    licence: Licence
    ref: ModelRef = Field(description="What to load: the reference, a hub id pinned to a commit.")


def demo_built() -> bool:
    """Whether the demo model is built on this machine (read, not built)."""
    return (demo_model_dir() / "model_index.json").is_file()


def model_folder(ref: ModelRef) -> Path | None:
    """The local diffusers folder holding the model's configs, if there is one."""
    if isinstance(ref, DemoModelRef):
        if demo_built():
            return demo_model_dir()
        # Imported here: building the demo model needs the model libraries, reading it does not.
        from visuels.models.demo import ensure_demo_model

        return ensure_demo_model()
    if isinstance(ref, DiffusersFolderRef):
        return Path(ref.path)
    if isinstance(ref, SingleFileRef):
        return Path(ref.config)
    return None


def _read_config(folder: Path, component: str, source: str, name: str = "config.json") -> dict:
    path = folder / component / name
    try:
        return read_json(path)
    except FileNotFoundError:
        raise ModelError(source, "model", "{path} not found: not a diffusers model folder", path=path) from None
    except ValueError as exc:
        raise ModelError(source, "model", "{path} is not valid JSON ({exc})", path=path, exc=str(exc)) from None


def controlnet_class(folder: Path) -> str:
    """The diffusers class a ControlNet folder names (``ControlNetModel``, ``FluxControlNetModel``…)."""
    return str(_read_config(folder, ".", "photos.controlnet.path").get("_class_name", "ControlNetModel"))


def _index(folder: Path, source: str) -> dict:
    if not folder.exists():
        raise ModelError(source, "model", "{folder} not found", folder=folder)
    if not folder.is_dir():
        raise ModelError(source, "model", "{folder} is a file, not a diffusers model folder", folder=folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            source, "model", "{folder} has no model_index.json: not a diffusers model folder", folder=folder
        )
    index = _read_config(folder, ".", source, "model_index.json")
    return index if isinstance(index, dict) else {}


def edits_pictures(ref: ModelRef) -> bool:
    """Whether a model is an edit model (retouching by instruction), from its ``model_index.json`` alone."""
    if isinstance(ref, DemoModelRef):
        return False
    folder = hub_snapshot(ref, "model") if isinstance(ref, HubRef) else model_folder(ref)
    try:
        index = read_json(folder / "model_index.json") if folder else {}
    except (OSError, ValueError):
        return False  # describe_model says what is wrong with it
    return isinstance(index, dict) and edit_family_of_pipeline(str(index.get("_class_name", ""))) is not None


def _family(index: dict, folder: Path, source: str, edits: bool) -> Family:
    """The family of a render model, or of an edit model where ``edits``; either is refused in the other's place."""
    class_name = str(index.get("_class_name", ""))
    if edits:
        family = edit_family_of_pipeline(class_name)
        if family is None:
            raise ModelError(
                source,
                "edit model",
                "{folder}: its pipeline '{class_name}' does not edit pictures by instruction"
                " (Qwen-Image-Edit does; see docs/models.md)",
                folder=folder,
                class_name=class_name,
            )
        return family
    family = family_of_pipeline(class_name)
    if family is None and edit_family_of_pipeline(class_name) is not None:
        raise ModelError(
            source,
            "model",
            "{folder} is an edit model ('{class_name}'): it retouches pictures by instruction"
            " (`visuels retouch --mode instruct --edit-model`), it does not render from text",
            folder=folder,
            class_name=class_name,
        )
    if family is None:
        raise ModelError(
            source,
            "model",
            "{folder}: its pipeline '{class_name}' is not one visuels renders with (see docs/models.md)",
            folder=folder,
            class_name=class_name,
        )
    return family


def family_of(ref: ModelRef) -> str | None:
    """The family a model's ``model_index.json`` names, without hashing or building anything; None
    where its files cannot be read here (a folder of another machine, a hub id not downloaded)."""
    if isinstance(ref, DemoModelRef):
        return DEMO_FAMILY
    if isinstance(ref, HubRef):  # the local cache only: nothing is fetched to learn a family
        from huggingface_hub import try_to_load_from_cache

        index = try_to_load_from_cache(ref.id, "model_index.json", revision=ref.revision)
        folder = Path(index).parent if isinstance(index, str) else None
    else:
        folder = model_folder(ref)
    try:
        return None if folder is None else _family(_index(folder, "model"), folder, "model", edits=False).name
    except ModelError:
        return None


def _vae_factor(vae: dict) -> int:
    """How many pixels one latent cell covers, from the VAE's config."""
    if "temperal_downsample" in vae:  # Qwen-Image's causal video VAE
        return 2 ** len(vae["temperal_downsample"])
    return 2 ** (len(vae["block_out_channels"]) - 1)


@dataclass(frozen=True)
class _Sizes:
    native: int
    multiple: int
    longest: int | None


def _sizes(family: Family, folder: Path, source: str, native_size: int | None) -> _Sizes:
    """Native pixel size, the size multiple and the longest side, from the configs (UNet and VAE,
    or the family's size and the VAE); ``native_size``, where the reference gives one, replaces the
    family's."""
    vae_scale = _vae_factor(_read_config(folder, "vae", source))
    if family.denoiser == "unet":
        unet = _read_config(folder, "unet", source)
        unet_scale = 2 ** (len(unet["block_out_channels"]) - 1)
        sample_size = unet["sample_size"]
        if isinstance(sample_size, list):
            sample_size = min(sample_size)
        return _Sizes(native_size or int(sample_size) * vae_scale, vae_scale * unet_scale, None)
    assert family.native_size is not None
    multiple = vae_scale * 2  # the transformers read the latent in 2x2 patches
    has_config = (folder / "transformer" / "config.json").is_file()  # a single file's folder may leave it to diffusers
    longest = _longest_side(_read_config(folder, "transformer", source), vae_scale) if has_config else None
    if native_size:
        return _Sizes(native_size, multiple, longest)
    # The family's size is in pixels of its published VAE: a folder with another VAE (a test model
    # with fewer blocks) keeps the same latent grid, so the same count of tokens to attend over.
    native = family.native_size * vae_scale // PUBLISHED_VAE_FACTOR
    if longest is not None:
        native = min(native, longest)
    return _Sizes(max(multiple, native - native % multiple), multiple, longest)


def _longest_side(transformer: dict, vae_scale: int) -> int | None:
    """The longest side a transformer's position tables reach, in pixels: Z-Image's RoPE tables
    (``axes_lens``) hold a fixed count of patch rows and columns; the other families compute theirs."""
    lengths, patches = transformer.get("axes_lens"), transformer.get("all_patch_size")
    if not lengths or not patches or len(lengths) < 3:
        return None
    return int(min(lengths[1:3])) * int(patches[0]) * vae_scale


def _has_safety_checker(folder: Path) -> bool:
    """Whether the model runs its own safety checker on each picture (hub models may; ours are
    loaded without). Its verdict is recorded in the model's description, which every exported
    picture's C2PA manifest carries: a picture it flags is refused, never exported."""
    try:
        index = read_json(folder / "model_index.json")
    except (OSError, ValueError):
        return False
    checker = index.get("safety_checker")
    return isinstance(checker, list) and checker[0] is not None


def hub_snapshot(ref: HubRef, source: str) -> Path:
    """The local snapshot of a hub model at ``ref.revision``, fetched only where the network is allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(ref.id, revision=ref.revision, local_files_only=offline))
    except LocalEntryNotFoundError:
        raise ModelError(
            source,
            "model.id",
            "{id}@{revision} is not in the local hub cache (HF_HUB_OFFLINE=1)",
            id=ref.id,
            revision=ref.revision,
        ) from None
    except Exception as exc:  # the hub client raises many kinds: unknown repo, no network, bad revision
        raise ModelError(
            source, "model.id", "cannot fetch {id}@{revision}: {exc}", id=ref.id, revision=ref.revision, exc=str(exc)
        ) from None


def _named_components(folder: Path) -> list[Path]:
    """The component folders ``model_index.json`` names with a class (``[library, class]``)."""
    index = read_json(folder / "model_index.json")
    return sorted(folder / name for name, value in index.items() if isinstance(value, list) and None not in value)


def model_components(folder: Path) -> list[Path]:
    """The component folders of a diffusers model that hold a model (``unet/``, ``vae/``,
    ``text_encoder/``…): the ones ``model_index.json`` names that have a ``config.json`` or weights."""
    return [path for path in _named_components(folder) if _holds_model(path)]


def _holds_model(folder: Path) -> bool:
    if (folder / "config.json").is_file():
        return True
    return folder.is_dir() and any(path.suffix in WEIGHT_SUFFIXES for path in folder.iterdir())


def _check_weights(folder: Path, source: str, skip: str | None = None) -> None:
    """Refuse now, in one line, a folder whose weights would fail to load in a render worker: a
    component with weights but no config, nothing loadable, a safetensors file cut short, a shard missing."""
    named = _named_components(folder)  # model_index.json read once
    # A folder's safety checker is never loaded (host.load_from_files drops it): its index may name
    # one its copy left out. (A hub model's is loaded: its loader says when it is missing.)
    missing = next((path for path in named if path.name != "safety_checker" and not path.is_dir()), None)
    if missing is not None:
        raise ModelError(source, "model", "{path} not found: its model_index.json names it", path=missing)
    components = [path for path in named if path.name != skip and _holds_model(path)]
    for path in components:
        if not (path / "config.json").is_file():
            raise ModelError(
                source, "model", "{path} not found: not a diffusers model folder", path=path / "config.json"
            )
    if problem := weights_problem(components):
        raise ModelError(source, "model.path", problem)


def _check_single_file(checkpoint: Path, family: Family, source: str) -> None:
    """Refuse a single file that cannot be the model its config folder describes: a UNet
    family's checkpoint lacking a part it is read from, or a UNet's weights given for a transformer."""
    if checkpoint.suffix != ".safetensors":
        return  # a trusted pickle (VISUELS_ALLOW_PICKLE): not read before loading
    with safe_open(str(checkpoint), "pt") as weights:
        names = list(weights.keys())
    for part, prefix in family.single_file_parts:
        if not any(name.startswith(prefix) for name in names):
            raise ModelError(
                source,
                "model.path",
                "{checkpoint} is not a whole {label} checkpoint: it holds no {part} ({prefix}… weights);"
                " give a diffusers folder, or the checkpoint with every part",
                checkpoint=checkpoint.name,
                label=family.label,
                part=part,
                prefix=prefix,
            )
    if family.denoiser == "transformer" and any(name.startswith(UNET_WEIGHTS) for name in names):
        raise ModelError(
            source,
            "model.path",
            "{checkpoint} holds a UNet's weights, not a {label} transformer's",
            checkpoint=checkpoint.name,
            label=family.label,
        )


def _folder_hash(
    folder: Path, hash_cache: Path, skip_weights: bool = False, skip_weights_of: str | None = None
) -> dict[str, str]:
    """sha256 per file of a model folder: weights (remembered by size and time) and every config,
    tokenizer and scheduler file, since those shape the pictures as much as the weights do; never
    what hidden folders hold (a clone's .git/, a download's .cache/), which change without the model.
    ``skip_weights``: no weights at all; ``skip_weights_of``: none of that component's."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in name.split("/")):
            continue  # .git/ (a cloned repository's LFS copies of the weights), .cache/ of a download
        is_weights = path.suffix in WEIGHT_SUFFIXES
        if is_weights and (skip_weights or (skip_weights_of and name.startswith(f"{skip_weights_of}/"))):
            continue
        hashes[name] = cached_sha256_file(path, hash_cache) if is_weights else sha256_file(path)
    return hashes


def describe_named_model(ref: ModelRef, option: str, edits: bool = False) -> ModelInfo:
    """:func:`describe_model` for a model named on the command line (``--model``, ``--deep``,
    ``--edit-model``): what is wrong with it is said of that option, not of a file's field."""
    try:
        return describe_model(ref, source=option, edits=edits)
    except ModelError as exc:
        raise ModelError(option, None, exc.text) from None


def _as_configured(folder: Path, source: str, edits: bool, native_size: int | None) -> tuple[Family, dict[str, Any]]:
    """The family a model's configs name, and what they say of the model: its native size, size
    multiple and longest side, its default steps and guidance."""
    index = _index(folder, source)
    family = _family(index, folder, source, edits)
    sizes = _sizes(family, folder, source, native_size)
    steps, guidance = own_defaults(family, index)
    shape = {"native_size": sizes.native, "size_multiple": sizes.multiple, "longest_side": sizes.longest}
    return family, {"family": family.name, **shape, "steps": steps, "guidance": guidance}


def _hub_model(ref: HubRef, source: str, edits: bool) -> ModelInfo:
    """A hub model, pinned to the commit of the snapshot on this machine."""
    snapshot = hub_snapshot(ref, source)
    commit = snapshot.name  # the cache names each snapshot folder by its commit
    _, configured = _as_configured(snapshot, source, edits, ref.native_size)
    _check_weights(snapshot, source)
    return ModelInfo(
        hash=sha256_json({"hub": ref.id, "commit": commit}),
        description=f"hub:{ref.id}@{commit[:12]}" + (", safety-checked" if _has_safety_checker(snapshot) else ""),
        licence=card_licence(snapshot),
        ref=ref.model_copy(update={"revision": commit}),
        **configured,
    )


def _single_file_model(ref: SingleFileRef, source: str, edits: bool) -> ModelInfo:
    """A checkpoint file and the folder of its configs: the file the user named is checked first."""
    checkpoint = Path(ref.path)
    if not checkpoint.is_file():
        raise ModelError(source, "model.path", "checkpoint not found: {checkpoint}", checkpoint=checkpoint)
    if problem := weights_file_problem(checkpoint):
        raise ModelError(source, "model.path", problem)
    folder = model_folder(ref)
    assert folder is not None
    family, configured = _as_configured(folder, source, edits, ref.native_size)
    _check_single_file(checkpoint, family, source)
    hash_cache = cache_dir() / "file-hashes.json"
    if family.denoiser == "transformer":  # the file holds the transformer; the folder, the rest
        _check_weights(folder, source, skip="transformer")
        configs = _folder_hash(folder, hash_cache, skip_weights_of="transformer")
    else:
        configs = _folder_hash(folder, hash_cache, skip_weights=True)  # from_single_file reads only these
    files = {"checkpoint": cached_sha256_file(checkpoint, hash_cache), "config": sha256_json(configs)}
    licence = checkpoint_licence(checkpoint)
    return ModelInfo(
        hash=sha256_json(files),
        description=checkpoint.name,
        licence=licence if licence.id else card_licence(folder),
        ref=ref,
        **configured,
    )


def describe_model(ref: ModelRef, source: str = "model", edits: bool = False) -> ModelInfo:
    """Hash, family, native size and licence of a model from its files only (nothing is loaded),
    and the reference to load: a hub id is pinned to the commit its revision points at now, so the
    pictures and the key always come from the same weights. ``edits``: an edit model is wanted
    (retouching by instruction), and a text-to-image one refused, instead of the other way."""
    if isinstance(ref, HubRef):
        return _hub_model(ref, source, edits)
    if isinstance(ref, SingleFileRef):
        return _single_file_model(ref, source, edits)
    folder = model_folder(ref)
    assert folder is not None
    _, configured = _as_configured(folder, source, edits, getattr(ref, "native_size", None))
    files = _folder_hash(folder, cache_dir() / "file-hashes.json")
    if not any(Path(name).suffix in WEIGHT_SUFFIXES for name in files):
        raise ModelError(source, "model.path", "no weight files in {folder}", folder=folder)
    _check_weights(folder, source)
    if isinstance(ref, DemoModelRef):
        description, licence = str(DEMO_DESCRIPTION), DEMO_LICENCE
    else:
        description, licence = folder.name, card_licence(folder)
    return ModelInfo(hash=sha256_json(files), description=description, licence=licence, ref=ref, **configured)
