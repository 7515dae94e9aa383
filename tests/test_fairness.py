"""Bias and stereotype review: terms in templates and expanded prompts, held jobs, diversity slots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from visuels.cli import main
from visuels.config import sample_campaign
from visuels.inputs.campaign import load_campaign
from visuels.inputs.charter import Fairness
from visuels.models.reference import describe_model
from visuels.planning.fairness import diversity_words, find_terms
from visuels.planning.jobs import expand_jobs
from visuels.planning.lint import lint_campaign
from visuels.planning.plan import plan_render

from tests.helpers import edit_yaml


def _plant_landmark(charter_dir: Path, commune: str, landmark: str) -> None:
    """Give ``commune`` a landmark: the term then reaches its prompts through the communes data only."""
    csv_path = charter_dir / "communes.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        fields = line.split(",")
        if fields[1] == commune:
            fields[4] = landmark
            lines[index] = ",".join(fields)
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_terms_match_whole_words_whatever_the_case_and_accents() -> None:
    terms = ["typical locals", "poor", "élève"]
    assert find_terms("Portrait of TYPICAL  locals", terms) == []  # two spaces: not the term
    assert find_terms("Portrait of Typical locals, at noon", terms) == ["typical locals"]
    assert find_terms("a poorly lit street, the Poor quarter", terms) == ["poor"]
    assert find_terms("poorly lit", terms) == []
    assert find_terms("un Eleve du lycée", terms) == ["élève"]


def test_the_lint_names_a_planted_term_with_its_commune(
    make_campaign: Callable[..., Path], charter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant_landmark(charter_dir, "Castelnau-d'Estrétefonds", "typical locals in beret")
    path = make_campaign(audiences={"residents": "local families", "visitors": "tourists"})
    report = lint_campaign(load_campaign(path))
    planted = {(f.term, f.commune, f.audience) for f in report.jobs}
    assert planted == {
        (term, "Castelnau-d'Estrétefonds", audience)
        for term in ("typical locals", "beret")
        for audience in ("residents", "visitors")
    }
    assert report.templates == [] and report.held == 2 * 2 and report.for_review == 0  # 2 audiences x 2 formats

    assert main(["check", str(path)]) == 1  # valid, with findings
    out = capsys.readouterr().out
    assert (
        "sensitive term 'typical locals' in prompt (commune Castelnau-d'Estrétefonds, audience residents, language fr)"
        in out
    )
    assert "4 jobs held back, 0 rendered and marked for review" in out


def test_a_term_in_a_template_is_reported_once_by_its_field(
    make_campaign: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_campaign(audiences={"residents": {"prompt": "local families", "tone": ["exotic"]}})
    report = lint_campaign(load_campaign(path))
    assert [(f.severity, f.term, f.field) for f in report.templates] == [
        ("sensitive", "exotic", "audiences.residents.tone[0]")
    ]
    assert report.jobs == [] and report.from_templates == 4
    assert main(["check", str(path)]) == 1
    assert "sensitive term 'exotic' in audiences.residents.tone[0]" in capsys.readouterr().out


def test_flagged_jobs_are_held_unless_the_campaign_renders_them_banned_ones_always(
    make_campaign: Callable[..., Path], charter_dir: Path, tmp_path: Path
) -> None:
    _plant_landmark(charter_dir, "Sète", "port of the poor")
    held = plan_render(make_campaign(), tmp_path / "a")
    assert {job.commune_name for job in held.held} == {"Sète"}
    assert all(job.commune_name != "Sète" for job in held.pending)
    allowed = plan_render(make_campaign(render_flagged=True), tmp_path / "b")
    flagged = [job for job in allowed.pending if job.review]
    assert not allowed.held and {job.commune_name for job in flagged} == {"Sète"}
    assert flagged[0].review == ["sensitive term 'poor' in prompt (commune Sète, audience residents, language fr)"]
    _plant_landmark(charter_dir, "Sète", "the ghetto")
    banned = plan_render(make_campaign(render_flagged=True), tmp_path / "c")
    assert {job.commune_name for job in banned.held} == {"Sète"}
    assert banned.held[0].banned and not banned.held[0].review


def test_a_clean_sample_campaign_checks_with_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(sample_campaign())]) == 0
    assert "term" not in capsys.readouterr().out


def test_diversity_slots_vary_across_seeds_only_where_people_are_shown(
    make_campaign: Callable[..., Path], charter_dir: Path
) -> None:
    fairness = Fairness(
        people_terms=["families"], diversity={"age": ["children", "older people"], "ability": ["", "a wheelchair user"]}
    )
    drawn = {tuple(diversity_words(fairness, seed)) for seed in range(40)}
    assert {words[0] for words in drawn} == {"children", "older people"}
    assert any(len(words) == 1 for words in drawn) and any("a wheelchair user" in words for words in drawn)

    campaign = load_campaign(
        make_campaign(audiences={"residents": "local families", "places": "empty streets"}, seed={"policy": "per_job"})
    )
    jobs = expand_jobs(campaign, describe_model(campaign.model), "float32")
    slots = load_campaign(make_campaign()).charter.spec.fairness.diversity
    values = {value for options in slots.values() for value in options if value}
    people = [job.prompt for job in jobs if job.audience == "residents"]
    places = [job.prompt for job in jobs if job.audience == "places"]
    assert all(any(value in prompt for value in values) for prompt in people)
    assert not any(value in prompt for value in values for prompt in places)
    ages = {value for prompt in people for value in slots["age"] if value in prompt}
    assert len(ages) >= 2  # four jobs, four seeds: not one person repeated


def test_a_diversity_slot_needs_values_to_vary(charter_dir: Path) -> None:
    from visuels.errors import CharterError
    from visuels.inputs.charter import load_charter

    edit_yaml(charter_dir / "charter.yaml", lambda data: data["fairness"]["diversity"].update(age=["", ""]))
    with pytest.raises(CharterError) as caught:
        load_charter(charter_dir)
    assert caught.value.field == "fairness.diversity" and "age" in caught.value.message
