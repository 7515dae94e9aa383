import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from visuels.errors import CampaignError, CharterError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DiffusersFolderRef
from visuels.planning.plan import plan_render

from tests.helpers import SAMPLE_CAMPAIGN, edit_yaml


def test_sample_campaign_loads() -> None:
    campaign = load_campaign(SAMPLE_CAMPAIGN)
    assert campaign.slug == "ete-2027-vivre-en-solane"
    assert set(campaign.spec.formats) == {"instagram_square", "story", "web_banner", "poster_a3"}
    assert {c.department for c in campaign.communes} == {"11", "30", "31", "34", "66"}


def test_selection_by_name_code_and_department(make_campaign: Callable[..., Path]) -> None:
    by_names = load_campaign(make_campaign(communes={"file": "charter/communes.csv", "names": ["Sète", "31555"]}))
    assert [c.name for c in by_names.communes] == ["Sète", "Toulouse"]
    by_department = load_campaign(make_campaign(communes={"file": "charter/communes.csv", "departments": ["48"]}))
    assert {c.department for c in by_department.communes} == {"48"} and len(by_department.communes) == 4
    everything = load_campaign(make_campaign(communes={"file": "charter/communes.csv"}))
    assert len(everything.communes) == 79


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"formats": ["instagram_square", "billboard"]}, "formats", "unknown format 'billboard'"),
        ({"formats": []}, "formats", "at least 1"),
        (
            {"communes": {"file": "charter/communes.csv", "names": ["Sète", "Sette"]}},
            "communes.names[1]",
            "did you mean 'Sète'",
        ),
        ({"communes": {"file": "charter/communes.csv", "departments": ["75"]}}, "communes.departments[0]", "75"),
        ({"communes": {"file": "charter/missing.csv"}}, "communes.file", "not found"),
        ({"prompt": "poster of {city}"}, "prompt", "unknown placeholder"),
        ({"prompt": "poster of {commune"}, "prompt", "malformed"),
        ({"steps": 0}, "steps", "greater than or equal to 1"),
        ({"guidance": 99}, "guidance", "less than or equal to 30"),
        ({"scheduler": "magic"}, "scheduler", "euler"),
        ({"language": "de"}, "languages[0]", "no AI label text"),
        ({"charter": "nowhere/charter.yaml"}, "charter", "not found"),
        ({"model": {"kind": "diffusers"}}, "model.path", "required"),
        ({"model": {"kind": "telepathy"}}, "model", "kind 'telepathy' is not one of 'demo', 'diffusers'"),
        ({"audiences": {"Grand Public": "everyone"}}, "audiences.Grand Public", "cannot name an audience"),
        ({"lora": {"path": "missing.safetensors"}}, "lora.path", "not found"),
        ({"colour": "blue"}, "colour", "unknown key"),
        # Said as the file says them: not "Input should be a valid string", not pydantic's
        # "headline.constrained-str", "model.diffusers.path" or "instance of Audience".
        ({"season": None}, "season", "empty: give it a value"),
        ({"audiences": {"residents": None}}, "audiences.residents", "empty"),
        ({"formats": "story"}, "formats", "a list is expected: write [story]"),
        ({"headline": {"fr": 3}}, "headline.fr", "valid string"),
        ({"audiences": {"residents": 3}}, "audiences.residents", "Input should be a valid dictionary"),
    ],
)
def test_bad_campaign_names_file_and_field(
    make_campaign: Callable[..., Path], fields: dict, field: str, words: str
) -> None:
    path = make_campaign(**fields)
    with pytest.raises(CampaignError) as caught:
        load_campaign(path)
    assert caught.value.file == str(path)
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_broken_charter_is_reported_against_the_charter_file(
    make_campaign: Callable[..., Path], charter_dir: Path
) -> None:
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["palette"][0].update(hex="#12345"))
    with pytest.raises(CharterError) as caught:
        load_campaign(make_campaign())
    assert caught.value.file.endswith("charter.yaml")
    assert caught.value.field == "palette[0].hex"


