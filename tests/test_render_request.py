"""Selections and overrides of a render run, the run form's schema, and shards."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from visuels.errors import CampaignError
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.planning.jobs import shard_by_commune
from visuels.planning.plan import plan_render
from visuels.planning.request import Overrides, Selection


def test_a_selection_narrows_communes_audiences_and_formats(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign = make_campaign(audiences={"residents": "local families", "tourists": "visitors"})
    everything = plan_render(campaign, tmp_path)
    assert len(everything.jobs) == 2 * 2 * 2
    chosen = plan_render(
        campaign, tmp_path, Selection(communes=["34301"], audiences=["tourists"], formats=["story"])
    )  # 34301: Sète's INSEE code
    assert [(job.commune_name, job.audience, job.format) for job in chosen.jobs] == [("Sète", "tourists", "story")]
    assert chosen.jobs[0].key in {job.key for job in everything.jobs}  # same job, same key


def test_a_selection_reads_format_names_as_the_campaign_file_does() -> None:
    # `--formats Instagram-Square` was refused though the campaign file accepts the name so written.
    assert Selection(formats=["Instagram-Square", "web banner", " Story"]).formats == [
        "instagram_square",
        "web_banner",
        "story",
    ]
    with pytest.raises(ValidationError):
        Selection(formats=["billboard"])
    assert Selection(audiences=["Residents ", "Young-Families"]).audiences == ["residents", "young-families"]


def test_overrides_change_the_pictures_and_so_the_keys(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign = make_campaign()
    plain = plan_render(campaign, tmp_path).jobs
    more_steps = plan_render(campaign, tmp_path, overrides=Overrides(steps=9)).jobs
    other_seed = plan_render(campaign, tmp_path, overrides=Overrides(seed=8)).jobs
    assert {job.steps for job in more_steps} == {9}
    assert not {job.key for job in plain} & {job.key for job in more_steps}
    assert [job.seed for job in plain] != [job.seed for job in other_seed]


@pytest.mark.parametrize(
    ("selection", "overrides", "field", "words"),
    [
        (Selection(communes=["Atlantis"]), Overrides(), "selection.communes", "Atlantis"),
        (Selection(formats=["poster_a3"]), Overrides(), "selection.formats", "'poster_a3' is not in this campaign"),
        (Selection(audiences=["martians"]), Overrides(), "selection.audiences", "'martians'"),
        (Selection(), Overrides(lora_scale=0.5), "overrides.lora_scale", "no LoRA"),
    ],
)
def test_bad_selections_are_clear_errors(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    selection: Selection,
    overrides: Overrides,
    field: str,
    words: str,
) -> None:
    with pytest.raises(CampaignError, match=words) as caught:
        plan_render(make_campaign(), tmp_path, selection, overrides)
    assert caught.value.field.startswith(field)


def test_an_empty_selection_is_refused(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    campaign = make_campaign(communes={"file": "charter/communes.csv", "departments": ["99"]})
    with pytest.raises(CampaignError, match="empty"):
        plan_render(campaign, tmp_path)


@pytest.mark.parametrize(
    "values",
    [{"max_communes": 0}, {"formats": ["billboard"]}, {"communes": [""]}, {"colour": "red"}],
)
def test_the_schema_refuses_bad_selections(values: dict) -> None:
    with pytest.raises(ValidationError):
        Selection(**values)


@pytest.mark.parametrize("values", [{"steps": 0}, {"steps": 151}, {"lora_scale": 3.0}, {"seed": -1}])
def test_the_schema_refuses_bad_overrides(values: dict) -> None:
    with pytest.raises(ValidationError):
        Overrides(**values)


def test_the_run_form_has_plain_labels_dropdowns_ranges_and_no_null_switches() -> None:
    from visuels.flows.render_campaign import render_campaign
    from visuels.flows.train_lora import train_charter_lora
    from visuels.planning.request import known_audiences, known_campaigns, known_formats

    schema = render_campaign.parameters.model_dump()
    properties = schema["properties"]
    assert [(name, field["title"]) for name, field in properties.items()] == [
        ("campaign", "Campaign"),
        ("selection", "Which pictures"),
        ("overrides", "Change for this run"),
        ("review", "Send for review"),
        ("run", "Technical settings"),  # the technical fields, grouped apart, last
    ]
    # The campaigns and their audiences are listed when make serve deploys the flows, never when a
    # module is imported: a campaign added since is offered after the next `make serve`.
    assert "enum" not in properties["campaign"]
    assert "campaigns/ete-2027.yaml" in known_campaigns() and "residents" in known_audiences()
    # `make serve` offers the formats the campaigns use, not every preset (no 300 dpi poster here).
    assert known_formats() == ["instagram_square", "story", "web_banner", "poster_a3"]
    selection = properties["selection"]["properties"]
    assert selection["formats"]["items"]["enum"] == list(FORMAT_PRESETS)
    steps = properties["overrides"]["properties"]["steps"]
    assert (steps["minimum"], steps["maximum"]) == (1, 150) and "1 to 150" in steps["description"]
    technical = set(properties["run"]["properties"])
    assert {"output_dir", "batch_size", "device", "dtype", "shard_size"} <= technical
    for flow in (render_campaign, train_charter_lora):
        text = json.dumps(flow.parameters.model_dump())
        assert '"type": "null"' not in text and "null" not in text  # no "int | None" switches, no null defaults
        titles = [field["title"] for field in flow.parameters.model_dump()["properties"].values()]
        assert not [title for title in titles if "_" in title or title.islower()]  # never python_names


def test_the_run_form_leaves_out_a_campaign_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make serve` lists the campaigns' audiences and which wait for review: a file saved in
    Latin-1, or nested deeper than the YAML parser recurses, stopped it (UnicodeDecodeError,
    RecursionError); it is left out, and said when it is used (`visuels check` names it)."""
    from visuels.cli import main
    from visuels.planning.request import campaigns_waiting_for_review, known_audiences, known_formats

    (tmp_path / "latin.yaml").write_bytes("name: Campagne d'été\nreview: true\n".encode("latin-1"))
    nested = tmp_path / "nested.yaml"
    nested.write_text("name: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    (tmp_path / "fine.yaml").write_text("review: true\naudiences: {residents: local families}\n", encoding="utf-8")
    # Names written as no campaign holds them: one name alone (its letters were offered), numbers
    # (the form's sort failed on them beside names), a list of mappings.
    (tmp_path / "alone.yaml").write_text("audiences: students\nformats: story\n", encoding="utf-8")
    (tmp_path / "numbers.yaml").write_text("audiences: [1, 2]\nformats: [{story: 1}]\n", encoding="utf-8")
    assert campaigns_waiting_for_review(tmp_path) == ["campaigns/fine.yaml"]
    assert known_audiences(tmp_path) == ["residents"]
    assert known_formats(tmp_path) == []
    # Named as the campaign reads them: `Web-Banner` is web_banner (it was left out of the form).
    (tmp_path / "written.yaml").write_text("formats: [Web-Banner, instagram square]\n", encoding="utf-8")
    assert known_formats(tmp_path) == ["instagram_square", "web_banner"]
    assert main(["check", str(nested)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {nested}: invalid YAML: nested too deeply to be read"


def test_campaigns_saved_as_yml_are_found_and_hidden_files_are_not(tmp_path: Path) -> None:
    """A campaign saved as `.yml` passed `visuels check` and was never rendered by the nightly nor
    offered by the run form; a Mac's `._ete.yaml` beside it (AppleDouble, on a shared drive) was
    read as a broken campaign, and failed every nightly."""
    from visuels.planning.request import campaign_files, campaigns_waiting_for_review, known_campaigns

    (tmp_path / "ete.yaml").write_text("review: true\n", encoding="utf-8")
    (tmp_path / "printemps.yml").write_text("review: true\n", encoding="utf-8")
    (tmp_path / "._ete.yaml").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (tmp_path / "notes.txt").write_text("not a campaign\n", encoding="utf-8")
    assert campaign_files(tmp_path) == [tmp_path / "ete.yaml", tmp_path / "printemps.yml"]
    assert known_campaigns(tmp_path) == ["campaigns/ete.yaml", "campaigns/printemps.yml"]
    assert campaigns_waiting_for_review(tmp_path) == ["campaigns/ete.yaml", "campaigns/printemps.yml"]


def test_a_campaign_waiting_for_review_is_read_as_the_campaign_reads_it(tmp_path: Path) -> None:
    """`review: "yes"` (quoted) or `review: 1` makes the campaign wait for approval, yet the run form
    said no campaign here waited for it; a value the campaign refuses waits for nothing."""
    from visuels.planning.request import campaigns_waiting_for_review

    for name, review in {"a": '"yes"', "b": "1", "c": "on", "d": '"no"', "e": "maybe", "f": "[true]"}.items():
        (tmp_path / f"{name}.yaml").write_text(f"review: {review}\n", encoding="utf-8")
    (tmp_path / "g.yaml").write_text("name: no review said\n", encoding="utf-8")
    assert campaigns_waiting_for_review(tmp_path) == ["campaigns/a.yaml", "campaigns/b.yaml", "campaigns/c.yaml"]


def test_an_output_folder_cleared_in_the_run_form_is_refused() -> None:
    """An empty output folder was the worker's own folder: a run cleared in the form wrote its
    campaign folders into the project's."""
    from pydantic import ValidationError
    from visuels.planning.request import RunSettings

    for cleared in ("", "  "):
        with pytest.raises(ValidationError, match="empty: give it a value"):
            RunSettings(output_dir=cleared)


def test_shards_never_split_a_commune(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    jobs = plan_render(make_campaign(), tmp_path).jobs  # 2 communes x 2 formats
    assert shard_by_commune(jobs, 2) == [["34301"], ["31118"]]  # Sète, Castelnau-d'Estrétefonds
    assert len(shard_by_commune(jobs, 3)) == 2  # a commune's 2 jobs do not fit beside the other's
    assert len(shard_by_commune(jobs, 4)) == 1
    assert sorted(code for shard in shard_by_commune(jobs, 1) for code in shard) == sorted(
        {job.commune_insee for job in jobs}
    )


def test_every_deployment_says_what_it_does_and_a_schedule_shows_its_time_zone() -> None:
    import yaml

    from tests.helpers import SAMPLE_CAMPAIGN

    project = yaml.safe_load((SAMPLE_CAMPAIGN.parents[1] / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in project["deployments"]:
        assert len(deployment.get("description", "")) > 20, deployment["name"]
        for schedule in deployment.get("schedules", []):
            # The UI writes a cron as "At 02:00 AM every day": a tag gives the zone it means.
            hour, minute = int(schedule["cron"].split()[1]), int(schedule["cron"].split()[0])
            assert f"{hour:02d}:{minute:02d} {schedule['timezone']}" in deployment["tags"]
