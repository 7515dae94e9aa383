"""Per-campaign compliance report: report.csv and report.html (contact sheet and table)."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

from pipelines import manifest
from pipelines.atomic import write_text_atomic
from pipelines.database import Database

COLUMNS = (
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
    "passed",
    "reasons",
)


@dataclass(frozen=True)
class Reports:
    csv: Path
    html: Path
    rows: list[dict[str, str]]


def _identity(inputs: dict, entry: dict) -> dict[str, str]:
    return {
        "commune": inputs["commune_name"],
        "format": inputs["format"],
        "audience": inputs["audience"],
        "file": entry["file"],
    }


def report_rows(entries: list[dict]) -> list[dict[str, str]]:
    """One row of plain strings per manifest entry, in the report's column order."""
    rows = []
    for entry in entries:
        inputs, check = entry["inputs"], entry["compliance"]
        rows.append(
            _identity(inputs, entry)
            | {
                "palette_before": f"{check['palette_before']:.0%}",
                "palette_after": f"{check['palette_after']:.0%}",
                "logo": f"{check['logo_corner']} / {check['logo_variant']}",
                "logo_contrast": f"{check['logo_contrast']:.1f}",
                "label_px": str(check["label_text_px"]),
                "label_contrast": f"{check['label_contrast']:.1f}",
                "text_px": str(check["text_px"]),
                "text_contrast": f"{check['text_contrast']:.1f}",
                "passed": "yes" if check["passed"] else "no",
                "reasons": "; ".join(check["reasons"] + check.get("notes", [])),
            }
        )
    return rows


def _html(campaign_name: str, rows: list[dict[str, str]], thumbnails: list[str]) -> str:
    failed = sum(1 for row in rows if row["passed"] == "no")
    header = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = []
    for row, thumbnail in zip(rows, thumbnails, strict=True):
        cells = "".join(f"<td>{html.escape(row[column])}</td>" for column in COLUMNS)
        status = "fail" if row["passed"] == "no" else "pass"
        image = f'<img src="{html.escape(thumbnail)}" alt="{html.escape(row["file"])}" loading="lazy">'
        body.append(f'<tr class="{status}"><td>{image}</td>{cells}</tr>')
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{html.escape(campaign_name)} — conformité</title>
<style>
body {{ font-family: sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: middle; }}
img {{ max-width: 160px; max-height: 160px; }}
tr.fail {{ background: #fde8e4; }}
</style></head><body>
<h1>{html.escape(campaign_name)}</h1>
<p>{len(rows)} images, {len(rows) - failed} conformes, {failed} non conformes.</p>
<table><thead><tr><th>aperçu</th>{header}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""


def write_reports(
    database: Database, output_root: Path, campaign_slug: str, campaign_name: str, keys: list[str]
) -> Reports:
    """Write report.csv and report.html for the outputs of ``keys`` that the record holds."""
    recorded = manifest.entries(database, campaign_slug)
    entries = [recorded[key] for key in keys if key in recorded]
    rows = report_rows(entries)
    folder = output_root / campaign_slug
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    csv_path, html_path = folder / "report.csv", folder / "report.html"
    write_text_atomic(csv_path, buffer.getvalue())
    # Thumbnails are referenced relative to the report, so the folder can be moved or served as is.
    thumbnails = [str(Path(entry["thumbnail"]).relative_to(campaign_slug)) for entry in entries]
    write_text_atomic(html_path, _html(campaign_name, rows, thumbnails))
    return Reports(csv=csv_path, html=html_path, rows=rows)
