"""What a render run is asked to do: the campaign, a selection of it, and overrides.

These models are the render flow's parameters, so Prefect turns them into the run form:
fields with descriptions, and dropdowns for formats; ``make serve`` adds dropdowns of the
campaigns and audiences found in ``campaigns/`` when it deploys the flows (``known_campaigns``),
never when this module is imported. A campaign file outside that folder is still accepted from the CLI; the UI
offers the known ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from visuels._internal.schema import blank_when_unset
from visuels._internal.strict import StrictModel
from visuels.config import campaigns_dir
from visuels.errors import CampaignError
from visuels.inputs.file_names import PathText, files_in
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.inputs.slugs import name_key
from visuels.inputs.yamlfiles import read_yaml_mapping
from visuels.models.devices import DeviceName, DtypeName


def _name_as_written(value: object) -> object:
    """`--formats Web-Banner` as the campaign file accepts it: the format web_banner."""
    return name_key(value) if isinstance(value, str) else value


FormatName = Annotated[Literal[tuple(FORMAT_PRESETS)], BeforeValidator(_name_as_written)]  # type: ignore[valid-type]


def _lower_case(value: object) -> object:
    """`--audiences Residents`: audience names are lower case (their dashes stay: names may hold them)."""
    return value.strip().lower() if isinstance(value, str) else value


AudienceChoice = Annotated[str, BeforeValidator(_lower_case)]


CAMPAIGN_SUFFIXES = (".yaml", ".yml")


def campaign_files(folder: Path | None = None) -> list[Path]:
    """The campaign files of a campaigns/ folder (by default the project's), by name: ``.yaml`` and
    ``.yml`` alike (a campaign saved as ``.yml`` was checked, then never rendered by the nightly);
    never a hidden file (``._ete.yaml``, what a Mac leaves on a shared drive, failed every night)."""
    return files_in(folder or campaigns_dir(), CAMPAIGN_SUFFIXES)


def known_campaigns(folder: Path | None = None) -> list[str]:
    """The campaigns of a campaigns/ folder (by default the project's), as the run form offers
    them."""
    return [f"campaigns/{path.name}" for path in campaign_files(folder)]


def known_audiences(folder: Path | None = None) -> list[str]:
    """Every audience of those campaigns, as the run form offers them."""
    return _every("audiences", folder)


def known_formats(folder: Path | None = None) -> list[str]:
    """Every format those campaigns use, in the presets' order: the run form offers no other.
    Named as a campaign may write them (`Web-Banner` is web_banner, as the campaign reads it)."""
    used = {name_key(name) for name in _every("formats", folder)}
    return [name for name in FORMAT_PRESETS if name in used]


_AS_THE_CAMPAIGN_READS_IT = TypeAdapter(bool)


def campaigns_waiting_for_review(folder: Path | None = None) -> list[str]:
    """The campaigns of the folder whose runs wait for review (``review: true``), as the run form says."""
    waiting = []
    for path in campaign_files(folder):
        try:
            review = read_yaml_mapping(path, CampaignError).get("review", False)
            # Read as the campaign reads it: `review: "yes"` or `review: 1` waits too.
            if _AS_THE_CAMPAIGN_READS_IT.validate_python(review):
                waiting.append(f"campaigns/{path.name}")
        except (CampaignError, ValidationError):
            continue  # a broken campaign is reported when it is used, not here
    return waiting


def _every(key: str, folder: Path | None) -> list[str]:
    """The names under ``key`` (a mapping's keys, or a list) in every campaign of the folder."""
    names: set[str] = set()
    for path in campaign_files(folder):
        try:
            given = read_yaml_mapping(path, CampaignError).get(key)
        except CampaignError:
            continue  # a broken campaign is reported when it is used, not here
        if isinstance(given, list | dict):  # a name written alone, or a number, is that campaign's error
            names.update(name for name in given if isinstance(name, str))
    return sorted(names)


CampaignPath = Annotated[
    str,
    Field(
        min_length=1,
        description="The campaign YAML file (relative to the project folder, or absolute).",
        json_schema_extra={"title": "Campaign"},
    ),
]


class Selection(StrictModel):
    """Which of the campaign's pictures to render; empty means all of them."""

    communes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        title="Communes",
        description="Official names or INSEE codes, e.g. Sète or 34301. Empty: every commune of the campaign.",
    )
    max_communes: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        title="At most this many communes",
        description="The first N of those selected, 1 to 100,000. Empty: no limit.",
        json_schema_extra=blank_when_unset,
    )
    audiences: list[AudienceChoice] = Field(
        default_factory=list, title="Audiences", description="Empty: every audience of the campaign."
    )
    formats: list[FormatName] = Field(
        default_factory=list, title="Formats", description="Empty: every format of the campaign."
    )


class Overrides(StrictModel):
    """Generation settings that replace the campaign's for this run (they change the pictures)."""

    model: str | None = Field(
        default=None,
        title="Model",
        description="demo, a diffusers folder, FILE.safetensors::CONFIG_DIR or hub:ID; of another family than the"
        " campaign's model, its own steps, guidance and scheduler. Empty: the campaign's.",
        json_schema_extra=blank_when_unset,
    )
    steps: int | None = Field(
        default=None,
        ge=1,
        le=150,
        title="Steps",
        description="Denoising steps, 1 to 150: more is slower and finer. Empty: the campaign's.",
        json_schema_extra=blank_when_unset,
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**32,
        title="Seed",
        description="Base seed, 0 to 4,294,967,295: another seed, other pictures. Empty: the campaign's.",
        json_schema_extra=blank_when_unset,
    )
    lora_scale: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        title="Charter style strength",
        description="Scale of the campaign's LoRA, 0 to 2 (0: no charter style). Empty: the campaign's.",
        json_schema_extra=blank_when_unset,
    )