def test_typographic_apostrophes_and_homonyms(make_campaign: Callable[..., Path], charter_dir: Path) -> None:
    pasted = {"file": "charter/communes.csv", "names": ["Castelnau-d’Estrétefonds", "l’isle-jourdain"]}
    chosen = load_campaign(make_campaign(communes=pasted)).communes
    assert [c.name for c in chosen] == ["Castelnau-d'Estrétefonds", "L'Isle-Jourdain"]
    with (charter_dir / "communes.csv").open("a", encoding="utf-8") as csv_file:
        csv_file.write("09008,Alos,09,mountain,Couserans\n81007,Alos,81,countryside,Gaillac\n")  # real homonyms
    with pytest.raises(CampaignError) as caught:
        load_campaign(make_campaign(communes={"file": "charter/communes.csv", "names": ["Alos"]}))
    assert "'Alos' names 2 communes: Alos (09008, department 09), Alos (81007, department 81)" in caught.value.message
    assert "give the INSEE code" in caught.value.message


def test_a_misspelt_key_is_reported_as_unknown_with_what_it_meant(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign()
    text = path.read_text(encoding="utf-8").replace("audiences:", "audience:")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignError) as caught:
        load_campaign(path)
    assert caught.value.field == "audience"
    assert caught.value.message == "unknown key (did you mean 'audiences'?)"


def test_validator_messages_have_no_pydantic_prefix(make_campaign: Callable[..., Path]) -> None:
    with pytest.raises(CampaignError) as caught:
        load_campaign(make_campaign(formats=["billboard"]))
    assert not caught.value.message.startswith("Value error")


def test_a_key_given_twice_is_refused_and_a_merged_one_overridden(make_campaign: Callable[..., Path]) -> None:
    """PyYAML keeps the last of two equal keys: a second `formats:` at the foot of a campaign
    silently replaced the first. YAML's merge (`<<: *defaults`) still lets a key be overridden."""
    campaign = make_campaign()
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text + "formats: [story]\n", encoding="utf-8")
    first = 1 + next(number for number, line in enumerate(text.splitlines()) if line.startswith("formats:"))
    with pytest.raises(CampaignError, match=rf"'formats' is given twice \(first on line {first}\)") as twice:
        load_campaign(campaign)
    assert str(twice.value.field) == f"line {len(text.splitlines()) + 1}"
    campaign.write_text(
        text.replace(
            "audiences:\n  residents: local families\n",
            "audiences:\n  residents: &people {prompt: local families, tone: [warm]}\n"
            "  visitors: {<<: *people, prompt: visitors}\n",
        ),
        encoding="utf-8",
    )
    audiences = load_campaign(campaign).spec.audiences
    assert audiences["visitors"].prompt == "visitors" and audiences["visitors"].tone == ["warm"]


def test_codes_written_as_yaml_numbers_select_the_communes_they_name(make_campaign: Callable[..., Path]) -> None:
    """`departments: [34, 9]` was "Input should be a valid string"; `names: [01004]` was worse: YAML
    1.1 reads it as the octal number 516. Codes are read as the codes they are written as."""
    campaign = make_campaign()
    text = campaign.read_text(encoding="utf-8")
    start, end = text.index("communes:"), text.index("model:")
    campaign.write_text(text[:start] + "communes: {file: charter/communes.csv, departments: [34, 9]}\n" + text[end:])
    assert {c.department for c in load_campaign(campaign).communes} == {"34", "09"}
    campaign.write_text(text[:start] + "communes: {file: charter/communes.csv, names: [34301, 09122]}\n" + text[end:])
    assert [c.name for c in load_campaign(campaign).communes] == ["Sète", "Foix"]
    campaign.write_text(text[:start] + "communes: {names: [01004, 2a004]}\n" + text[end:])  # from the COG
    assert [c.name for c in load_campaign(campaign).communes] == ["Ambérieu-en-Bugey", "Ajaccio"]


