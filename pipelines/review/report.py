"""The campaign's compliance report, for the communication officer who reads it at a glance.

``report.html``: in the campaign's first language (French or English), the verdict first, what
to review first (outliers in style, non-compliant pictures, pictures flagged for their prompt or
texts), the rules and their thresholds spelt out, the pictures grouped by commune with their
audience, language and photo credit, each one click from its full-size file, and the jobs held
back; always the whole campaign, whatever a run rendered. ``report.csv``: the same measurements,
verdict first, for spreadsheets. ``Reports.table``: the rows Prefect's table artifact shows,
with plain headers, those to review first (at most ``TABLE_ROWS``). ``coherence.json``: each
output's style distance, for the review pages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from visuels._internal.atomic import write_text_atomic
from visuels._internal.collector import cycles_collected_after
from visuels._internal.i18n import WrittenCount
from visuels._internal.i18n import words as i18n_words
from visuels.engine.export import edges_path
from visuels.inputs.charter import Charter
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.planning import fairness
from visuels.postprocess import findings
from visuels.postprocess.coherence import (
    Coherence,
    StyleBaseline,
    StyleSignature,
    assess_campaign,
    campaign_baseline,
    write_coherence,
)
from visuels.postprocess.logo import MIN_GRAPHIC_CONTRAST
from visuels.postprocess.typography import MIN_TEXT_CONTRAST
from visuels.record import ledger, manifest
from visuels.record.database import Database

if TYPE_CHECKING:
    from visuels.planning.plan import RenderPlan

TEMPLATES = Path(__file__).parent / "templates"
# A report page's pictures at most (about 2 MB of HTML a browser opens at once): a larger campaign's
# report is report.html and report-2.html, report-3.html…, each with whole communes in order.
PAGE_PICTURES = 2000
COLUMNS = (
    "verdict",
    "reasons",
    "commune",
    "insee",
    "format",
    "audience",
    "language",
    "file",
    "palette_before",
    "palette_after",
    "logo",
    "logo_contrast",
    "label_px",
    "label_contrast",
    "text_px",
    "text_contrast",
    "style_distance",
    "off_style",
    "flagged",
    "photo",
    "notes",
)


class Thresholds(BaseModel):
    """The charter's limits the report states next to each measurement."""

    palette: float
    label_px: int
    style_distance: float
    logo_contrast: float = MIN_GRAPHIC_CONTRAST
    text_contrast: float = MIN_TEXT_CONTRAST

    @classmethod
    def of(cls, charter: Charter) -> Thresholds:
        spec = charter.spec
        return cls(
            palette=spec.palette_grading.min_conformity,
            label_px=spec.ai_label.min_text_px,
            style_distance=spec.coherence.max_distance,
        )


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
    earlier: str  # "{count}": recorded pictures the campaign no longer has (it changed since)
    review_first: str
    to_look_at: str  # "{count}", "{reasons}": off-style or flagged pictures, compliant or not
    why_off_style: (
        str  # "{count}" ("{s}": a plural's): the same words as the cards' flags, so the headline tells their story
    )
    why_flagged: str
    why_failing: str
    and_more: str  # "{count}", "{s}": beyond the first ones listed
    pages: str  # before the links to a large campaign's report pages
    rules: str
    rule_palette: str
    rule_logo: str
    rule_label: str
    rule_text: str
    rule_style: str  # "{style}": the limit; "{baseline}": what the campaign's baseline is
    baseline_first: str  # "{count}", "{date}": fixed by the campaign's first report
    baseline_first_one: str  # "{date}": by a first report of one picture
    baseline_designer: str  # "{count}", "{date}": fixed again by the designer
    baseline_designer_one: str  # "{date}": from one picture
    open_full: str
    alt_text: str
    off_style: str  # "{distance}" "{limit}"
    flagged: str
    photo: str  # "{credit}"
    edges: str
    derived: str  # before the retouched and edited files made from a picture
    cropped: str  # "{format}": a format cropped from the key visual
    outpainted: str  # "{format}": a format outpainted from the key visual
    held_title: str
    held_intro: str
    compliant: str
    not_compliant: str
    measure_palette: str
    measure_logo: str
    measure_label: str
    label_crops: str  # after measure_label: which centred crops keep the label
    measure_text: str
    headers: tuple[str, ...]  # verdict, reasons, commune, format, audience, language, palette, logo, label, text, file

    def reasons_to_look(self, cards: list[dict]) -> str:
        """Why the pictures to look at first are there, counted per reason (none left out)."""
        counts = (
            (self.why_off_style, sum(1 for card in cards if card["outlier"])),
            (self.why_failing, sum(1 for card in cards if not card["passed"])),
            (self.why_flagged, sum(1 for card in cards if card["terms_flagged"])),
        )
        return ", ".join(
            wording.format(count=self.count(count), s=self._s(count)) for wording, count in counts if count
        )

    def findings(self, recorded: list[str]) -> list[str]:
        """The charter checks' reasons or notes, recorded in English, in the report's language."""
        return [findings.said(finding, i18n_words(self.lang)) for finding in recorded]

    def listed(self, said: list[str]) -> str:
        """Texts one after the other, separated as the catalogue's "{first}; {rest}" says (French
        spaces its semicolons)."""
        return i18n_words(self.lang)("{first}; {rest}", first="", rest="").join(said)

    def flags(self, recorded: list[str]) -> list[str]:
        """The bias review's flags of a job, recorded in English, in the report's language."""
        return [fairness.said(flag, i18n_words(self.lang)) for flag in recorded]

    def more(self, count: int) -> str:
        """``count`` more to look at than the list shows."""
        return self.and_more.format(count=self.count(count), s=self._s(count))

    def to_review(self, count: int) -> str:
        return (self.to_review_one if self._singular(count) else self.to_review_many).format(count=self.count(count))

    def counts(self, total: int, communes: int) -> str:
        values = {"total": self.count(total), "communes": self.count(communes)}
        return self.counts_text.format(**values, s=self._s(total), c=self._s(communes))

    def count(self, count: int) -> WrittenCount:
        """A count as this language writes it: "106,704", "106 704"."""
        return WrittenCount(count, self.lang)

    def _singular(self, count: int) -> bool:
        return i18n_words(self.lang).singular(count)

    def _s(self, count: int) -> str:
        """The plural's "s", where this language puts one after ``count``."""
        return "" if self._singular(count) else "s"

    def legend(self, limits: Thresholds, baseline: StyleBaseline | None) -> list[str]:
        values = self._values(limits) | {"baseline": self.baseline(baseline)}
        rules = (self.rule_palette, self.rule_logo, self.rule_label, self.rule_text, self.rule_style)
        return [rule.format(**values) for rule in rules]

    def baseline(self, baseline: StyleBaseline | None) -> str:
        """Which baseline the campaign's pictures are measured against, and since when."""
        if baseline is None:
            return ""
        one = self._singular(baseline.pictures)
        if baseline.fixed_by == "first report":
            wording = self.baseline_first_one if one else self.baseline_first
        else:
            wording = self.baseline_designer_one if one else self.baseline_designer
        day = baseline.fixed_at[:10]
        date = "/".join(reversed(day.split("-"))) if self.lang == "fr" else day
        return wording.format(count=self.count(baseline.pictures), date=date)

    def _values(self, limits: Thresholds) -> dict[str, str]:
        return {
            "palette": self.percent(limits.palette),
            "logo": self.ratio(limits.logo_contrast),
            "label_px": str(limits.label_px),
            "text": self.ratio(limits.text_contrast),
            "style": self.number(limits.style_distance),
        }

    def number(self, value: float) -> str:
        text = f"{value:.1f}"
        return text.replace(".", ",") if self.lang == "fr" else text

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
        all_ok="Toutes les images sont conformes à la charte",
        to_review_one="{count} image à revoir",
        to_review_many="{count} images à revoir",
        counts_text="{total} image{s}, {communes} commune{c}",
        earlier="Versions antérieures, que la campagne n’a plus depuis un changement de ses textes, communes"
        ' ou réglages : {count}, gardées dans le dossier et le registre (manifest.json : "current": false).',
        review_first="À revoir d’abord :",
        to_look_at="{count} à regarder en premier : {reasons}",
        why_off_style="{count} hors ton de la campagne",
        why_flagged="{count} signalée{s} pour relecture",
        why_failing="{count} non conforme{s}",
        and_more="et {count} autre{s} (marquée{s} ⚑ ci-dessous)",
        pages="Pages du rapport, par commune :",
        rules="Règles vérifiées sur chaque image",
        rule_palette="Palette : au moins {palette} des pixels proches d’une couleur de la charte (écart ΔE00).",
        rule_logo=(
            "Logo : contraste d’au moins {logo} avec le fond (WCAG, éléments graphiques), zone de protection libre."
        ),
        rule_label="Mention « Image générée par IA » : au moins {label_px} px, contraste d’au moins {text}.",
        rule_text=(
            "Nom de la commune et accroche : contraste d’au moins {text} (WCAG AA), sans débordement ni chevauchement."
        ),
        rule_style=(
            "Cohérence : couleurs à moins de {style} (écart de style) de la référence de la campagne,"
            " {baseline} ; au-delà, l’image est signalée « hors ton » et revue en premier."
            " Le rendu d’autres communes ne la change pas : la commande « visuels baseline » la fixe à nouveau."
        ),
        baseline_first="la médiane des {count} images de son premier rapport, fixée le {date}",
        baseline_first_one="l’image de son premier rapport, fixée le {date}",
        baseline_designer="la médiane de {count} images choisies par la graphiste, fixée le {date}",
        baseline_designer_one="une image choisie par la graphiste, fixée le {date}",
        open_full="Ouvrir l’image en taille réelle",
        alt_text="Texte alternatif",
        off_style="Hors ton de la campagne : écart {distance} (max {limit})",
        flagged="Signalée pour relecture : {reasons}",
        photo="D’après la photo de {credit}",
        edges="contours",
        derived="Versions retouchées ou modifiées :",
        cropped="Recadrée du visuel clé ({format})",
        outpainted="Étendue du visuel clé ({format}) par le modèle",
        held_title="Non produites",
        held_intro="Ces images ne sont pas produites : leur prompt ou leurs textes contiennent un terme interdit,"
        " ou sensible sans accord de la campagne (render_flagged).",
        compliant="Conforme",
        not_compliant="À revoir",
        measure_palette="Palette {after} (min {palette}) ; avant étalonnage {before}",
        measure_logo="Logo {contrast} (min {logo}), {corner}",
        measure_label="Mention IA {px} px (min {label_px}), {contrast}",
        label_crops=" ; recadrages centrés {crops}",
        measure_text="Texte {px} px, {contrast} (min {text})",
        headers=(
            "Verdict",
            "Raisons",
            "Commune",
            "Format",
            "Public",
            "Langue",
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
        all_ok="Every picture complies with the charter",
        to_review_one="{count} picture to review",
        to_review_many="{count} pictures to review",
        counts_text="{total} picture{s}, {communes} commune{c}",
        earlier="Earlier versions the campaign no longer has since its texts, communes or settings changed:"
        ' {count}, kept in the folder and the record (manifest.json: "current": false).',
        review_first="Review first:",
        to_look_at="{count} to look at first: {reasons}",
        why_off_style="{count} off the campaign's style",
        why_flagged="{count} flagged for review",
        why_failing="{count} not compliant",
        and_more="and {count} more (marked ⚑ below)",
        pages="The report's pages, by commune:",
        rules="Rules checked on every picture",
        rule_palette="Palette: at least {palette} of the pixels close to a charter colour (ΔE00 distance).",
        rule_logo="Logo: contrast of at least {logo} with its background (WCAG, graphics), clear zone free.",
        rule_label="“AI-generated” label: at least {label_px} px, contrast of at least {text}.",
        rule_text="Commune name and headline: contrast of at least {text} (WCAG AA), no overflow or overlap.",
        rule_style=(
            "Coherence: colours within {style} (style distance) of the campaign's baseline, {baseline};"
            " beyond, the picture is flagged off-tone and reviewed first. Rendering other communes does"
            " not change it: the command “visuels baseline” fixes it again."
        ),
        baseline_first="the median of the {count} pictures of its first report, fixed on {date}",
        baseline_first_one="the one picture of its first report, fixed on {date}",
        baseline_designer="the median of {count} pictures the designer chose, fixed on {date}",
        baseline_designer_one="a picture the designer chose, fixed on {date}",
        open_full="Open the full-size picture",
        alt_text="Alt text",
        off_style="Off the campaign's style: distance {distance} (max {limit})",
        flagged="Flagged for review: {reasons}",
        photo="From a photo by {credit}",
        edges="edges",
        derived="Retouched or edited versions:",
        cropped="Cropped from the key visual ({format})",
        outpainted="Extended from the key visual ({format}) by the model",
        held_title="Not rendered",
        held_intro="These pictures are not rendered: their prompt or texts hold a banned term, or a sensitive"
        " one the campaign does not allow (render_flagged).",
        compliant="Complies",
        not_compliant="To review",
        measure_palette="Palette {after} (min {palette}); before grading {before}",
        measure_logo="Logo {contrast} (min {logo}), {corner}",
        measure_label="AI label {px} px (min {label_px}), {contrast}",
        label_crops="; centred crops {crops}",
        measure_text="Text {px} px, {contrast} (min {text})",
        headers=(
            "Verdict",
            "Reasons",
            "Commune",
            "Format",
            "Audience",
            "Language",
            "Palette",
            "Logo",
            "AI label",
            "Text",
            "File",
        ),
    ),
}
CORNERS = {
    "fr": {
        "top_left": "en haut à gauche",
        "top_right": "en haut à droite",
        "bottom_left": "en bas à gauche",
        "bottom_right": "en bas à droite",
        "template": "place du gabarit",  # a layout template's logo slot
    },
    "en": {
        "top_left": "top left",
        "top_right": "top right",
        "bottom_left": "bottom left",
        "bottom_right": "bottom right",
        "template": "template's place",
    },
}


