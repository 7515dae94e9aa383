"""``visuels check CAMPAIGN``'s bias and stereotype review: templates, then every expanded prompt.

A term in a template is reported once, naming the campaign (or charter) field; a term that only
the communes' data bring in (a name, a landmark) is reported for each commune and audience
whose prompt or texts hold it. Render planning flags the same jobs (``RenderJob.review`` and
``banned``), from the same expansion (``visuels.planning.jobs.job_texts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from visuels.inputs.campaign import Campaign
from visuels.planning.fairness import Finding, scan
from visuels.planning.jobs import job_texts


@dataclass
class LintReport:
    templates: list[Finding] = field(default_factory=list)
    jobs: list[Finding] = field(default_factory=list)  # brought in by a commune's data
    held: int = 0  # jobs that will not be rendered (banned, or sensitive without render_flagged)
    for_review: int = 0  # jobs rendered and marked for review (sensitive, render_flagged)
    from_templates: int = 0  # jobs whose prompt or texts hold a template's term

    @property
    def findings(self) -> list[Finding]:
        return self.templates + self.jobs


def _template_texts(campaign: Campaign) -> Iterator[tuple[str, str]]:
    """(field, text) of every template a job's prompt or texts come from."""
    spec = campaign.spec
    yield "prompt", spec.prompt
    yield "season", spec.season
    yield from _texts("headline", spec.headline)
    for name, audience in spec.audiences.items():
        yield f"audiences.{name}.prompt", audience.prompt
        for index, word in enumerate(audience.tone):
            yield f"audiences.{name}.tone[{index}]", word
        if audience.headline is not None:
            yield from _texts(f"audiences.{name}.headline", audience.headline)
        yield from _texts(f"audiences.{name}.call_to_action", audience.call_to_action)
    charter = campaign.charter.spec
    yield "charter style.prompt", charter.style.prompt
    for slot, values in charter.fairness.diversity.items():
        for index, value in enumerate(values):
            yield f"charter fairness.diversity.{slot}[{index}]", value


def _texts(field: str, texts: str | dict[str, str]) -> Iterator[tuple[str, str]]:
    if isinstance(texts, str):
        yield field, texts
    else:
        for language, text in texts.items():
            yield f"{field}.{language}", text


def lint_campaign(campaign: Campaign) -> LintReport:
    spec = campaign.spec
    fairness = campaign.charter.spec.fairness
    report = LintReport()
    for field_name, text in _template_texts(campaign):
        report.templates += scan({field_name: text}, fairness)
    template_terms = {finding.term for finding in report.templates}
    seen: set[Finding] = set()
    for job in job_texts(campaign):
        findings = job.findings(fairness)
        if any(finding.severity == "banned" for finding in findings):
            report.held += 1
        elif findings:
            report.held += not spec.render_flagged
            report.for_review += spec.render_flagged
        report.from_templates += any(finding.term in template_terms for finding in findings)
        for finding in findings:
            if finding.term not in template_terms and finding not in seen:
                seen.add(finding)
                report.jobs.append(finding)
    return report
