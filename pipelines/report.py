"""The campaign's compliance report, for the communication officer who reads it at a glance.

``report.html``: in the campaign's language (French or English), the verdict first, the rules
and their thresholds spelt out, the pictures grouped by commune, each one click from its
full-size file; always the whole campaign, whatever a run rendered. ``report.csv``: the same
measurements, verdict first, for spreadsheets. ``Reports.table``: the rows Prefect's table
artifact shows, with plain headers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from pipelines import manifest
from pipelines.atomic import write_text_atomic
from pipelines.charter import Charter
from pipelines.database import Database
from pipelines.postprocess.logo import MIN_GRAPHIC_CONTRAST
from pipelines.postprocess.typography import MIN_TEXT_CONTRAST

TEMPLATES = Path(__file__).parent / "templates"
COLUMNS = (
    "verdict",
    "reasons",
    "commune",
    "format",
    "audience",
    "file",
    "palette_before",
    "palette_after",
    "logo",
    "logo_contrast",
    "label_px",
    "label_contrast",
    "text_px",
    "text_contrast",
    "notes",
)


class Thresholds(BaseModel):
    """The charter's limits the report states next to each measurement."""

    palette: float
    label_px: int
    logo_contrast: float = MIN_GRAPHIC_CONTRAST
    text_contrast: float = MIN_TEXT_CONTRAST

    @classmethod
    def of(cls, charter: Charter) -> Thresholds:
        spec = charter.spec
        return cls(palette=spec.palette_grading.min_conformity, label_px=spec.ai_label.min_text_px)


@dataclass(frozen=True)
class Wording:
    """The report's words in one language."""

    lang: str
    title: str
    subtitle: str
    all_ok: str
    to_review_one: str
    to_review_many: str
    counts_text: str
    review_first: str
    rules: str
    rule_palette: str
    rule_logo: str
    rule_label: str
    rule_text: str
    open_full: str
    compliant: str
    not_compliant: str
    measure_palette: str
    measure_logo: str
    measure_label: str
    measure_text: str
    headers: tuple[str, ...]  # verdict, reasons, commune, format, audience, palette, logo, label, text, file

    def to_review(self, count: int) -> str:
        return (self.to_review_one if count == 1 else self.to_review_many).format(count=count)

    def counts(self, total: int, communes: int) -> str:
        return self.counts_text.format(
            total=total, communes=communes, s="s" if total > 1 else "", c="s" if communes > 1 else ""
        )

    def legend(self, limits: Thresholds) -> list[str]:
        values = self._values(limits)
        return [rule.format(**values) for rule in (self.rule_palette, self.rule_logo, self.rule_label, self.rule_text)]

    def _values(self, limits: Thresholds) -> dict[str, str]:
        return {
            "palette": self.percent(limits.palette),
            "logo": self.ratio(limits.logo_contrast),
            "label_px": str(limits.label_px),
            "text": self.ratio(limits.text_contrast),
        }

    def percent(self, share: float) -> str:
        return f"{share:.0%}".replace("%", " %") if self.lang == "fr" else f"{share:.0%}"

    def ratio(self, value: float) -> str:
        text = f"{value:.1f}".rstrip("0").rstrip(".")
        return (text.replace(".", ",") if self.lang == "fr" else text) + ":1"