# The compliance table's rows at most (Prefect's table artifact, which shows them whole): those to
# review first. A region's 100,000 pictures are the report's and report.csv's to list.
TABLE_ROWS = 1000


@dataclass(frozen=True)
class Reports:
    csv: Path
    html: Path
    rows: list[dict[str, str]]  # report.csv's rows
    table: list[dict[str, str]]  # the table artifact's rows, those to review first: plain headers, verdict first

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["verdict"] != "pass")


def to_review_first(rows: list[dict[str, str]]) -> list[int]:
    """The rows' positions, the pictures not compliant first, then those off the campaign's style
    or flagged, then the others, each in the campaign's order."""
    attention = [(row["verdict"] == "pass", row["off_style"] != "yes" and not row["flagged"]) for row in rows]
    return sorted(range(len(rows)), key=lambda index: attention[index])


def _within_campaign(path: str, campaign_slug: str) -> str:
    return path.removeprefix(f"{campaign_slug}/")


def _photo_credit(inputs: dict) -> str:
    photo = inputs.get("photo") or {}
    return photo.get("credit", "")


def report_rows(entries: list[dict], coherence: dict[str, Coherence]) -> list[dict[str, str]]:
    """One row of plain strings per output, verdict first: report.csv."""
    rows = []
    for entry in entries:
        inputs, check = entry["inputs"], entry["compliance"]
        style = coherence.get(entry["key"])
        rows.append(
            {
                "verdict": "pass" if check["passed"] else "fail",
                "reasons": "; ".join(check["reasons"]),
                "commune": entry["commune"],
                "insee": inputs.get("commune_insee", ""),
                "format": inputs["format"],
                "audience": inputs["audience"],
                "language": inputs.get("language", ""),
                "file": entry["file"],
                "palette_before": f"{check['palette_before']:.0%}",
                "palette_after": f"{check['palette_after']:.0%}",
                "logo": f"{check['logo_corner']} / {check['logo_variant']}",
                "logo_contrast": f"{check['logo_contrast']:.1f}",
                "label_px": str(check["label_text_px"]),
                "label_contrast": f"{check['label_contrast']:.1f}",
                "text_px": str(check["text_px"]),
                "text_contrast": f"{check['text_contrast']:.1f}",
                "style_distance": f"{style.distance:.1f}" if style else "",
                "off_style": "yes" if style and style.outlier else "no",
                "flagged": "; ".join(inputs.get("review", [])),
                "photo": _photo_credit(inputs),
                "notes": "; ".join(check.get("notes", [])),
            }
        )
    return rows


