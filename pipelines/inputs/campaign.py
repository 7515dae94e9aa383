"""Campaign files: what to render, for which communes, audiences and formats.

Paths in a campaign file are relative to the file's own folder.
"""

from __future__ import annotations

import difflib
import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from visuels._internal.strict import Filled, StrictModel
from visuels.errors import CampaignError, InvalidValueError, Text, VisuelsError
from visuels.inputs.charter import Charter, load_charter
from visuels.inputs.communes import (
    DEPARTMENT_WIDTH,
    INSEE_WIDTH,
    SIREN_WIDTH,
    Commune,
    commune_folders,
    load_communes,
    referential_communes,
    with_leading_zero,
)
from visuels.inputs.file_names import PathText, as_on_disk, case_hint
from visuels.inputs.fonts import missing_glyphs, typographic
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.inputs.logo_fit import check_logo_fits
from visuels.inputs.lora_runs import WEIGHTS_FILE, latest_run, lora_root
from visuels.inputs.model_refs import (
    DemoModelRef,
    ModelRef,
    kind_as_written,
    local_path,
    model_in_one_line,
    resolve_paths,
)
from visuels.inputs.photos import check_decodes
from visuels.inputs.referential import load_referential
from visuels.inputs.slugs import is_a_name, name_key, slugify
from visuels.inputs.weight_files import lora_file_problem, weights_problem
from visuels.inputs.yamlfiles import read_yaml_mapping, validate_model

PLACEHOLDERS = ("commune", "landmark", "landscape", "audience", "season")
# What a headline or a call to action may name, filled for each commune ("solane.example/{insee}").
TEXT_PLACEHOLDERS = ("commune", "insee", "department", "season")
LATEST_LORA = "charter:latest"  # the newest complete LoRA trained on the campaign's charter


def _audience_name(value: str) -> str:
    # Said in words, not as the rule's regular expression: designers write these names.
    if not is_a_name(value):
        raise InvalidValueError(
            "'{value}' cannot name an audience: lowercase letters without accents, digits, - and _"
            " (e.g. residents, young-families)",
            value=value,
        )
    return value


def _language_code(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}", value):
        raise InvalidValueError(
            "'{value}' is not a language code: two or three lowercase letters, as fr, en or oc", value=value
        )
    return value


AudienceName = Annotated[str, StringConstraints(max_length=40), AfterValidator(_audience_name)]
LanguageCode = Annotated[str, AfterValidator(_language_code)]
# A text in one language (a campaign in one language), or per language code.
Texts = (
    Annotated[str, StringConstraints(max_length=80)]
    | dict[LanguageCode, Annotated[str, StringConstraints(max_length=80)]]
)


class SchedulerName(StrEnum):
    default = "default"  # the model's own (the only one of the flow-matching families)
    euler = "euler"
    euler_a = "euler_a"
    ddim = "ddim"
    dpmpp_2m = "dpmpp_2m"
    pndm = "pndm"
    unipc = "unipc"
    # Few-step: for checkpoints and LoRAs distilled to 2-8 steps (docs/models.md, "Fewer steps").
    euler_trailing = "euler_trailing"  # Euler on trailing timesteps (SDXL-Lightning, Hyper-SD)
    lcm = "lcm"  # latent consistency (LCM-LoRA, LCM checkpoints)
    tcd = "tcd"  # trajectory consistency distillation (TCD LoRAs)


class SeedPolicy(StrEnum):
    fixed = "fixed"  # one seed for every image
    per_commune = "per_commune"  # a commune's audiences and formats share a seed
    per_job = "per_job"  # every image has its own seed


