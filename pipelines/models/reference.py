"""What must be known about a model before loading it: its hash, native size and description,
from its files alone (the reference a campaign names is ``visuels.inputs.model_refs``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from visuels._internal.hashing import cached_sha256_file, sha256_file, sha256_json
from visuels.config import cache_dir, demo_model_dir, settings
from visuels.errors import ModelError
from visuels.inputs.model_refs import (
    WEIGHT_SUFFIXES,
    DemoModelRef,
    DiffusersFolderRef,
    HubRef,
    ModelRef,
    SingleFileRef,
)

PICKLE_VARIABLE = "VISUELS_ALLOW_PICKLE"


def pickle_allowed() -> bool:
    """Whether this deployment loads pickle weights (.bin, .ckpt, .pt), which can run code when
    loaded: only with ``VISUELS_ALLOW_PICKLE=1``, for files from a source it trusts."""
    return settings().allow_pickle


def _refuse_pickle(source: str, what: str) -> ModelError:
    return ModelError(
        source,
        "model.path",
        "{what} holds pickle weights, which can run code when loaded: convert them to .safetensors, "
        "or set {PICKLE_VARIABLE}=1 if you trust their source",
        what=what,
        PICKLE_VARIABLE=PICKLE_VARIABLE,
    )


class ModelInfo(BaseModel):
    """What job expansion needs to know about a model without loading its weights."""

    model_config = ConfigDict(frozen=True)

    hash: str
    native_size: int
    size_multiple: int = Field(description="Width and height must be multiples of this.")
    description: str
    ref: ModelRef = Field(description="What to load: the reference, a hub id pinned to a commit.")


def model_folder(ref: ModelRef) -> Path | None:
    """The local diffusers folder holding the model's configs, if there is one."""
    if isinstance(ref, DemoModelRef):
        if (demo_model_dir() / "model_index.json").is_file():
            return demo_model_dir()
        # Imported here: building the demo model needs the model libraries, reading it does not.
        from visuels.models.demo import ensure_demo_model

        return ensure_demo_model()
    if isinstance(ref, DiffusersFolderRef):
        return Path(ref.path)
    if isinstance(ref, SingleFileRef):
        return Path(ref.config)
    return None


def _read_config(folder: Path, component: str, source: str) -> dict:
    path = folder / component / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(source, "model", "{path} not found: not a diffusers model folder", path=path) from None
    except ValueError as exc:
        raise ModelError(source, "model", "{path} is not valid JSON ({exc})", path=path, exc=str(exc)) from None


def _sizes_from_folder(folder: Path, source: str) -> tuple[int, int]:
    """Native pixel size and the size multiple, from the UNet and VAE configs."""
    if not folder.exists():
        raise ModelError(source, "model", "{folder} not found", folder=folder)
    if not folder.is_dir():
        raise ModelError(source, "model", "{folder} is a file, not a diffusers model folder", folder=folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            source, "model", "{folder} has no model_index.json: not a diffusers model folder", folder=folder
        )
    unet = _read_config(folder, "unet", source)
    vae = _read_config(folder, "vae", source)
    vae_scale = 2 ** (len(vae["block_out_channels"]) - 1)
    unet_scale = 2 ** (len(unet["block_out_channels"]) - 1)
    sample_size = unet["sample_size"]
    if isinstance(sample_size, list):
        sample_size = min(sample_size)
    return int(sample_size) * vae_scale, vae_scale * unet_scale


def _has_safety_checker(folder: Path) -> bool:
    """Whether the model runs its own safety checker on each picture (hub models may; ours are
    loaded without). Its verdict is recorded in the model's description, which every exported
    picture's C2PA manifest carries: a picture it flags is refused, never exported."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    checker = index.get("safety_checker")
    return isinstance(checker, list) and checker[0] is not None


def _hub_snapshot(ref: HubRef, source: str) -> Path:
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


def _folder_hash(folder: Path, hash_cache: Path, skip_weights: bool = False) -> dict[str, str]:
    """sha256 per file of a model folder: weights (remembered by size and time) and every config,
    tokenizer and scheduler file, since those shape the pictures as much as the weights do."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        is_weights = path.suffix in WEIGHT_SUFFIXES
        if is_weights and skip_weights:
            continue
        hashes[path.relative_to(folder).as_posix()] = (
            cached_sha256_file(path, hash_cache) if is_weights else sha256_file(path)
        )
    return hashes


def describe_model(ref: ModelRef, source: str = "model") -> ModelInfo:
    """Hash and native size of a model from its files only (nothing is loaded), and the reference
    to load: a hub id is pinned to the commit its revision points at now, so the pictures and the
    key always come from the same weights."""
    hash_cache = cache_dir() / "file-hashes.json"
    if isinstance(ref, HubRef):
        snapshot = _hub_snapshot(ref, source)
        commit = snapshot.name  # the cache names each snapshot folder by its commit
        native_size, multiple = _sizes_from_folder(snapshot, source)
        return ModelInfo(
            hash=sha256_json({"hub": ref.id, "commit": commit}),
            native_size=native_size,
            size_multiple=multiple,
            description=f"hub:{ref.id}@{commit[:12]}" + (", safety-checked" if _has_safety_checker(snapshot) else ""),
            ref=ref.model_copy(update={"revision": commit}),
        )
    if isinstance(ref, SingleFileRef):  # the file the user named first, then its configs
        checkpoint = Path(ref.path)
        if not checkpoint.is_file():
            raise ModelError(source, "model.path", "checkpoint not found: {checkpoint}", checkpoint=checkpoint)
        if checkpoint.suffix != ".safetensors" and not pickle_allowed():
            raise _refuse_pickle(source, checkpoint.name)
    folder = model_folder(ref)
    assert folder is not None
    native_size, multiple = _sizes_from_folder(folder, source)
    if isinstance(ref, SingleFileRef):
        configs = _folder_hash(folder, hash_cache, skip_weights=True)  # from_single_file reads only these
        files = {"checkpoint": cached_sha256_file(checkpoint, hash_cache), "config": sha256_json(configs)}
        return ModelInfo(
            hash=sha256_json(files),
            native_size=native_size,
            size_multiple=multiple,
            description=checkpoint.name,
            ref=ref,
        )
    files = _folder_hash(folder, hash_cache)
    if not any(Path(name).suffix in WEIGHT_SUFFIXES for name in files):
        raise ModelError(source, "model.path", "no weight files in {folder}", folder=folder)
    if not any(name.endswith(".safetensors") for name in files) and not pickle_allowed():
        raise _refuse_pickle(source, str(folder))
    description = "demo model (random weights)" if isinstance(ref, DemoModelRef) else folder.name
    return ModelInfo(
        hash=sha256_json(files), native_size=native_size, size_multiple=multiple, description=description, ref=ref
    )
