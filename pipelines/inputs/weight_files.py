"""Weight files from outside (a model's, a LoRA's, a ControlNet's), looked at before anything loads
them: safetensors only unless the deployment trusts pickles, and each safetensors file whole (its
header reads, its tensors lie inside it), so a bad copy is one line at planning, not a failure in
a render worker halfway through a run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError, safe_open
from visuels._internal.json_text import read_json
from visuels.config import settings
from visuels.errors import Text, first_line
from visuels.inputs.file_names import is_hidden
from visuels.inputs.model_refs import WEIGHT_SUFFIXES

PICKLE_VARIABLE = "VISUELS_ALLOW_PICKLE"
# How diffusers and transformers name a component's weights, whole or in shards, plain or as a
# variant: diffusion_pytorch_model.safetensors, model.fp16.safetensors,
# diffusion_pytorch_model.fp16-00001-of-00002.safetensors.
_WEIGHTS_NAME = re.compile(r"^(?:diffusion_pytorch_model|model)(?:\.(?P<variant>\w+?))?(?:-\d+-of-\d+)?\.safetensors$")


def pickle_allowed() -> bool:
    """Whether this deployment loads pickle weights (.bin, .ckpt, .pt), which can run code when
    loaded: only with ``VISUELS_ALLOW_PICKLE=1``, for files from a source it trusts."""
    return settings().allow_pickle


def pickle_refused(what: str | Path) -> Text:
    return Text(
        "{what} holds pickle weights, which can run code when loaded: convert them to .safetensors, "
        "or set {PICKLE_VARIABLE}=1 if you trust their source",
        what=str(what),
        PICKLE_VARIABLE=PICKLE_VARIABLE,
    )


def safetensors_problem(path: Path) -> Text | None:
    """What is wrong with a safetensors file (cut short, not safetensors at all), or None. Reads
    its header only: the tensors are mapped, not read."""
    try:
        with safe_open(str(path), "pt"):
            return None
    except (SafetensorError, OSError) as exc:
        return Text(
            "{path} is not a whole safetensors file ({reason}): copy it again", path=str(path), reason=first_line(exc)
        )


def weights_file_problem(path: Path) -> Text | None:
    """What stops a single weights file (a LoRA, a checkpoint) from being loaded, or None."""
    if path.is_dir():
        return Text("{path} is a folder, not a weights file", path=str(path))
    if path.suffix != ".safetensors":
        return None if pickle_allowed() else pickle_refused(path.name)
    return safetensors_problem(path)


def lora_file_problem(path: Path) -> Text | None:
    """What stops a LoRA file from being loaded, or None; a LoRA being small, each of its values
    is read too: one that is not a number (a training run that diverged) draws black pictures."""
    if (problem := weights_file_problem(path)) or path.suffix != ".safetensors":
        return problem
    with safe_open(str(path), "pt") as weights:
        for name in weights.keys():  # noqa: SIM118 (a safetensors file is no dict: keys() is its listing)
            if not weights.get_tensor(name).isfinite().all():
                return Text(
                    "{path} holds values that are not numbers (NaN) in {tensor}: they draw black pictures;"
                    " a training run that diverged exports such weights: train it again",
                    path=str(path),
                    tensor=name,
                )
    return None


@dataclass
class ComponentWeights:
    """The weights one component folder of a diffusers model holds: plain, and which variants."""

    plain: bool = False
    pickle: bool = False
    variants: set[str] = field(default_factory=set)

    @property
    def loadable(self) -> bool:
        return self.plain or (self.pickle and pickle_allowed())


def component_weights(folder: Path) -> ComponentWeights:
    """What ``folder`` (a component: ``unet/``, ``transformer/``…) holds as weights."""
    held = ComponentWeights()
    for path in folder.iterdir():
        if is_hidden(path.name):  # a Mac's ._model.safetensors beside the weights: no weights
            continue
        match = _WEIGHTS_NAME.match(path.name)
        if match and match["variant"]:
            held.variants.add(match["variant"])
        elif path.suffix == ".safetensors":
            held.plain = True
        elif path.suffix in WEIGHT_SUFFIXES:
            held.pickle = True
    return held


def weights_variant(components: Iterable[Path], half: bool = False) -> str | None:
    """The weights variant to load these component folders with: None for their plain files,
    ``fp16`` (``unet/diffusion_pytorch_model.fp16.safetensors``) where a component holds only
    those, or where ``half`` precision is wanted and every component has them (half the bytes to
    read). diffusers falls back to the plain files of a component without the variant."""
    held = {folder: component_weights(folder) for folder in components}
    if half and held and all("fp16" in weights.variants for weights in held.values()):
        return "fp16"
    shared = _shared_variants(_wanting(held))
    return ("fp16" if "fp16" in shared else min(shared)) if shared else None


def _wanting(held: dict[Path, ComponentWeights]) -> dict[Path, ComponentWeights]:
    """The components with no plain weights this deployment loads."""
    return {folder: weights for folder, weights in held.items() if not weights.loadable}


def _shared_variants(wanting: dict[Path, ComponentWeights]) -> set[str]:
    """The variants every component without plain weights holds (none when there is none such)."""
    return set.intersection(*(weights.variants for weights in wanting.values())) if wanting else set()


def weights_problem(components: Iterable[Path]) -> Text | None:
    """What would stop these component folders' weights from loading, or None: a component with
    nothing loadable (pickles only, where they are not trusted), components that hold only
    different variants, a safetensors file cut short, a shard its index names that is missing."""
    folders = list(components)
    wanting = _wanting({folder: component_weights(folder) for folder in folders})
    if wanting and not _shared_variants(wanting):
        folder, weights = next(iter(wanting.items()))
        if weights.pickle and not weights.variants:
            return pickle_refused(folder)
        return Text("{path} holds no safetensors weights to load", path=str(folder))
    for folder in folders:
        for path in sorted(path for path in folder.glob("*.safetensors") if not is_hidden(path.name)):
            if problem := safetensors_problem(path):
                return problem
        for index in sorted(path for path in folder.glob("*.safetensors.index*.json") if not is_hidden(path.name)):
            if missing := _missing_shard(index):
                return Text("{path} is missing: its index {index} names it", path=str(missing), index=str(index))
    return None


def _missing_shard(index: Path) -> Path | None:
    try:
        weight_map = read_json(index).get("weight_map", {})
    except (OSError, ValueError, AttributeError):
        return None  # the loader says what is wrong with an index it cannot read
    for name in sorted(set(weight_map.values()) if isinstance(weight_map, dict) else ()):
        if not (index.parent / str(name)).is_file():
            return index.parent / str(name)
    return None
