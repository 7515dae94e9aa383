"""What a render run is asked to do: the campaign, a selection of it, and overrides.

These models are the render flow's parameters, so Prefect turns them into the run form:
fields with descriptions, dropdowns for formats and for the campaigns and audiences found in
``campaigns/`` when the flow is deployed. A campaign file outside that folder is still
accepted from the CLI; the UI offers the known ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines.devices import DeviceName, DtypeName
from pipelines.formats import FORMAT_PRESETS

CAMPAIGNS_DIR = Path(__file__).resolve().parents[1] / "campaigns"

FormatName = Literal[tuple(FORMAT_PRESETS)]  # type: ignore[valid-type]


def _known_campaigns() -> list[str]:
    return [f"campaigns/{path.name}" for path in sorted(CAMPAIGNS_DIR.glob("*.yaml"))]


def _known_audiences() -> list[str]:
    names: set[str] = set()
    for path in sorted(CAMPAIGNS_DIR.glob("*.yaml")):
        try:
            names.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("audiences", {}))
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # a broken campaign is reported when it is used, not here
    return sorted(names)


def _dropdown(values: list[str]) -> dict:
    # An "enum" in the JSON schema only: the UI shows a dropdown, Python still takes any string.
    return {"enum": values} if values else {}


CampaignPath = Annotated[
    str,
    Field(
        min_length=1,
        description="The campaign YAML file (relative to the project folder, or absolute).",
        json_schema_extra=_dropdown(_known_campaigns()),
    ),
]
AudienceChoice = Annotated[str, Field(json_schema_extra=_dropdown(_known_audiences()))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selection(_Strict):
    """Which of the campaign's jobs to render; empty lists mean all of them."""

    communes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Only these communes: official names or INSEE codes. Empty: all."
    )
    max_communes: int | None = Field(default=None, ge=1, le=100_000, description="Only the first N communes.")
    audiences: list[AudienceChoice] = Field(default_factory=list, description="Only these audiences. Empty: all.")
    formats: list[FormatName] = Field(default_factory=list, description="Only these formats. Empty: all.")


class Overrides(_Strict):
    """Generation settings that replace the campaign's for this run (they change the pictures)."""

    model: str | None = Field(
        default=None, description="demo, a diffusers folder, FILE.safetensors::CONFIG_DIR or hub:ID."
    )
    steps: int | None = Field(default=None, ge=1, le=150, description="Denoising steps.")
    seed: int | None = Field(default=None, ge=0, lt=2**32, description="Base seed of the campaign's seed policy.")
    lora_scale: float | None = Field(default=None, ge=0.0, le=2.0, description="Strength of the campaign's LoRA.")


class RenderRequest(_Strict):
    """Everything the CLI hands to the render flow."""

    campaign: str
    selection: Selection = Selection()
    overrides: Overrides = Overrides()
    output_dir: str = "outputs"
    batch_size: int = Field(default=0, ge=0, le=64)
    device: DeviceName = "auto"
    dtype: DtypeName = "auto"
    cpu_workers: int = Field(default=0, ge=0, le=256)
    compile: bool = False
