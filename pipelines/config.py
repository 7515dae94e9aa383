"""Every ``VISUELS_*`` setting, with its default and what it means: one object, ``Settings``.

``settings()`` reads the environment when called: a command reads it where it starts and passes
on what its parts need (the CPU workers get theirs in each picture's export target, never from
their own environment). ``docs/configuration.md`` is generated from this class
(``python -m visuels.config``), and a test fails when the two differ.

Relative folders (keys, lora) are relative to the current folder, as ``outputs/`` is; ``make
serve`` runs its workers in the project folder (``VISUELS_HOME``) and gives them absolute ones.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from visuels.errors import InvalidValueError, SettingsError, plain_message

DEMO_VERSION = 3  # bump when the demo model (visuels.models.demo) changes; 3: v-prediction
SAMPLE_CAMPAIGN_FILE = "ete-2027.yaml"
SAMPLE_TEMPLATE_CAMPAIGN_FILE = "ete-2027-bande.yaml"  # the same summer, in the charter's "bande" templates


class Settings(BaseSettings):
    """The deployment's settings, from ``VISUELS_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VISUELS_", frozen=True, extra="ignore")

    home: Path = Field(
        default_factory=Path.cwd,
        description="The project folder: its campaigns/ (the run form's and the nightly's), keys/, lora/"
        " and outputs/. Default: the current folder (`make serve` sets it for its workers).",
    )
    database_url: str = Field(
        default="",
        description="The database of record, as a SQLAlchemy URL (PostgreSQL for several machines)."
        " Default: visuels.sqlite in each output folder.",
    )
    keys_dir: Path = Field(
        default=Path("keys"),
        description="The C2PA signing chain (signer key 0600, chain, trust anchors); relative to the current folder.",
    )
    charter: Path | None = Field(
        default=None,
        description="The deployment's charter folder: what `verify`, `detect` and `detector serve` check pictures"
        " against and the studio shows the templates of, when no --charter is given; `finalize`, `layers`,"
        " `retouch` and the studio's edits take the charter each output was made with (the record names it),"
        " else this one. Default: the sample charter (the fictitious Région Solane).",
    )
    tsa_url: str = Field(
        default="",
        description="An RFC 3161 time-stamp authority for C2PA signatures (its http or https address). Default: none.",
    )
    watermark_key: str = Field(
        default="",
        description="Overrides the watermark key ring of the keys folder: a secret key, hexadecimal, at most"
        " 128 bits, or 'demo' for the public demo key (proves nothing). Default: the ring's newest key.",
    )
    lora_dir: Path = Field(
        default=Path("lora"),
        description="Where trained LoRAs are written (lora/<charter>/<run>/); relative to the current folder.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="The built demo model and the file-hash cache. Default: $XDG_CACHE_HOME/visuels,"
        " else ~/.cache/visuels.",
    )
    allow_pickle: bool = Field(
        default=False,
        description="Load pickle weights (.bin, .ckpt, .pt), which can run code when loaded: only for"
        " files from a source you trust. Default: refused.",
    )
    format_on_device: bool = Field(
        default=False,
        description="Crop, resample and grade each picture on the GPU that rendered it, before the CPU"
        " stage: less CPU work per picture; the same pictures but for a few pixels that the enlarging"
        " rounds a level apart (70-81 dB PSNR from the CPU's on the demo model). Without a GPU it only moves"
        " that work into the rendering process (no gain). Default: in the CPU stage.",
    )
    claim_lease_s: float = Field(
        default=40.0,
        ge=10,
        le=3600,
        description="Seconds a rendering machine's claims on its jobs outlive its last sign of life: a"
        " machine that died is noticed, and its jobs left to the others, this long after (plus up to 20 s).",
    )
    language: Literal["", "fr", "en"] = Field(
        default="",
        description="The language of the command line, the studio and the Prefect artifacts: fr or en."
        " Default: the locale's (LANG...), else English; the studio follows the browser, a run's report"
        " and artifacts the campaign's first language.",
    )
    studio_url: str = Field(
        default="http://127.0.0.1:7860",
        description="Where the studio is reached: the address Prefect artifacts link to.",
    )

    @field_validator("tsa_url")
    @classmethod
    def _tsa_is_a_web_address(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", value):
            raise InvalidValueError(
                "not a time-stamp authority's address: write it as http://… or https://…, e.g."
                " http://timestamp.digicert.com"
            )
        return value

    def cache_folder(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        xdg = os.environ.get("XDG_CACHE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".cache") / "visuels"


def settings() -> Settings:
    """The settings as the environment gives them now; a variable that is not valid raises
    :class:`SettingsError` naming it (bad input: the command says it in one line)."""
    try:
        return Settings()
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        refused = SettingsError(f"VISUELS_{str(errors[0]['loc'][0]).upper()}", None, plain_message(errors[0]))
        refused.language = _language_despite({str(error["loc"][0]) for error in errors})
        raise refused from None


def _language_despite(at_fault: set[str]) -> str:
    """The language setting, read with the variables ``at_fault`` left at their defaults: what the
    message about them is said in ("" where the language setting is one of them)."""
    if "language" in at_fault:
        return ""
    defaults = {name: Settings.model_fields[name].get_default(call_default_factory=True) for name in at_fault}
    return Settings(**defaults).language


def cache_dir() -> Path:
    return settings().cache_folder()


def demo_model_dir() -> Path:
    """Where the demo model is built once, in diffusers format."""
    return cache_dir() / f"demo-model-v{DEMO_VERSION}"


def project_dir() -> Path:
    """The project folder (``VISUELS_HOME``)."""
    return settings().home


def campaigns_dir() -> Path:
    """The project's campaigns, which the run form offers and the nightly renders."""
    return project_dir() / "campaigns"


def _sample_folder(name: str) -> Path:
    """Where the sample's ``brand_assets`` or ``campaigns`` are: in an installed package, its
    ``sample/`` data (pyproject.toml maps them there); in a checkout, the repository's folders."""
    package = Path(__file__).resolve().parent
    installed = package / "sample" / name
    return installed if installed.is_dir() else package.parent / name


def default_charter() -> Path:
    """The charter commands check pictures against when none is given: the deployment's
    (``VISUELS_CHARTER``), else the sample's."""
    return settings().charter or sample_charter()


def sample_campaign() -> Path:
    """The sample campaign (the fictitious Région Solane), shipped with the package."""
    return _sample_folder("campaigns") / SAMPLE_CAMPAIGN_FILE


def sample_template_campaign() -> Path:
    """The sample campaign laid out in the sample charter's templates (``layout: bande``)."""
    return _sample_folder("campaigns") / SAMPLE_TEMPLATE_CAMPAIGN_FILE


def sample_charter() -> Path:
    """The sample charter folder, shipped with the package."""
    return _sample_folder("brand_assets") / "solane"


def configuration_table() -> str:
    """The settings as docs/configuration.md lists them: variable, default, meaning."""
    rows = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "(see meaning)" if field.default_factory or field.default in (None, "") else f"`{field.default}`"
        rows.append(f"| `VISUELS_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)


CONFIGURATION_PAGE = """# Configuration

Every setting is an environment variable, read by `visuels.config.Settings` (pydantic-settings);
this table is generated from it (`.venv/bin/python -m visuels.config > docs/configuration.md`) and
a test fails when the two differ. A variable that is not valid stops every command as it starts,
in one line naming it (exit code 2). `visuels doctor` shows what this machine has. Prefect's own
settings (`PREFECT_API_URL`, `PREFECT_HOME`, `PREFECT_API_DATABASE_CONNECTION_URL`…) are
Prefect's: see [Operations](operations.md).

{table}
"""


if __name__ == "__main__":
    sys.stdout.write(CONFIGURATION_PAGE.format(table=configuration_table()))