def _crops(kept: dict[str, bool] | None, words: Wording) -> str:
    """Which centred crops keep the label, "1:1 ✔ 4:5 ✔ 9:16 ✖ 16:9 ✖" (older records say nothing)."""
    if not kept:
        return ""
    marks = " ".join(f"{ratio} {'✔' if inside else '✖'}" for ratio, inside in kept.items())
    return words.label_crops.format(crops=marks)


def _measures(check: dict, words: Wording, limits: Thresholds) -> list[tuple[str, bool]]:
    """Each measurement in words with its threshold, and whether it is met."""
    values = words._values(limits)
    corner = CORNERS[words.lang].get(check["logo_corner"], check["logo_corner"])
    # A template's large text needs 3:1 (WCAG), and the record says so; older records: the limit.
    text_required = check.get("text_required_contrast", limits.text_contrast)
    required = words.ratio(text_required)
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
            )
            + _crops(check.get("label_crops"), words),
            check["label_text_px"] >= limits.label_px and check["label_contrast"] >= limits.text_contrast,
        ),
        (
            words.measure_text.format(
                px=check["text_px"], contrast=words.ratio(check["text_contrast"]), **(values | {"text": required})
            ),
            check["text_contrast"] >= text_required and not check["text_overflow"],
        ),
    ]