def test_names_of_formats_file_types_and_schedulers_as_people_write_them(make_campaign: Callable[..., Path]) -> None:
    """`file_type: jpg` (JPEG's usual name) was "Input should be 'png', 'jpeg' or 'webp'"; `Web_Banner`
    and `web-banner` were unknown formats."""
    spec = load_campaign(
        make_campaign(file_type="JPG", formats=["Web-Banner", "instagram square"], scheduler="Euler A")
    ).spec
    assert (spec.file_type, spec.formats, spec.scheduler) == ("jpeg", ["web_banner", "instagram_square"], "euler_a")


def test_one_line_forms_are_the_forms_they_stand_for(make_campaign: Callable[..., Path], lora_file: Path) -> None:
    """`model: demo`, `communes: FILE.csv`, `seed: 2027`, `lora: FILE` were "Input should be a valid
    dictionary": each is now the mapping it stands for, to the jobs' keys."""
    written_out = make_campaign(
        "long.yaml",
        model={"kind": "demo"},
        communes={"file": "charter/communes.csv"},
        seed={"base": 2027},
        lora={"path": str(lora_file)},
    )
    one_line = make_campaign(
        "short.yaml", model="demo", communes="charter/communes.csv", seed=2027, lora=str(lora_file)
    )
    assert load_campaign(one_line).spec == load_campaign(written_out).spec
    long_plan, short_plan = (plan_render(path, path.parent / "outputs") for path in (written_out, one_line))
    assert short_plan.setup == long_plan.setup
    assert [job.key for job in short_plan.jobs] == [job.key for job in long_plan.jobs] and len(long_plan.jobs) > 100
    folder = make_campaign("folder.yaml", model="models/sd15")  # a folder, as --model takes it
    assert load_campaign(folder).model == DiffusersFolderRef(path=str(folder.parent / "models" / "sd15"))


def test_texts_saved_decomposed_are_read_composed(make_campaign: Callable[..., Path]) -> None:
    """A campaign saved by a tool that writes "é" as "e" + a combining accent: its headline would
    have keyed and drawn otherwise than the same words typed elsewhere."""
    path = make_campaign(headline={"fr": "Été à Sète"})
    path.write_text(unicodedata.normalize("NFD", path.read_text(encoding="utf-8")), encoding="utf-8")
    assert load_campaign(path).spec.headline == {"fr": "Été à Sète"}


def test_headlines_and_calls_to_action_name_each_commune_and_refuse_unknown_placeholders(
    make_campaign: Callable[..., Path],
) -> None:
    """`headline: "Entreprendre à {commune}"` was set as it was written: "{commune}" on every
    poster, marked compliant. The texts' placeholders are filled per commune; an unknown one is
    refused, as the prompt's are."""
    from visuels.planning.jobs import job_texts

    audiences = {
        "residents": {
            "prompt": "local families",
            "headline": "Vivre à {commune} ({department}), en {season}",
            "call_to_action": "solane.example/{insee} — {{agenda}}",
        }
    }
    campaign = load_campaign(make_campaign(audiences=audiences, season="été"))
    texts = {(text.commune.name, text.headline, text.call_to_action) for text in job_texts(campaign)}
    assert texts == {
        ("Sète", "Vivre à Sète (34), en été", "solane.example/34301 — {agenda}"),
        (
            "Castelnau-d'Estrétefonds",
            "Vivre à Castelnau-d'Estrétefonds (31), en été",
            "solane.example/31118 — {agenda}",
        ),
    }
    audiences["residents"]["call_to_action"] = "solane.example/{code_postal}"
    with pytest.raises(CampaignError, match=r"unknown placeholder \{code_postal\}; allowed: \{commune\}") as unknown:
        load_campaign(make_campaign(audiences=audiences))
    assert unknown.value.field == "audiences.residents.call_to_action"
    with pytest.raises(CampaignError, match="malformed template") as malformed:
        load_campaign(make_campaign(headline={"fr": "Vivre en Solane {"}, languages=["fr"]))
    assert malformed.value.field == "headline"