WORDINGS = {
    "fr": Wording(
        lang="fr",
        title="conformité à la charte",
        subtitle="Conformité à la charte graphique : toutes les images de la campagne.",
        all_ok="Toutes les images sont conformes",
        to_review_one="1 image à revoir",
        to_review_many="{count} images à revoir",
        counts_text="{total} image{s}, {communes} commune{c}",
        review_first="À revoir d’abord :",
        rules="Règles vérifiées sur chaque image",
        rule_palette="Palette : au moins {palette} des pixels proches d’une couleur de la charte (écart ΔE00).",
        rule_logo=(
            "Logo : contraste d’au moins {logo} avec le fond (WCAG, éléments graphiques), zone de protection libre."
        ),
        rule_label="Mention « Image générée par IA » : au moins {label_px} px, contraste d’au moins {text}.",
        rule_text=(
            "Nom de la commune et accroche : contraste d’au moins {text} (WCAG AA), sans débordement ni chevauchement."
        ),
        open_full="Ouvrir l’image en taille réelle",
        compliant="Conforme",
        not_compliant="À revoir",
        measure_palette="Palette {after} (min {palette}) ; avant étalonnage {before}",
        measure_logo="Logo {contrast} (min {logo}), {corner}",
        measure_label="Mention IA {px} px (min {label_px}), {contrast}",
        measure_text="Texte {px} px, {contrast} (min {text})",
        headers=(
            "Verdict",
            "Raisons",
            "Commune",
            "Format",
            "Public",
            "Palette",
            "Logo",
            "Mention IA",
            "Texte",
            "Fichier",
        ),
    ),
    "en": Wording(
        lang="en",
        title="brand charter compliance",
        subtitle="Compliance with the brand charter: every picture of the campaign.",
        all_ok="Every picture complies",
        to_review_one="1 picture to review",
        to_review_many="{count} pictures to review",
        counts_text="{total} picture{s}, {communes} commune{c}",
        review_first="Review first:",
        rules="Rules checked on every picture",
        rule_palette="Palette: at least {palette} of the pixels close to a charter colour (ΔE00 distance).",
        rule_logo="Logo: contrast of at least {logo} with its background (WCAG, graphics), clear zone free.",
        rule_label="“AI-generated” label: at least {label_px} px, contrast of at least {text}.",
        rule_text="Commune name and headline: contrast of at least {text} (WCAG AA), no overflow or overlap.",
        open_full="Open the full-size picture",
        compliant="Complies",
        not_compliant="To review",
        measure_palette="Palette {after} (min {palette}); before grading {before}",
        measure_logo="Logo {contrast} (min {logo}), {corner}",
        measure_label="AI label {px} px (min {label_px}), {contrast}",
        measure_text="Text {px} px, {contrast} (min {text})",
        headers=("Verdict", "Reasons", "Commune", "Format", "Audience", "Palette", "Logo", "AI label", "Text", "File"),
    ),
}
CORNERS = {
    "fr": {
        "top_left": "en haut à gauche",
        "top_right": "en haut à droite",
        "bottom_left": "en bas à gauche",
        "bottom_right": "en bas à droite",
    },
    "en": {
        "top_left": "top left",
        "top_right": "top right",
        "bottom_left": "bottom left",
        "bottom_right": "bottom right",
    },
}


@dataclass(frozen=True)
class Reports:
    csv: Path
    html: Path
    rows: list[dict[str, str]]  # report.csv's rows
    table: list[dict[str, str]]  # the table artifact's rows: plain headers, verdict first

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["verdict"] != "pass")


def _within_campaign(path: str, campaign_slug: str) -> str:
    return path.removeprefix(f"{campaign_slug}/")


def report_rows(entries: list[dict]) -> list[dict[str, str]]:
    """One row of plain strings per output, verdict first: report.csv."""
    rows = []
    for entry in entries:
        inputs, check = entry["inputs"], entry["compliance"]
        rows.append(
            {
                "verdict": "pass" if check["passed"] else "fail",
                "reasons": "; ".join(check["reasons"]),
                "commune": inputs["commune_name"],
                "format": inputs["format"],
                "audience": inputs["audience"],
                "file": entry["file"],
                "palette_before": f"{check['palette_before']:.0%}",
                "palette_after": f"{check['palette_after']:.0%}",
                "logo": f"{check['logo_corner']} / {check['logo_variant']}",
                "logo_contrast": f"{check['logo_contrast']:.1f}",
                "label_px": str(check["label_text_px"]),
                "label_contrast": f"{check['label_contrast']:.1f}",
                "text_px": str(check["text_px"]),
                "text_contrast": f"{check['text_contrast']:.1f}",
                "notes": "; ".join(check.get("notes", [])),
            }
        )
    return rows