def _table(entries: list[dict], words: Wording, limits: Thresholds, campaign_slug: str) -> list[dict[str, str]]:
    rows = []
    for entry in entries:
        inputs, check = entry["inputs"], entry["compliance"]
        measures = [line for line, _ in _measures(check, words, limits)]
        said = words.findings(check["reasons"] + check.get("notes", [])) + words.flags(inputs.get("review", []))
        values = (
            ("✔ " + words.compliant) if check["passed"] else ("✖ " + words.not_compliant),
            words.listed(said),
            entry["commune"],
            inputs["format"],
            inputs["audience"],
            inputs.get("language", ""),
            *measures,
            _within_campaign(entry["file"], campaign_slug),
        )
        rows.append(dict(zip(words.headers, values, strict=True)))
    return rows


def _card(
    entry: dict,
    style: Coherence | None,
    words: Wording,
    limits: Thresholds,
    campaign_slug: str,
    derivatives: list[dict],
) -> dict:
    """One picture as the report shows it, with the files retouched or edited from it; its links
    are relative to the report."""
    inputs, check = entry["inputs"], entry["compliance"]
    flags = []
    if style is not None and style.outlier:
        flags.append(
            words.off_style.format(distance=words.number(style.distance), limit=words.number(limits.style_distance))
        )
    if inputs.get("review"):
        flags.append(words.flagged.format(reasons=words.listed(words.flags(inputs["review"]))))
    credit = _photo_credit(inputs)
    return {
        "anchor": Path(entry["file"]).stem,
        "file": _within_campaign(entry["file"], campaign_slug),
        "picture": _within_campaign(entry["file"], campaign_slug),
        "thumbnail": _within_campaign(entry["thumbnail"], campaign_slug),
        "edges": _within_campaign(edges_path(campaign_slug, entry["key"]), campaign_slug)
        if inputs.get("photo")
        else None,
        "commune": entry["commune"],
        "format": inputs["format"],
        "audience": inputs["audience"],
        "language": inputs.get("language", ""),
        "alt_text": inputs.get("alt_text", ""),  # older records: none
        "photo": words.photo.format(credit=credit) if credit else "",
        "key_visual": _declined(inputs.get("key_visual"), words),
        "passed": check["passed"],
        "reasons": words.findings(check["reasons"]),
        "notes": words.findings(check.get("notes", [])),
        "flags": flags,
        "outlier": style is not None and style.outlier,
        "terms_flagged": bool(inputs.get("review")),
        "distance": style.distance if style else 0.0,
        "measures": _measures(check, words, limits),
        "derivatives": [_derived(row, campaign_slug) for row in derivatives],
    }