def _checked_template(value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if its ``{placeholders}`` are among ``allowed`` (``{{`` and ``}}`` are braces)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise InvalidValueError("malformed template ({exc})", exc=str(exc)) from None
    unknown = sorted({name for name in fields if name not in allowed})
    said = {
        "unknown": ", ".join(f"{{{name}}}" for name in unknown),
        "value": ", ".join(f"{{{name}}}" for name in allowed),
    }
    if len(unknown) == 1:
        raise InvalidValueError("unknown placeholder {unknown}; allowed: {value}", **said)
    if unknown:
        raise InvalidValueError("unknown placeholders {unknown}; allowed: {value}", **said)
    return value


def _checked_texts(value: Texts | None) -> Texts | None:
    """A headline or call to action, in one language or per language, with known placeholders only."""
    if isinstance(value, dict):
        return {language: _checked_template(text, TEXT_PLACEHOLDERS) for language, text in value.items()}
    return None if value is None else _checked_template(value, TEXT_PLACEHOLDERS)


class Seeds(StrictModel):
    policy: SeedPolicy = SeedPolicy.per_job
    base: int = Field(default=0, ge=0, lt=2**32)


class PopulationRange(StrictModel):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class CommuneSelection(StrictModel):
    """The communes to choose from: those of ``file`` (a communes CSV), or every current commune
    of the 2026 COG (``visuels.inputs.referential``), with ``details`` joining a CSV's columns
    (landscapes, landmarks, photos) by INSEE code. Then all of them, or those of some regions,
    departments, EPCI (SIREN) and population range, or a list (names or INSEE codes)."""

    file: PathText | None = Field(default=None, description="A communes CSV to choose from; none: the COG 2026.")
    details: PathText | None = Field(
        default=None, description="Without file: a communes CSV joined by INSEE code to the COG's communes."
    )
    regions: list[str] = Field(default_factory=list, description="INSEE region codes (76: Occitanie).")
    departments: list[str] = Field(default_factory=list)
    epci: list[str] = Field(default_factory=list, description="SIREN codes of intercommunalities.")
    names: list[str] = Field(default_factory=list)
    population: PopulationRange | None = None

    @field_validator("regions", "departments", "epci", "names", mode="before")
    @classmethod
    def _codes_as_written(cls, values: object, info: ValidationInfo) -> object:
        """`departments: [34, 1]` and `names: [34301]` (numbers in YAML) are the codes 34, 01 and 34301."""
        width = {"names": INSEE_WIDTH, "epci": SIREN_WIDTH}.get(info.field_name or "", DEPARTMENT_WIDTH)
        return [with_leading_zero(value, width) for value in values] if isinstance(values, list) else values

    @model_validator(mode="after")
    def _one_source(self) -> CommuneSelection:
        if self.file is not None and self.details is not None:
            raise InvalidValueError(
                "give file (the communes to choose from) or details (columns for the COG's), not both"
            )
        return self


class LoraRef(StrictModel):
    path: PathText
    scale: float = Field(default=1.0, ge=0.0, le=2.0)


class Audience(StrictModel):
    """Who a picture speaks to: words in the prompt, tone, and its own texts.

    Written as a plain string, an audience is its prompt words only.
    """

    prompt: Filled = Field(description="Words for this audience in the prompt ({audience}).")
    tone: list[Filled] = Field(default_factory=list, description="Tone words added to the prompt (e.g. lively, calm).")
    headline: Texts | None = Field(
        default=None,
        description="Set under the commune name; none: the campaign's. {commune}, {insee}, {department} and"
        " {season} are filled for each commune.",
    )
    call_to_action: Texts = Field(
        default="", description="Set under the headline, e.g. a web address (solane.example/{insee})."
    )
    languages: list[LanguageCode] | None = Field(
        default=None, min_length=1, description="The languages of this audience's pictures; none: the campaign's."
    )

    @model_validator(mode="before")
    @classmethod
    def _words_only(cls, data: object) -> object:
        return {"prompt": data} if isinstance(data, str) else data

    @field_validator("headline", "call_to_action")
    @classmethod
    def _known_placeholders(cls, value: Texts | None) -> Texts | None:
        return _checked_texts(value)

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else distinct_languages(value)


def distinct_languages(value: list[str]) -> list[str]:
    """A list of languages, each once: one twice would plan each of its pictures twice."""
    if len(set(value)) != len(value):
        raise InvalidValueError("a language is listed twice")
    return value


class ControlNetRef(StrictModel):
    path: PathText = Field(description="A ControlNet for edges (Canny), as a local diffusers folder.")
    scale: float = Field(default=1.0, ge=0.0, le=2.0, description="How strongly the edges steer the picture.")


class PhotoUse(StrictModel):
    """How a commune's photos shape its pictures: img2img from the photo, its edges through a ControlNet, or both."""

    strength: float | None = Field(
        default=0.6, gt=0.0, le=1.0, description="img2img: share of the photo redrawn (low: close to it); null: none."
    )
    controlnet: ControlNetRef | None = None
    canny_low: int = Field(default=100, ge=0, le=1000, description="Canny edge thresholds, on 0-255 gradients.")
    canny_high: int = Field(default=200, ge=1, le=1000)

    @model_validator(mode="after")
    def _something_to_do(self) -> PhotoUse:
        if self.strength is None and self.controlnet is None:
            raise InvalidValueError("give a strength (img2img), a controlnet, or both")
        if self.canny_low >= self.canny_high:
            raise InvalidValueError("canny_low must be below canny_high")
        return self


class ModelLicenceUse(StrictModel):
    """What a campaign says of its model's licence (docs/models.md)."""

    licence: str | None = Field(
        default=None,
        min_length=2,
        max_length=80,
        description="The licence id (as model cards write it: apache-2.0, openrail++...) of a model whose"
        " card and files do not name it.",
    )
    override: str | None = Field(
        default=None,
        min_length=10,
        max_length=500,
        description="Why this campaign renders with a model whose licence refuses publication (non-commercial,"
        " research-only, revenue-capped): recorded with every picture.",
    )


class CampaignSpec(StrictModel):
    """The campaign file as written."""

    name: Filled = Field(max_length=120)
    charter: PathText
    communes: CommuneSelection
    model: ModelRef = DemoModelRef()
    lora: LoraRef | None = None
    speed_lora: LoraRef | None = Field(
        default=None,
        description="A few-step LoRA (LCM-LoRA, TCD, SDXL-Lightning, Hyper-SD) applied with the style LoRA;"
        " give it the steps, scheduler and guidance it was distilled for.",
    )
    prompt: Filled = Field(description="Template; placeholders: " + ", ".join(PLACEHOLDERS))
    season: Filled
    headline: Texts = Field(default="", description="Set under the commune name: one text, or one per language.")
    audiences: dict[AudienceName, Audience] = Field(
        min_length=1, description="Audience name -> its prompt words, or its prompt, tone, texts and languages."
    )
    formats: list[str] = Field(min_length=1)
    languages: list[LanguageCode] = Field(
        default_factory=lambda: ["fr"],
        min_length=1,
        description="Languages of texts and AI label; the first is the report's.",
    )
    photos: PhotoUse | None = Field(
        default=PhotoUse(), description="How communes with photos are rendered from them; null: photos are not used."
    )
    render_flagged: bool = Field(
        default=False, description="Render jobs holding a sensitive term (marked for review); banned terms never."
    )
    file_type: Literal["png", "jpeg", "webp"] = Field(default="png", description="Encoding of the output files.")
    steps: int | None = Field(default=None, ge=1, le=150, description="Denoising steps; none: the model family's.")
    guidance: float | None = Field(
        default=None, ge=0.0, le=30.0, description="Guidance as the model's family uses it; none: the family's."
    )
    scheduler: SchedulerName | None = Field(default=None, description="none: the model family's.")
    guidance_cutoff: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Share of the steps that run classifier-free guidance; after them one model pass per step,"
        " on the prompt alone. none: guidance to the last step.",
    )
    deep_cache: int | None = Field(
        default=None,
        ge=2,
        le=10,
        description="UNet models: the whole UNet runs every N steps and its deep blocks' features are reused"
        " in between (DeepCache). none: every step runs it whole.",
    )
    first_block_cache: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="FLUX.1 and Qwen-Image: each step runs the transformer's first block, and"
        " the others only when its output changed by more than this share since they last ran (First Block"
        " Cache; 0.05 to 0.2 usual). Text to image only. none: every step runs whole.",
    )
    model_licence: ModelLicenceUse = Field(
        default_factory=ModelLicenceUse,
        description="The model's licence where its files do not say it, and a recorded reason to use a"
        " model whose licence does not allow a region to publish.",
    )
    seed: Seeds = Seeds()
    active: bool = Field(default=True, description="Rendered by the nightly run (render-nightly).")
    review: bool = Field(
        default=False,
        description="Each served run waits for a designer to approve its pictures (in the studio) before"
        " they are published; the run form can say otherwise for one run.",
    )
    layout: str | None = Field(
        default=None,
        description="The charter's template set the pictures are laid out in (charter `templates`);"
        " none: the built-in layout.",
    )
    format_mode: Literal["native", "key_visual"] = Field(
        default="native",
        description="native: each format generated at its own aspect ratio; key_visual: one picture per"
        " commune and audience at the key visual's format, every other format cropped from it (close"
        " aspect ratios) or outpainted from it.",
    )
    key_visual_format: str | None = Field(
        default=None, description="The format the key visual is generated at (key_visual mode); none: the first."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_language(cls, data: object) -> object:
        """``language: fr``, as campaigns in one language write it, is ``languages: [fr]``."""
        if isinstance(data, dict) and "language" in data:
            if "languages" in data:
                raise InvalidValueError("give languages or language, not both")
            data = {**data, "languages": [data["language"]]}
            del data["language"]
        return data

    @field_validator("languages")
    @classmethod
    def _distinct_languages(cls, value: list[str]) -> list[str]:
        return distinct_languages(value)

    @field_validator("communes", "model", "lora", "speed_lora", "seed", mode="before")
    @classmethod
    def _in_one_line(cls, value: object, info: ValidationInfo) -> object:
        """The one-line forms a designer writes first, as an audience may be its words alone:
        `communes: communes.csv` (all of its communes), `model: demo` (or as `--model` takes it),
        `lora: charter:latest` (at scale 1), `seed: 2027` (the base of the default policy); and a
        model's kind as written, or left out where its fields say it."""
        if info.field_name == "seed":
            return {"base": value} if isinstance(value, int) and not isinstance(value, bool) else value
        if info.field_name == "model" and isinstance(value, dict):
            return kind_as_written(value)
        if not isinstance(value, str):
            return value
        if info.field_name == "model":
            return model_in_one_line(value)
        return {"file": value} if info.field_name == "communes" else {"path": value}

    @field_validator("key_visual_format")
    @classmethod
    def _key_visual_is_a_format(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if info.data.get("format_mode") != "key_visual":
                raise InvalidValueError("read in format_mode: key_visual only")
            if value not in info.data.get("formats", []):
                raise InvalidValueError("'{value}' is not one of the campaign's formats", value=value)
        return value

    @property
    def master_format(self) -> str | None:
        """The format every other one is derived from (key_visual mode), None in native mode."""
        if self.format_mode != "key_visual":
            return None
        return self.key_visual_format or self.formats[0]

    def audience_languages(self, audience: str) -> list[str]:
        return self.audiences[audience].languages or self.languages

    def texts(self, audience: str, language: str) -> tuple[str, str]:
        """The headline and call to action of an audience's pictures in ``language``."""
        chosen = self.audiences[audience]
        headline = self.headline if chosen.headline is None else chosen.headline
        return text_in(headline, language), text_in(chosen.call_to_action, language)

    @field_validator("prompt")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _checked_template(value, PLACEHOLDERS)

    @field_validator("headline")
    @classmethod
    def _known_text_placeholders(cls, value: Texts) -> Texts:
        return _checked_texts(value)

    @field_validator("file_type", "scheduler", mode="before")
    @classmethod
    def _name_as_written(cls, value: object) -> object:
        """`file_type: JPG`, `scheduler: Euler A`: the names in any case, spaces or dashes for
        underscores; jpg is JPEG's usual name."""
        if not isinstance(value, str):
            return value
        name = name_key(value)
        return "jpeg" if name == "jpg" else name

    @field_validator("formats", mode="before")
    @classmethod
    def _format_names_as_written(cls, value: object) -> object:
        """`Web_Banner`, `web-banner` or `web banner`: the format web_banner."""
        if not isinstance(value, list):
            return value
        return [name_key(name) if isinstance(name, str) else name for name in value]

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in FORMAT_PRESETS:
                raise InvalidValueError(
                    "unknown format '{name}'; known: {value}", name=name, value=", ".join(FORMAT_PRESETS)
                )
        if len(set(value)) != len(value):
            raise InvalidValueError("a format is listed twice")
        return value


def text_in(texts: str | dict[str, str], language: str) -> str:
    """A text in ``language``: a plain string serves every language (``check_texts`` allows it for one)."""
    return texts if isinstance(texts, str) else texts.get(language, "")


def filled_text(text: str, commune: Commune, season: str) -> str:
    """A headline or call to action for ``commune``: its placeholders (``TEXT_PLACEHOLDERS``) filled."""
    return text.format(commune=commune.name, insee=commune.insee, department=commune.department, season=season)


def check_texts(spec: CampaignSpec, charter: Charter, path: Path) -> None:
    """Each audience's languages have an AI label, a headline and a call to action (if it has any)."""
    for index, language in enumerate(spec.languages):
        if language not in charter.spec.ai_label.text:
            raise CampaignError(
                path, f"languages[{index}]", "the charter has no AI label text for '{language}'", language=language
            )
    for name, audience in spec.audiences.items():
        languages = spec.audience_languages(name)
        for index, language in enumerate(audience.languages or []):
            if language not in charter.spec.ai_label.text:
                field = f"audiences.{name}.languages[{index}]"
                raise CampaignError(path, field, "the charter has no AI label text for '{language}'", language=language)
        headline = (
            ("headline", spec.headline)
            if audience.headline is None
            else (f"audiences.{name}.headline", audience.headline)
        )
        for field, texts in (headline, (f"audiences.{name}.call_to_action", audience.call_to_action)):
            if isinstance(texts, str):
                if texts and len(languages) > 1:
                    raise CampaignError(
                        path,
                        field,
                        "pictures in {value}: give this text per language ({{fr: ..., en: ...}})",
                        value=", ".join(languages),
                    )
                continue
            missing = [language for language in languages if not texts.get(language, "").strip()]
            if missing and any(text.strip() for text in texts.values()):
                raise CampaignError(
                    path,
                    field,
                    "no '{missing}' text, and {name} pictures are made in it",
                    missing=missing[0],
                    name=name,
                )


def check_glyphs(spec: CampaignSpec, font: Path, communes: list[Commune], path: Path) -> None:
    """Every text the pictures set (commune names, headlines, calls to action) has its glyphs in the
    charter's font: a missing one would be drawn as an empty box ("S□te") on every picture."""
    texts: list[tuple[str, str]] = []
    for field, value in [("headline", spec.headline)] + [
        (f"audiences.{name}.{part}", getattr(audience, part))
        for name, audience in spec.audiences.items()
        for part in ("headline", "call_to_action")
    ]:
        if isinstance(value, dict):
            texts += [(f"{field}.{language}", text) for language, text in value.items()]
        elif value:
            texts.append((field, value))
    for field, text in texts:
        if missing := missing_glyphs(font, typographic(text)):
            raise CampaignError(
                path,
                field,
                "the charter's font {font} has no glyph for {characters} (in {text!r}): the pictures would show an"
                " empty box in its place; change the text or the charter's font",
                font=font.name,
                characters=" ".join(missing),
                text=text,
            )
    # Every name's characters at once: a campaign over the COG has tens of thousands of names.
    unset = missing_glyphs(
        font, "".join({character for commune in communes for character in typographic(commune.name)})
    )
    for commune in communes if unset else ():
        if missing := "".join(
            dict.fromkeys(character for character in typographic(commune.name) if character in unset)
        ):
            raise CampaignError(
                path,
                "communes",
                "the charter's font {font} has no glyph for {characters} of {name} ({insee}): its pictures would"
                " show an empty box in its place; the charter needs a font that has it",
                font=font.name,
                characters=" ".join(missing),
                name=commune.name,
                insee=commune.insee,
            )


class Campaign(BaseModel):
    """A validated campaign with its charter loaded and its communes selected."""

    model_config = ConfigDict(frozen=True)

    spec: CampaignSpec
    path: Path
    slug: str
    charter: Charter
    communes: list[Commune]
    commune_folders: dict[str, str]  # INSEE code -> output folder, from the whole communes file
    model: ModelRef
    lora_path: Path | None
    controlnet_path: Path | None = None
    speed_lora_path: Path | None = None


def _find_communes(wanted: str, by_code: dict[str, Commune], by_name: dict[str, list[Commune]]) -> list[Commune]:
    """The communes a name or INSEE code designates: one, several (homonyms) or none."""
    if wanted in by_code:
        return [by_code[wanted]]
    # The slug makes "Sables-d’Olonne", "sables d'olonne" and "Sables-d'Olonne" the same name.
    return by_name.get(wanted) or by_name.get(slugify(wanted), [])


def _by_name(communes: list[Commune]) -> dict[str, list[Commune]]:
    """Communes by name and by the slug of their name (homonyms share an entry)."""
    by_name: dict[str, list[Commune]] = {}
    for commune in communes:
        by_name.setdefault(commune.name, []).append(commune)
        if commune.slug != commune.name:
            by_name.setdefault(commune.slug, []).append(commune)
    return by_name


def _in_referential(
    selection: CommuneSelection, communes: list[Commune], campaign_path: Path, field: str
) -> list[Commune]:
    """The communes in the selection's regions, EPCI and population range (read in the COG)."""
    referential = load_referential()
    for name, wanted, known in (
        ("regions", selection.regions, referential.regions),
        ("epci", selection.epci, referential.epci),
    ):
        for index, code in enumerate(wanted):
            if code not in known:
                where = f"{field}.{name}[{index}]"
                raise CampaignError(campaign_path, where, "'{code}' is not a code of the 2026 COG", code=code)
    population = selection.population or PopulationRange()
    entries = {
        entry.code
        for entry in referential.select(
            regions=selection.regions, epci=selection.epci, population_min=population.min, population_max=population.max
        )
    }
    chosen = [commune for commune in communes if commune.insee in entries]
    if not chosen:
        raise CampaignError(campaign_path, field, "no commune matches these regions, EPCI and population range")
    return chosen


def select_communes(
    selection: CommuneSelection,
    communes: list[Commune],
    campaign_path: Path,
    field: str = "communes",
    left_out: list[Commune] | None = None,
) -> list[Commune]:
    """Apply a selection; an unknown name or department is an error naming ``field``.

    ``field`` says where the selection came from: ``communes`` in the campaign file, or a
    command-line or flow parameter such as ``--communes``. ``left_out``: communes of the file the
    campaign does not select, so a name among them is said to be outside the campaign, not unknown.
    """
    criteria = selection.regions or selection.departments or selection.epci or selection.population
    if criteria and selection.names:
        raise CampaignError(campaign_path, field, "give either names or regions, departments, EPCI, population")
    if selection.regions or selection.epci or selection.population:
        communes = _in_referential(selection, communes, campaign_path, field)
    if selection.departments:
        known = {c.department for c in communes}
        for index, department in enumerate(selection.departments):
            if department not in known:
                raise CampaignError(
                    campaign_path,
                    f"{field}.departments[{index}]",
                    "no commune in department '{department}'",
                    department=department,
                )
        return [c for c in communes if c.department in selection.departments]
    if not selection.names:
        return list(communes)
    by_code = {c.insee: c for c in communes}
    by_name = _by_name(communes)
    chosen: list[Commune] = []
    for index, wanted in enumerate(selection.names):
        where = f"{field}.names[{index}]"
        matches = _find_communes(wanted, by_code, by_name)
        if not matches and left_out:
            outside = _find_communes(wanted, {c.insee: c for c in left_out}, _by_name(left_out))
            if outside:
                found = outside[0]
                raise CampaignError(
                    campaign_path,
                    where,
                    "{name} ({insee}, department {department}) is in the communes file, but not "
                    "among the communes this campaign selects (its `communes:`)",
                    name=found.name,
                    insee=found.insee,
                    department=found.department,
                )
        if not matches:
            _refuse_a_commune_elsewhere_in_france(wanted, campaign_path, where)
            close = difflib.get_close_matches(wanted, [c.name for c in communes], n=1)
            hint = Text(" (did you mean '{name}'?)", name=close[0]) if close else ""
            raise CampaignError(campaign_path, where, "unknown commune '{wanted}'{hint}", wanted=wanted, hint=hint)
        if len(matches) > 1:
            homonyms = ", ".join(f"{c.name} ({c.insee}, department {c.department})" for c in matches)
            raise CampaignError(
                campaign_path,
                where,
                "'{wanted}' names {count} communes: {homonyms}; give the INSEE code",
                wanted=wanted,
                count=len(matches),
                homonyms=homonyms,
            )
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _refuse_a_commune_elsewhere_in_france(wanted: str, campaign_path: Path, where: str) -> None:
    """A name or code the campaign's communes do not hold, that the COG does (`--communes Paris` for a
    region's campaign): said as a commune outside the campaign, not as an unknown one."""
    everywhere = referential_communes({})
    found = _find_communes(wanted, {c.insee: c for c in everywhere}, _by_name(everywhere))
    if len(found) == 1:
        raise CampaignError(
            campaign_path,
            where,
            "{name} ({insee}, department {department}) is not among the communes this campaign chooses from",
            name=found[0].name,
            insee=found[0].insee,
            department=found[0].department,
        )
    if found:
        raise CampaignError(
            campaign_path,
            where,
            "'{wanted}' names {count} communes of France, none among those this campaign chooses from",
            wanted=wanted,
            count=len(found),
        )


def communes_to_choose_from(selection: CommuneSelection, base: Path, campaign_path: Path) -> list[Commune]:
    """Every commune a campaign may choose from: its communes file's, or the COG's current ones
    (joined with ``details``' columns by code), before any selection."""
    source = selection.file or selection.details
    table = []
    if source is not None:
        try:
            table = load_communes(as_on_disk(base / source))
        except VisuelsError as exc:
            if exc.field is None and exc.message == "file not found":
                field = "communes.file" if selection.file else "communes.details"
                raise CampaignError(
                    campaign_path,
                    field,
                    "file not found: {value}{hint}",
                    value=base / source,
                    hint=case_hint(base / source),
                ) from None
            raise
    if selection.file is not None:
        return table
    return referential_communes({commune.insee: commune for commune in table})


def _charter(spec: CampaignSpec, campaign_path: Path) -> Charter:
    charter_file = as_on_disk(campaign_path.parent / spec.charter)
    if not charter_file.exists():
        raise CampaignError(
            campaign_path,
            "charter",
            "charter not found: {charter_file}{hint}",
            charter_file=charter_file,
            hint=case_hint(charter_file),
        )
    return load_charter(charter_file)  # CharterError names the charter file itself


def _lora_file(spec: CampaignSpec, charter: Charter, campaign_path: Path) -> Path | None:
    """The style LoRA's file: the charter's latest trained run's, or the one named; whole."""
    if spec.lora is None:
        return None
    if spec.lora.path == LATEST_LORA:
        run = latest_run(charter.spec.slug)
        if run is None:
            raise CampaignError(
                campaign_path,
                "lora.path",
                "no trained LoRA for charter '{slug}' under {value}: run `visuels train`",
                slug=charter.spec.slug,
                value=lora_root(),
            )
        lora_path = (run / WEIGHTS_FILE).resolve()
    else:
        lora_path = local_path(campaign_path.parent, spec.lora.path)
        if not lora_path.exists():
            raise CampaignError(campaign_path, "lora.path", "LoRA weights not found: {lora_path}", lora_path=lora_path)
    if problem := lora_file_problem(lora_path):
        raise CampaignError(campaign_path, "lora.path", problem)  # a trained run's file too: disks fail
    return lora_path


def _speed_lora_file(spec: CampaignSpec, campaign_path: Path) -> Path | None:
    if spec.speed_lora is None:
        return None
    speed_lora_path = local_path(campaign_path.parent, spec.speed_lora.path)
    if not speed_lora_path.exists():
        raise CampaignError(
            campaign_path, "speed_lora.path", "LoRA weights not found: {lora_path}", lora_path=speed_lora_path
        )
    if problem := lora_file_problem(speed_lora_path):
        raise CampaignError(campaign_path, "speed_lora.path", problem)
    return speed_lora_path


def _controlnet_folder(spec: CampaignSpec, campaign_path: Path) -> Path | None:
    if spec.photos is None or spec.photos.controlnet is None:
        return None
    controlnet_path = local_path(campaign_path.parent, spec.photos.controlnet.path)
    if not (controlnet_path / "config.json").is_file():
        raise CampaignError(
            campaign_path,
            "photos.controlnet.path",
            "not a diffusers ControlNet folder (no config.json): {controlnet_path}",
            controlnet_path=controlnet_path,
        )
    if problem := weights_problem([controlnet_path]):
        raise CampaignError(campaign_path, "photos.controlnet.path", problem)
    return controlnet_path


def load_campaign(path: str | Path) -> Campaign:
    """Load a campaign, its charter and communes; every error names its file and field."""
    campaign_path = Path(path)
    data = read_yaml_mapping(campaign_path, CampaignError)
    spec = validate_model(CampaignSpec, data, campaign_path, CampaignError)
    base = campaign_path.parent
    charter = _charter(spec, campaign_path)
    check_texts(spec, charter, campaign_path)

    all_communes = communes_to_choose_from(spec.communes, base, campaign_path)
    communes = select_communes(spec.communes, all_communes, campaign_path)
    if spec.photos is not None:
        check_decodes(photo for commune in communes for photo in commune.photos)
    check_glyphs(spec, charter.font, communes, campaign_path)
    for format_name in spec.formats:
        check_logo_fits(charter, FORMAT_PRESETS[format_name])
    if spec.layout is not None and spec.layout not in charter.templates:
        known = ", ".join(charter.templates) or "none"
        raise CampaignError(
            campaign_path,
            "layout",
            "the charter has no template set '{layout}' (it has: {known})",
            layout=spec.layout,
            known=known,
        )
    lora_path = _lora_file(spec, charter, campaign_path)
    speed_lora_path = _speed_lora_file(spec, campaign_path)
    controlnet_path = _controlnet_folder(spec, campaign_path)
    return Campaign(
        spec=spec,
        path=campaign_path.resolve(),
        slug=slugify(spec.name),
        charter=charter,
        communes=communes,
        commune_folders=commune_folders(all_communes),
        model=resolve_paths(spec.model, base),
        lora_path=lora_path,
        speed_lora_path=speed_lora_path,
        controlnet_path=controlnet_path,
    )
