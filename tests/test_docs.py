"""The documentation a reader follows: links between pages lead somewhere, the configuration page
is the settings' own, and the README stays a front page."""

from __future__ import annotations

import re
from pathlib import Path

from visuels.config import CONFIGURATION_PAGE, configuration_table

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "SECURITY.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_link_between_pages_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # not code blocks
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_the_configuration_page_is_generated_from_the_settings() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == CONFIGURATION_PAGE.format(table=configuration_table()), (
        "docs/configuration.md differs from visuels.config.Settings: run"
        " `.venv/bin/python -m visuels.config > docs/configuration.md`"
    )


def test_every_setting_the_code_reads_is_in_the_settings() -> None:
    from visuels.config import Settings

    declared = {f"VISUELS_{name.upper()}" for name in Settings.model_fields}
    read = set()
    for folder in ("pipelines", "flows"):
        for path in (REPO / folder).rglob("*.py"):
            read |= set(re.findall(r"\bVISUELS_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    assert read - declared == set()


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) < 12_000
    for page in ("designers", "commands", "operations", "compliance", "architecture", "configuration", "development"):
        assert f"(docs/{page}.md)" in readme