def _derived(row: dict, campaign_slug: str) -> dict:
    """A retouched or edited file: linked when it lies in the campaign's folder (where the studio
    writes them), named only when it was written elsewhere."""
    inside = row["file"].startswith(f"{campaign_slug}/")
    return {
        "name": Path(row["file"]).name,
        "link": _within_campaign(row["file"], campaign_slug) if inside else None,
        "what": row["prompt"],
    }


def _declined(key_visual: dict | None, words: Wording) -> str:
    """How a format of a key_visual campaign came from its key visual; empty for a native one."""
    if not key_visual:
        return ""
    wording = words.cropped if key_visual["method"] == "crop" else words.outpainted
    return wording.format(format=key_visual["format"])


def review_order(cards: list[dict]) -> list[dict]:
    """What to review first: outliers in style (farthest first), then non-compliant, then flagged pictures."""
    outliers = sorted((card for card in cards if card["outlier"]), key=lambda card: -card["distance"])
    failing = [card for card in cards if not card["passed"] and not card["outlier"]]
    flagged = [card for card in cards if card["flags"] and card["passed"] and not card["outlier"]]
    return outliers + failing + flagged


@dataclass(frozen=True)
class ReportPage:
    """One page of the report: its file name and the communes it shows, first to last."""

    name: str
    communes: list[str]


