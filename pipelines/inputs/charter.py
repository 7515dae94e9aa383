"""The brand charter: palette, logos, font, AI label, style prompt, reference images.

Every rule that post-processing applies comes from ``charter.yaml``; paths inside it are
relative to the charter's folder.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from enum import StrEnum
from math import ceil
from pathlib import Path
from typing import Annotated, Literal

from PIL import Image, ImageFont, UnidentifiedImageError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from visuels._internal.hashing import sha256_file
from visuels._internal.strict import Filled, StrictModel
from visuels.errors import CharterError, InvalidValueError
from visuels.inputs.colour import contrast_ratio, darkest_and_lightest, relative_luminance
from visuels.inputs.file_names import PathText, as_on_disk, case_hint
from visuels.inputs.fonts import missing_glyphs
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.inputs.logos import SVG_SUFFIXES, logo_size, read_logo
from visuels.inputs.slugs import is_a_name
from visuels.inputs.svg import SvgRefusedError
from visuels.inputs.templates import Template, load_template
from visuels.inputs.yamlfiles import read_yaml_mapping, validate_model

MAX_LOGO_PIXELS = 25_000_000  # a 5000 x 5000 logo; beyond, a mistake or a decompression bomb
CHARTER_FILE = "charter.yaml"  # a charter's folder holds it


def _hex_colour(value: str) -> str:
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
        raise InvalidValueError("'{value}' is not a colour: write it #RRGGBB, e.g. #1B4F72", value=value)
    return value


HexColour = Annotated[str, AfterValidator(_hex_colour)]


class ColourRole(StrEnum):
    primary = "primary"
    secondary = "secondary"
    accent = "accent"
    neutral = "neutral"


class Corner(StrEnum):
    top_left = "top_left"
    top_right = "top_right"
    bottom_left = "bottom_left"
    bottom_right = "bottom_right"


class PaletteColour(StrictModel):
    name: Filled
    hex: HexColour
    role: ColourRole

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.hex[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class LogoRules(StrictModel):
    colour: PathText = Field(description="Full-colour logo, PNG with alpha.")
    light: PathText = Field(description="Light monochrome logo for dark backgrounds, PNG with alpha.")
    dark: PathText = Field(description="Dark monochrome logo for light backgrounds, PNG with alpha.")
    allowed_corners: list[Corner] = Field(min_length=1)
    min_width_share: float = Field(gt=0, le=0.5, description="Minimum width / short side.")
    clear_zone: float = Field(ge=0, le=2, description="Free margin, in logo heights.")


class Typography(StrictModel):
    font: PathText
    font_licence: PathText
    position: Literal["top", "bottom"] = Field(default="bottom", description="Where the commune name goes.")
    name_size_share: float = Field(default=0.09, gt=0, le=0.3, description="Commune name size / short side.")
    headline_size_share: float = Field(default=0.045, gt=0, le=0.2, description="Headline size / short side.")
    min_text_px: int = Field(default=16, ge=8, le=200, description="Text is never set smaller than this.")
    max_name_lines: int = Field(default=3, ge=1, le=6)


class PaletteGrading(StrictModel):
    tolerance: float = Field(default=20.0, gt=0, le=100, description="ΔE00 within which a pixel is on-palette.")
    strength: float = Field(default=0.6, ge=0, le=1, description="Share of the way colours move to the palette.")
    min_conformity: float = Field(default=0.5, ge=0, le=1, description="On-palette share an output must reach.")


class AiLabel(StrictModel):
    text: dict[str, Filled] = Field(description="Label text per language code; 'fr' is required.")
    edited_text: dict[str, Filled] = Field(
        default_factory=lambda: {"fr": "Image modifiée par IA", "en": "AI-edited image"},
        description="Label text of an edited or photo-based picture, per language code: every language of"
        " 'text' needs one.",
    )
    badge: Filled = Field(default="IA", max_length=4)
    # Top right: where the Code of Practice's example puts it, clear of a feed's own overlays.
    position: Corner = Corner.top_right
    keep_in_crops: list[Literal["1:1", "4:5", "9:16", "16:9"]] = Field(
        default=[],
        description="Centred crops the label must stay inside (a feed's square or 4:5 preview...): it moves"
        " inward just enough, where it fits.",
    )
    text_share: float = Field(default=0.022, gt=0, le=0.1, description="Label text size / short side.")
    min_text_px: int = Field(default=14, ge=8, le=100, description="Label text is never smaller than this.")

    @field_validator("text")
    @classmethod
    def _needs_french(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("fr", "").strip():
            raise InvalidValueError("a French label text ('fr') is required")
        return value

    @model_validator(mode="after")
    def _edited_in_every_language(self) -> AiLabel:
        missing = sorted(set(self.text) - set(self.edited_text))
        if missing:
            raise InvalidValueError(
                "edited_text needs a text for every language of text: missing {languages}", languages=", ".join(missing)
            )
        return self


class Style(StrictModel):
    trigger_word: str = Field(min_length=2)
    prompt: Filled
    negative_prompt: str = ""

    @field_validator("trigger_word")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if re.search(r"\s", value):
            raise InvalidValueError(
                "'{value}' is not one word: the trigger word is written without spaces", value=value
            )
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_has_trigger(cls, value: str, info: ValidationInfo) -> str:
        trigger = info.data.get("trigger_word")
        if trigger and trigger not in value:
            raise InvalidValueError("the style prompt must contain the trigger word '{trigger}'", trigger=trigger)
        return value


class Fairness(StrictModel):
    """How prompts and texts are reviewed for bias and stereotypes (``visuels.planning.fairness``).

    Terms match whole words, ignoring case and accents; a term may be several words.
    """

    banned_terms: list[str] = Field(default_factory=list, description="Never rendered: the job is left out.")
    sensitive_terms: list[str] = Field(
        default_factory=list,
        description="Rendered only where the campaign allows it (render_flagged), then marked for review.",
    )
    people_terms: list[str] = Field(
        default_factory=list, description="Words that put people in the picture: the diversity slots then apply."
    )
    diversity: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Slot name -> values (e.g. age: [children, older people]); each seed draws one value per slot.",
    )

    @field_validator("banned_terms", "sensitive_terms", "people_terms")
    @classmethod
    def _plain_terms(cls, terms: list[str]) -> list[str]:
        for term in terms:
            if not term.strip():
                raise InvalidValueError("an empty term")
        return terms

    @field_validator("diversity")
    @classmethod
    def _slots_have_values(cls, slots: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in slots.items():
            if len(values) < 2 or not any(value.strip() for value in values):
                raise InvalidValueError(
                    "slot '{name}' needs at least two values to vary, one of them not empty", name=name
                )
        return slots


class Coherence(StrictModel):
    """How far an output's colours may stray from the rest of its campaign (``visuels.postprocess.coherence``)."""

    max_distance: float = Field(
        default=30.0,
        gt=0,
        description="Style distance to the campaign's baseline (fixed by its first report, or by the designer)"
        " beyond which an output is flagged.",
    )
    max_reference_distance: float | None = Field(
        default=None, gt=0, description="The same against the charter's reference images; none: not flagged."
    )