def _measures(check: dict, words: Wording, limits: Thresholds) -> list[tuple[str, bool]]:
    """Each measurement in words with its threshold, and whether it is met."""
    values = words._values(limits)
    corner = CORNERS[words.lang].get(check["logo_corner"], check["logo_corner"])
    return [
        (
            words.measure_palette.format(
                after=words.percent(check["palette_after"]), before=words.percent(check["palette_before"]), **values
            ),
            check["palette_after"] >= limits.palette,
        ),
        (
            words.measure_logo.format(contrast=words.ratio(check["logo_contrast"]), corner=corner, **values),
            check["logo_contrast"] >= limits.logo_contrast and check["logo_clear_zone"],
        ),
        (
            words.measure_label.format(
                px=check["label_text_px"], contrast=words.ratio(check["label_contrast"]), **values
            ),
            check["label_text_px"] >= limits.label_px and check["label_contrast"] >= limits.text_contrast,
        ),
        (
            words.measure_text.format(px=check["text_px"], contrast=words.ratio(check["text_contrast"]), **values),
            check["text_contrast"] >= limits.text_contrast and not check["text_overflow"],
        ),
    ]


def _table(entries: list[dict], words: Wording, limits: Thresholds, campaign_slug: str) -> list[dict[str, str]]:
    rows = []
    for entry in entries:
        inputs, check = entry["inputs"], entry["compliance"]
        measures = [line for line, _ in _measures(check, words, limits)]
        values = (
            ("✔ " + words.compliant) if check["passed"] else ("✖ " + words.not_compliant),
            "; ".join(check["reasons"] + check.get("notes", [])),
            inputs["commune_name"],
            inputs["format"],
            inputs["audience"],
            *measures,
            _within_campaign(entry["file"], campaign_slug),
        )
        rows.append(dict(zip(words.headers, values, strict=True)))
    return rows


def _cards(entries: list[dict], words: Wording, limits: Thresholds, campaign_slug: str) -> dict[str, list[dict]]:
    """The pictures by commune, in name order; each card's links are relative to the report."""
    communes: dict[str, list[dict]] = {}
    for entry in sorted(entries, key=lambda e: (e["inputs"]["commune_name"], e["inputs"]["format"], e["file"])):
        inputs, check = entry["inputs"], entry["compliance"]
        communes.setdefault(inputs["commune_name"], []).append(
            {
                "anchor": Path(entry["file"]).stem,
                "file": _within_campaign(entry["file"], campaign_slug),
                "picture": _within_campaign(entry["file"], campaign_slug),
                "thumbnail": _within_campaign(entry["thumbnail"], campaign_slug),
                "commune": inputs["commune_name"],
                "format": inputs["format"],
                "audience": inputs["audience"],
                "passed": check["passed"],
                "reasons": check["reasons"],
                "notes": check.get("notes", []),
                "measures": _measures(check, words, limits),
            }
        )
    return communes


def _html(campaign_name: str, words: Wording, limits: Thresholds, communes: dict[str, list[dict]]) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    cards = [card for group in communes.values() for card in group]
    failing = [card for card in cards if not card["passed"]]
    return environment.get_template("report.html").render(
        lang=words.lang,
        t=words,
        thresholds=limits,
        campaign_name=campaign_name,
        communes=communes,
        total=len(cards),
        failed=len(failing),
        failing=failing,
    )


def write_reports(
    database: Database,
    output_root: Path,
    campaign_slug: str,
    campaign_name: str,
    keys: list[str],
    limits: Thresholds,
) -> Reports:
    """Write report.csv and report.html for the outputs of ``keys`` (the whole campaign) the record holds."""
    recorded = manifest.entries(database, campaign_slug)
    entries = [recorded[key] for key in keys if key in recorded]
    language = entries[0]["inputs"].get("language", "fr") if entries else "fr"
    words = WORDINGS.get(language, WORDINGS["en"])
    rows = report_rows(entries)
    folder = output_root / campaign_slug
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    csv_path, html_path = folder / "report.csv", folder / "report.html"
    write_text_atomic(csv_path, buffer.getvalue())
    # Links are relative to the report, so the folder can be moved, or served as is by the studio.
    communes = _cards(entries, words, limits, campaign_slug)
    write_text_atomic(html_path, _html(campaign_name, words, limits, communes))
    return Reports(csv=csv_path, html=html_path, rows=rows, table=_table(entries, words, limits, campaign_slug))