def _pages(communes: dict[str, dict[str, list[dict]]], most: int) -> list[ReportPage]:
    """The report's pages: whole communes in order, at most ``most`` pictures a page (a commune
    with more has a page of its own); one page, report.html, for most campaigns."""
    pages: list[list[str]] = [[]]
    count = 0
    for commune, rows in communes.items():
        size = sum(len(series) for series in rows.values())
        if pages[-1] and count + size > most:
            pages.append([])
            count = 0
        pages[-1].append(commune)
        count += size
    return [
        ReportPage("report.html" if number == 1 else f"report-{number}.html", names)
        for number, names in enumerate(pages, start=1)
    ]


def _html_pages(
    campaign_name: str,
    words: Wording,
    limits: Thresholds,
    baseline: StyleBaseline | None,
    cards: list[dict],
    held: list[dict],
    earlier: int,
    most: int,
) -> Iterator[tuple[str, str]]:
    """The report's HTML pages, each as (file name, page), made one at a time: report.html first
    (the verdict, what to review first, the pictures held back), then, for a large campaign, the
    pages it links to."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    # Per commune, one row per audience and language: its formats side by side, as one series.
    communes: dict[str, dict[str, list[dict]]] = {}
    formats = list(FORMAT_PRESETS)
    for card in sorted(cards, key=lambda card: (card["commune"], card["audience"], card["language"], card["file"])):
        row = f"{card['audience']} · {card['language']}" if card["language"] else card["audience"]
        communes.setdefault(card["commune"], {}).setdefault(row, []).append(card)
    for rows in communes.values():
        for series in rows.values():
            # The key visual first, then the formats declined from it.
            series.sort(key=lambda card: (bool(card["key_visual"]), formats.index(card["format"])))
    pages = _pages(communes, most)
    page_of = {commune: page.name for page in pages for commune in page.communes}
    for card in cards:  # the pictures to review first link to their card, wherever its page
        card["href"] = f"{page_of[card['commune']] if len(pages) > 1 else ''}#{card['anchor']}"
    template = environment.get_template("report.html")
    first = review_order(cards)
    failed = sum(1 for card in cards if not card["passed"])
    for page in pages:
        yield (
            page.name,
            template.render(
                lang=words.lang,
                t=words,
                thresholds=limits,
                baseline=baseline,
                campaign_name=campaign_name,
                communes={commune: communes[commune] for commune in page.communes},
                total=len(cards),
                commune_count=len(communes),
                failed=failed,
                first=first if page is pages[0] else [],
                cards=cards,
                held=held if page is pages[0] else [],
                earlier=earlier,
                pages=pages if len(pages) > 1 else [],
                current=page.name,
            ),
        )


def commune_code(inputs: dict) -> str:
    """What tells a record's commune from another of its name: its INSEE code (its name in records
    made before they kept the code)."""
    return inputs.get("commune_insee") or inputs.get("commune_name", "")


def commune_labels(communes: Iterable[tuple[str, str]]) -> dict[str, str]:
    """How the report names each commune, by INSEE code, from (code, name) pairs: its name, and its
    code after it where communes of one name meet (Occitanie has four Aigues-Vives, 164 names
    shared), as their folders are named."""
    codes: dict[str, set[str]] = {}
    for code, name in communes:
        codes.setdefault(name, set()).add(code)
    return {code: name if len(same) == 1 else f"{name} ({code})" for name, same in codes.items() for code in same}


def _held(plan: RenderPlan, words: Wording, labels: dict[str, str]) -> list[dict]:
    return [
        {
            "commune": labels[job.commune_insee],
            "audience": job.audience,
            "language": job.language,
            "format": job.format,
            "reasons": words.listed(words.flags(job.banned + job.review)),
        }
        for job in plan.held
    ]


# What the report reads of a record's inputs: the rest (prompts, hashes, settings) it never shows.
REPORTED_INPUTS = (
    "commune_insee", "commune_name", "format", "audience", "language", "photo", "review", "alt_text", "key_visual"
)  # fmt: skip


def _reported(key: str, entry: dict) -> dict:
    """The part of a record the report reads, with its job key."""
    inputs = entry["inputs"]
    return {
        "key": key,
        "file": entry["file"],
        "thumbnail": entry["thumbnail"],
        "compliance": entry["compliance"],
        "inputs": {name: inputs[name] for name in REPORTED_INPUTS if name in inputs},
    }


def _campaign_entries(database: Database, plan: RenderPlan) -> tuple[list[dict], int]:
    """What the report reads of the records of the campaign's jobs, in the plan's order; and how
    many earlier records the campaign has, superseded by a change to it (kept, recorded)."""
    wanted, reported, earlier = set(plan.campaign_keys), {}, 0
    for key, entry in manifest.each_entry(database, plan.campaign_slug):
        if key in wanted:
            reported[key] = _reported(key, entry)
        else:
            earlier += 1
    return [reported[key] for key in plan.campaign_keys if key in reported], earlier


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@cycles_collected_after()  # a region's report holds its 106,704 records
def write_reports(database: Database, output_root: Path, plan: RenderPlan, charter: Charter) -> Reports:
    """Write report.csv, report.html and coherence.json for the outputs of the whole campaign the record holds."""
    entries, earlier = _campaign_entries(database, plan)
    named = [(commune_code(entry["inputs"]), entry["inputs"]["commune_name"]) for entry in entries]
    labels = commune_labels([*named, *((job.commune_insee, job.commune_name) for job in plan.held)])
    for entry, (code, _) in zip(entries, named, strict=True):
        entry["commune"] = labels[code]
    signatures = {
        entry["key"]: StyleSignature.model_validate(entry["compliance"]["style"])
        for entry in entries
        if entry["compliance"].get("style")
    }
    folder = output_root / plan.campaign_slug
    baseline = campaign_baseline(folder, list(signatures.values()))
    coherence = assess_campaign(signatures, charter, baseline)
    words = WORDINGS.get(plan.language, WORDINGS["en"])
    limits = Thresholds.of(charter)
    rows = report_rows(entries, coherence)
    csv_path, html_path = folder / "report.csv", folder / "report.html"
    write_text_atomic(csv_path, _csv_text(rows))
    write_coherence(folder, coherence)
    # Links are relative to the report, so the folder can be moved, or served as is by the studio.
    made = ledger.derivatives(database, [entry["key"] for entry in entries])
    cards = [
        _card(entry, coherence.get(entry["key"]), words, limits, plan.campaign_slug, made.get(entry["key"], []))
        for entry in entries
    ]
    held = _held(plan, words, labels)
    written = set()
    for name, page in _html_pages(plan.campaign_name, words, limits, baseline, cards, held, earlier, PAGE_PICTURES):
        write_text_atomic(folder / name, page)  # one page held at a time: a region's weigh 190 MB
        written.add(name)
    for stale in folder.glob("report-*.html"):  # pages of a larger report than this one
        if stale.name not in written:
            stale.unlink()
    first = [entries[index] for index in to_review_first(rows)[:TABLE_ROWS]]
    return Reports(csv=csv_path, html=html_path, rows=rows, table=_table(first, words, limits, plan.campaign_slug))