class CharterSpec(StrictModel):
    """charter.yaml as written, before its files are checked."""

    name: Filled
    slug: str
    palette: list[PaletteColour] = Field(min_length=2)
    palette_grading: PaletteGrading = PaletteGrading()
    logo: LogoRules
    typography: Typography
    ai_label: AiLabel
    style: Style
    references: PathText = Field(description="Folder of reference images with .txt captions.")
    fairness: Fairness = Fairness()
    coherence: Coherence = Coherence()
    creator: Filled = Field(description="Credit written into output metadata.")
    disclose_prompt: bool = Field(
        default=False,
        description="Write each picture's prompt into its IPTC metadata (AIPromptInformation): off unless"
        " the region chooses to publish its prompts.",
    )
    templates: dict[str, dict[str, PathText]] = Field(
        default_factory=dict,
        description="Layout template sets: set name -> format name -> SVG file (visuels.inputs.templates);"
        " a campaign chooses a set with `layout`; a format without a template keeps the built-in layout.",
    )

    @field_validator("slug")
    @classmethod
    def _a_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
            raise InvalidValueError(
                "'{value}' cannot be a slug: lowercase letters without accents, digits and - (e.g. solane, grand-est)",
                value=value,
            )
        return value

    @field_validator("templates")
    @classmethod
    def _templates_name_known_formats(cls, sets: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, files in sets.items():
            if not is_a_name(name):
                raise InvalidValueError("template set '{name}': use lower-case letters, digits, - and _", name=name)
            for format_name in files:
                if format_name not in FORMAT_PRESETS:
                    raise InvalidValueError(
                        "template set '{name}': unknown format '{format_name}'", name=name, format_name=format_name
                    )
        return sets

    @field_validator("palette")
    @classmethod
    def _palette_colours_are_distinct(cls, palette: list[PaletteColour]) -> list[PaletteColour]:
        for attribute in ("name", "hex"):
            seen: dict[str, str] = {}
            for colour in palette:
                value = getattr(colour, attribute).lower()
                if value in seen:
                    raise InvalidValueError(
                        "'{seen}' and '{name}' have the same {attribute} {value}",
                        seen=seen[value],
                        name=colour.name,
                        attribute=attribute,
                        value=value,
                    )
                seen[value] = colour.name
        primaries = [colour.name for colour in palette if colour.role is ColourRole.primary]
        if len(primaries) != 1:
            raise InvalidValueError("needs exactly one primary colour, has {count}", count=len(primaries))
        return palette

    @model_validator(mode="after")
    def _palette_can_carry_text(self) -> CharterSpec:
        # Label and text use the palette's darkest and lightest colours on each other.
        dark, light = darkest_and_lightest([colour.rgb for colour in self.palette])
        ratio = contrast_ratio(relative_luminance(light), relative_luminance(dark))
        if ratio < 4.5:
            raise InvalidValueError(
                "the palette's lightest and darkest colours contrast {ratio:.1f}:1, text needs 4.5:1", ratio=ratio
            )
        return self

    @model_validator(mode="after")
    def _logo_has_a_corner_beside_the_label(self) -> CharterSpec:
        if all(corner == self.ai_label.position for corner in self.logo.allowed_corners):
            raise InvalidValueError("logo.allowed_corners needs a corner other than ai_label.position")
        return self


class Charter(BaseModel):
    """A validated charter with its files resolved and its content hash (its templates are hashed
    apart: a job that uses one has the template's hash in its key)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: CharterSpec
    path: Path
    folder: Path
    logo_colour: Path
    logo_light: Path
    logo_dark: Path
    font: Path
    references: Path
    hash: str
    templates: dict[str, dict[str, Template]] = {}

    def template(self, layout: str | None, format_name: str) -> Template | None:
        """The template of ``format_name`` in the set ``layout``; None: the built-in layout."""
        return self.templates.get(layout, {}).get(format_name) if layout else None


def _inside(charter_path: Path, field: str, folder: Path, relative: str) -> Path:
    """``relative`` under the charter's folder; a path (or a link) that leads out of it is refused:
    a charter names its own assets, never other files of the machine."""
    path = as_on_disk(folder / relative)
    if not path.resolve().is_relative_to(folder):
        raise CharterError(
            charter_path, field, "{relative} leads outside the charter's folder: refused", relative=relative
        )
    return path


def _check_logo(charter_path: Path, field: str, path: Path) -> None:
    if not path.is_file():
        raise CharterError(charter_path, field, "logo file not found: {path}{hint}", path=path, hint=case_hint(path))
    if path.suffix.lower() in SVG_SUFFIXES:
        try:
            drawn = read_logo(path)
        except SvgRefusedError as exc:
            raise CharterError(charter_path, field, "{name}: {problem}", name=path.name, problem=exc.text) from None
        if drawn.getchannel("A").getextrema() == (0, 0):
            raise CharterError(charter_path, field, "{name} draws nothing", name=path.name)
        return
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the size check below says it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.width * image.height > MAX_LOGO_PIXELS:  # before decoding: a bomb stays unread
                raise CharterError(
                    charter_path,
                    field,
                    "{width}x{height} is too large for a logo: {path}",
                    width=image.width,
                    height=image.height,
                    path=path,
                )
            image.load()
            has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
            if has_alpha:
                alpha = image.convert("RGBA").getchannel("A")
                has_alpha = alpha.getextrema()[0] < 255
    except (UnidentifiedImageError, OSError) as exc:
        raise CharterError(
            charter_path, field, "not a readable image: {path} ({exc})", path=path, exc=str(exc)
        ) from None
    if not has_alpha:
        raise CharterError(charter_path, field, "logo has no transparent pixels (alpha): {path}", path=path)


def _check_font(charter_path: Path, path: Path) -> None:
    if not path.is_file():
        raise CharterError(
            charter_path, "typography.font", "font file not found: {path}{hint}", path=path, hint=case_hint(path)
        )
    try:
        # Not ImageFont.truetype: on failure it quietly loads a system font of the same file name.
        ImageFont.FreeTypeFont(str(path), 24)
    except OSError:
        raise CharterError(charter_path, "typography.font", "not a TrueType/OpenType font: {path}", path=path) from None


def _check_label_glyphs(charter_path: Path, label: AiLabel, font: Path) -> None:
    """The AI label is set in the charter's font, in every language: a missing glyph would be an
    empty box in the very words the law asks for."""
    texts = [("ai_label.badge", label.badge)]
    texts += [(f"ai_label.text.{language}", text) for language, text in label.text.items()]
    texts += [(f"ai_label.edited_text.{language}", text) for language, text in label.edited_text.items()]
    for field, text in texts:
        if missing := missing_glyphs(font, text):
            raise CharterError(
                charter_path,
                field,
                "the font {font} has no glyph for {characters} (in {text!r}): the pictures would show an empty"
                " box in its place; choose a font that has it",
                font=font.name,
                characters=" ".join(missing),
                text=text,
            )


def _charter_hash(charter_path: Path, asset_paths: list[Path]) -> str:
    digest = hashlib.sha256(charter_path.read_bytes())
    for asset in asset_paths:
        digest.update(sha256_file(asset).encode())
    return digest.hexdigest()


def _check_logo_room(charter_path: Path, field: str, template: Template, logo: tuple[int, int], share: float) -> None:
    """The logo, as large as the template's ``logo`` slot takes it (``template_fill``), is at least the
    charter's smallest width: else every picture of the layout fails the charter."""
    slot = template.slots["logo"]
    drawn = logo[0] * min(slot.width / logo[0], slot.height / logo[1])
    needed = share * min(template.width, template.height)
    if round(drawn) < needed:
        raise CharterError(
            charter_path,
            field,
            "{name}: slot 'logo' is {width:g}x{height:g} px: the logo drawn in it is {drawn} px wide, the charter's"
            " smallest is {needed} px ({share:.0%} of the format's short side)",
            name=template.path.name,
            width=slot.width,
            height=slot.height,
            drawn=round(drawn),
            needed=ceil(needed),
            share=share,
        )


def _load_templates(
    charter_path: Path, spec: CharterSpec, folder: Path, font: Path, logo: Path
) -> dict[str, dict[str, Template]]:
    palette = [colour.rgb for colour in spec.palette]
    sets: dict[str, dict[str, Template]] = {}
    for name, files in spec.templates.items():
        sets[name] = {}
        for format_name, relative in files.items():
            field = f"templates.{name}.{format_name}"
            path = _inside(charter_path, field, folder, relative)
            if not path.is_file():
                raise CharterError(charter_path, field, "file not found: {path}{hint}", path=path, hint=case_hint(path))
            preset = FORMAT_PRESETS[format_name]
            template = load_template(
                path,
                format_name,
                (preset.width, preset.height),
                charter_path,
                field,
                font,
                spec.typography.min_text_px,
                spec.ai_label.min_text_px,
                palette,
            )
            _check_logo_room(charter_path, field, template, logo_size(logo), spec.logo.min_width_share)
            sets[name][format_name] = template
    return sets


def load_charter(path: str | Path) -> Charter:
    """Load and fully validate a charter; raise :class:`CharterError` naming file and field."""
    charter_path = Path(path)
    if charter_path.is_dir():
        charter_path = charter_path / CHARTER_FILE
    data = read_yaml_mapping(charter_path, CharterError)
    spec = validate_model(CharterSpec, data, charter_path, CharterError)
    folder = charter_path.parent.resolve()
    logos = {}
    for variant in ("colour", "light", "dark"):
        logo_path = _inside(charter_path, f"logo.{variant}", folder, getattr(spec.logo, variant))
        _check_logo(charter_path, f"logo.{variant}", logo_path)
        logos[variant] = logo_path
    font = _inside(charter_path, "typography.font", folder, spec.typography.font)
    _check_font(charter_path, font)
    _check_label_glyphs(charter_path, spec.ai_label, font)
    licence = _inside(charter_path, "typography.font_licence", folder, spec.typography.font_licence)
    if not licence.is_file():
        raise CharterError(charter_path, "typography.font_licence", "file not found: {licence}", licence=licence)
    references = _inside(charter_path, "references", folder, spec.references)
    if not references.is_dir():
        raise CharterError(charter_path, "references", "folder not found: {references}", references=references)
    templates = _load_templates(charter_path, spec, folder, font, logos["colour"])
    return Charter(
        spec=spec,
        templates=templates,
        path=charter_path.resolve(),
        folder=folder,
        logo_colour=logos["colour"],
        logo_light=logos["light"],
        logo_dark=logos["dark"],
        font=font,
        references=references,
        hash=_charter_hash(charter_path, [*logos.values(), font]),
    )


CHARTER_SEARCH_DEPTH = 3  # a template's folder and two above it: where charters keep their templates


def charter_naming(template: Path) -> Path:
    """The charter that names ``template`` under its ``templates``: a ``charter.yaml`` in the
    template's folder or one of the two above it. A template is checked with its charter, which
    holds the font, palette and label it is held to."""
    template = template.resolve()
    folders = [template.parent, *template.parent.parents][:CHARTER_SEARCH_DEPTH]
    for folder in folders:
        candidate = folder / CHARTER_FILE
        if candidate.is_file() and template in _templates_named_in(candidate):
            return candidate
    raise CharterError(
        template,
        None,
        "no charter.yaml in {folders} names this template: name it under a charter's templates, then check it",
        folders=", ".join(str(folder) for folder in folders),
    )


def _templates_named_in(charter_path: Path) -> list[Path]:
    """The files a charter names as templates, read before it is validated (its own mistakes are
    said when it is loaded)."""
    sets = read_yaml_mapping(charter_path, CharterError).get("templates")
    if not isinstance(sets, dict):
        return []
    return [
        (charter_path.parent / file).resolve()
        for files in sets.values()
        if isinstance(files, dict)
        for file in files.values()
        if isinstance(file, str) and "\0" not in file  # a name no file can have: the charter's error
    ]
