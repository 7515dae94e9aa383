"""Which model renders a campaign, as a campaign or ``--model`` names it.

One of: the built-in demo model, a local diffusers folder, a single-file ``.safetensors``
checkpoint (with a local diffusers config folder, so nothing is fetched), or a hub id (the only
reference that may use the network); and a LoRA file with its scale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from visuels._internal.strict import StrictModel
from visuels.errors import InvalidValueError, ModelError
from visuels.inputs.file_names import PathText
from visuels.inputs.slugs import name_key
from visuels.inputs.yamlfiles import first_problem

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")


class DemoModelRef(StrictModel):
    """The built-in tiny model with random weights (abstract pictures)."""

    kind: Literal["demo"] = "demo"


NativeSize = Annotated[
    int | None,
    Field(
        default=None,
        ge=64,
        le=4096,
        description="The pixel size it was trained at, where its configs do not say (the 2026 families:"
        " their family's, e.g. 1024); none: from its configs or its family.",
    ),
]


class DiffusersFolderRef(StrictModel):
    """A local folder in diffusers format (model_index.json and component folders)."""

    kind: Literal["diffusers"] = "diffusers"
    path: PathText
    native_size: NativeSize = None


class SingleFileRef(StrictModel):
    """A single .safetensors checkpoint; ``config`` is a local diffusers folder of configs."""

    kind: Literal["single_file"] = "single_file"
    path: PathText
    config: PathText = Field(description="Local diffusers folder with configs and tokenizer (weights not needed).")
    native_size: NativeSize = None


def _hub_id(value: str) -> str:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        raise InvalidValueError("'{value}' is not a hub model: write OWNER/NAME", value=value)
    return value


class HubRef(StrictModel):
    """A Hugging Face hub id: needs the network or a filled local hub cache.

    Planning pins ``revision`` (a branch such as ``main`` moves) to the commit it names then.
    """

    kind: Literal["hub"] = "hub"
    id: Annotated[str, AfterValidator(_hub_id)]
    revision: str = "main"
    native_size: NativeSize = None


_MODEL_REFS = (DemoModelRef, DiffusersFolderRef, SingleFileRef, HubRef)
ModelRef = Annotated[DemoModelRef | DiffusersFolderRef | SingleFileRef | HubRef, Field(discriminator="kind")]
MODEL_KINDS = tuple(ref.model_fields["kind"].default for ref in _MODEL_REFS)


class LoraWeights(BaseModel):
    """A LoRA file (diffusers or kohya format) and the scale to apply it at; ``speed``: a few-step
    LoRA applied with it (the campaign's ``speed_lora`` beside its style LoRA)."""

    model_config = ConfigDict(frozen=True)

    path: str
    scale: float
    speed: LoraWeights | None = None

    def applied(self) -> list[LoraWeights]:
        """Each LoRA to apply, this one first."""
        return [self.model_copy(update={"speed": None}), *([self.speed] if self.speed else [])]


def local_path(base: Path, value: str) -> Path:
    """A path as a user writes it (``~/models/x``, relative to ``base``, or absolute), absolute."""
    return (base / Path(value).expanduser()).resolve()


def resolve_paths(ref: ModelRef, base: Path) -> ModelRef:
    """Make a reference's relative paths relative to ``base`` (the campaign's folder)."""
    if isinstance(ref, DiffusersFolderRef):
        return ref.model_copy(update={"path": str(local_path(base, ref.path))})
    if isinstance(ref, SingleFileRef):
        paths = {"path": str(local_path(base, ref.path)), "config": str(local_path(base, ref.config))}
        return ref.model_copy(update=paths)
    return ref


def parse_model_option(value: str, option: str = "--model") -> ModelRef:
    """Turn a ``--model`` (or ``option``) command-line value into a reference (``model_in_one_line``),
    its paths relative to the working folder."""
    try:
        return _model_ref(value, option)
    except ValidationError as exc:  # `hub:` without a name, a path no file system can have
        raise ModelError(option, None, first_problem(exc)[1]) from None


def _model_ref(value: str, option: str) -> ModelRef:
    try:
        fields = model_in_one_line(value)
    except InvalidValueError as exc:
        raise ModelError(option, None, exc.text) from None
    return resolve_paths(TypeAdapter(ModelRef).validate_python(fields), Path.cwd())


def model_in_one_line(value: str) -> dict[str, str]:
    """A model written in one line, as ``--model`` and a campaign's ``model:`` take it, as the
    fields of its reference (paths as written): ``demo``; ``hub:OWNER/NAME``; a folder (diffusers
    format); or ``FILE.safetensors``, whose config folder is given as ``FILE.safetensors::CONFIG_FOLDER``."""
    if value == "demo":
        return {"kind": "demo"}
    if value.startswith("hub:"):
        return {"kind": "hub", "id": value.removeprefix("hub:")}
    path, _, config = value.partition("::")
    if Path(path).suffix in WEIGHT_SUFFIXES:
        if not config:
            raise InvalidValueError("a single-file checkpoint needs its config folder: FILE.safetensors::CONFIG_DIR")
        return {"kind": "single_file", "path": path, "config": config}
    return {"kind": "diffusers", "path": path}


def kind_as_written(fields: dict) -> dict:
    """A model's fields as a designer may write them: its kind in any case (``Diffusers``,
    ``single-file``), or left out where the other fields say it (an ``id``: the hub; a ``config``
    or a weights file: a single file; a ``path`` alone: a diffusers folder)."""
    if "kind" in fields:
        kind = fields["kind"]
        known = isinstance(kind, str) and name_key(kind) in MODEL_KINDS
        return fields | {"kind": name_key(kind)} if known else fields  # else said as written
    path = fields.get("path")
    if "id" in fields:
        return {"kind": "hub"} | fields
    if "config" in fields or (isinstance(path, str) and Path(path).suffix in WEIGHT_SUFFIXES):
        return {"kind": "single_file"} | fields
    return {"kind": "diffusers"} | fields if "path" in fields else fields