class RenderSettings(BaseModel):
    """How to run the model: these never change which pictures are wanted, except ``dtype``,
    which is part of every job's key as chosen (half precisions change pictures visibly)."""

    model_config = ConfigDict(frozen=True)

    device: DeviceName = Field(
        default="auto", title="Device", description="auto: a CUDA GPU, else Apple MPS, else the CPU."
    )
    dtype: DtypeName = Field(
        default="auto",
        title="Precision",
        description="auto: each machine's best (bfloat16 on CUDA, float16 on MPS, float32 on a CPU); a fixed"
        " one gives the same pictures to the bit on every machine; float8: the model's linear layers in FP8 on"
        " GPUs that have it (Ada, Hopper and newer), pictures slightly different, faster only for some models."
        " Part of every picture's key, as chosen.",
    )
    batch_size: int = Field(
        default=0, ge=0, le=64, title="Pictures per model call", description="0 to 64; 0: 16 on a GPU, else 4."
    )
    cpu_workers: int = Field(
        default=0,
        ge=0,
        le=256,
        title="CPU worker processes",
        description="Processes that finish pictures while the model draws, 0 to 256; 0: chosen for the device.",
    )
    compile: bool = Field(
        default=False,
        title="Compile the model",
        description="torch.compile, in this run's process: about a minute per picture size, then about 30 %"
        " faster on a GPU (render workers have their own setting).",
    )


class RunSettings(RenderSettings):
    """Where the files go and how this machine runs: the defaults suit most runs."""

    model_config = ConfigDict(extra="forbid")

    output_dir: PathText = Field(
        default="outputs",
        title="Output folder",
        description="Receives campaign/commune/format/ files; relative to the project folder.",
    )
    shard_size: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        title="Split above this many pictures",
        description="Sub-runs of about this many pictures, by commune, for every worker of the pool,"
        " 0 to 1,000,000; 0: never split (only from a deployment).",
    )


class RenderRequest(StrictModel):
    """Everything the CLI hands to the render flow: its parameters."""

    campaign: str
    selection: Selection = Selection()
    overrides: Overrides = Overrides()
    run: RunSettings = RunSettings()
