import shutil
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from visuels.errors import CampaignError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.formats import FORMAT_PRESETS
from visuels.inputs.model_refs import DemoModelRef
from visuels.models.reference import DEMO_LICENCE, ModelInfo
from visuels.planning.jobs import batches, expand_jobs, generation_size, hires_pass

from tests.helpers import edit_yaml, write_random_lora

MODEL = ModelInfo(
    hash="a" * 64,
    family="sd15",
    steps=25,
    guidance=7.0,
    licence=DEMO_LICENCE,
    native_size=512,
    size_multiple=64,
    description="test",
    ref=DemoModelRef(),
)


def keys(campaign_path: Path, model: ModelInfo = MODEL, precision: str = "float32") -> dict[tuple[str, str, str], str]:
    jobs = expand_jobs(load_campaign(campaign_path), model, precision)
    return {(job.commune_insee, job.audience, job.format): job.key for job in jobs}


def test_expansion_covers_communes_audiences_formats(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign(audiences={"residents": "families", "visitors": "tourists"})
    jobs = expand_jobs(load_campaign(path), MODEL, "float32")
    assert len(jobs) == 2 * 2 * 2
    assert len({job.key for job in jobs}) == len(jobs)
    first = jobs[0]
    assert first.relative_path == f"test-campagne/sete/instagram_square/residents-fr-{first.key[:12]}.png"
    assert "Sète" in first.prompt and first.prompt.startswith("slnstyle")
    assert {job.relative_path.split("/")[1] for job in jobs} == {"sete", "castelnau-d-estretefonds"}


def test_two_audiences_alike_but_their_names_are_refused(make_campaign: Callable[..., Path]) -> None:
    """A copied audience whose words were not changed yet made the same pictures under two names,
    one key each pair: the render failed on "this run's claim on the picture lapsed" and recorded
    one file of the two. Refused at planning (and by `visuels check`), naming both files."""
    path = make_campaign(
        audiences={"residents": "families", "locals": "families"}, seed={"policy": "per_commune", "base": 7}
    )
    alike = r"audiences\.locals: .*/locals-fr-(\w{12})\.png would be the same picture as .*/residents-fr-\1\.png"
    with pytest.raises(CampaignError, match=alike):
        expand_jobs(load_campaign(path), MODEL, "float32")


def test_same_inputs_same_keys(make_campaign: Callable[..., Path]) -> None:
    assert keys(make_campaign()) == keys(make_campaign())


def test_a_name_change_that_shapes_no_pixel_keeps_keys(make_campaign: Callable[..., Path]) -> None:
    assert keys(make_campaign()) == keys(make_campaign(name="Renamed campaign"))


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "a different {commune} poster"},
        {"season": "winter"},
        {"audiences": {"residents": "young families"}},
        {"steps": 4},
        {"guidance": 6.0},
        {"scheduler": "ddim"},
        {"seed": {"policy": "per_job", "base": 8}},
        {"seed": {"policy": "fixed", "base": 7}},
        {"language": "en"},
        {"file_type": "webp"},
    ],
)
def test_any_shaping_input_changes_every_key(make_campaign: Callable[..., Path], fields: dict) -> None:
    before = keys(make_campaign())
    after = keys(make_campaign(**fields))
    assert before.keys() == after.keys()
    assert all(before[job] != after[job] for job in before)


def test_precision_changes_keys(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign()
    single, half = keys(path), keys(path, precision="bfloat16")
    assert all(single[job] != half[job] for job in single)


def test_key_is_pinned(make_campaign: Callable[..., Path]) -> None:
    """Every output of every campaign re-renders when this changes: change it only on purpose."""
    job = expand_jobs(load_campaign(make_campaign()), MODEL, "float32")[0]
    assert job.key == GOLDEN_KEY


def test_model_and_charter_changes_change_keys(make_campaign: Callable[..., Path], charter_dir: Path) -> None:
    path = make_campaign()
    before = keys(path)
    other_model = keys(path, MODEL.model_copy(update={"hash": "b" * 64}))
    assert all(before[job] != other_model[job] for job in before)
    edit_yaml(charter_dir / "charter.yaml", lambda d: d["palette"][0].update(hex="#1B4F73"))
    assert all(before[j] != k for j, k in keys(path).items())


def test_lora_file_and_scale_change_keys(make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path) -> None:
    lora = tmp_path / "style.safetensors"
    shutil.copyfile(lora_file, lora)
    with_lora = keys(make_campaign(lora={"path": "style.safetensors", "scale": 0.8}))
    assert all(with_lora[j] != k for j, k in keys(make_campaign()).items())
    assert all(
        with_lora[j] != k for j, k in keys(make_campaign(lora={"path": "style.safetensors", "scale": 0.5})).items()
    )
    shutil.copyfile(write_random_lora(tmp_path / "retrained", seed=2), lora)  # the same layers, other weights
    assert all(
        with_lora[j] != k for j, k in keys(make_campaign(lora={"path": "style.safetensors", "scale": 0.8})).items()
    )


def test_homonyms_keep_their_folder_whatever_the_selection(charter_dir: Path, make_campaign: Callable) -> None:
    communes = charter_dir / "communes.csv"
    communes.write_text(
        communes.read_text(encoding="utf-8") + "09008,Alos,09,mountain,Couserans\n81007,Alos,81,countryside,Gaillac\n",
        encoding="utf-8",
    )  # two real Alos, in the Ariège and the Tarn

    def folders(names: list[str]) -> dict[str, str]:
        campaign = load_campaign(make_campaign(communes={"file": "charter/communes.csv", "names": names}))
        return {job.commune_insee: job.relative_path.split("/")[1] for job in expand_jobs(campaign, MODEL, "float32")}

    both = folders(["09008", "81007", "Collioure"])
    assert both == {"09008": "alos-09008", "81007": "alos-81007", "66053": "collioure"}
    assert folders(["09008"]) == {"09008": "alos-09008"}  # alone in the selection: same folder
    assert folders(["Collioure", "81007"])["81007"] == "alos-81007"


def test_per_commune_seed_is_shared_by_a_communes_images(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign(seed={"policy": "per_commune", "base": 1}, audiences={"a": "x", "b": "y"})
    jobs = expand_jobs(load_campaign(path), MODEL, "float32")
    seeds = {job.commune_insee: set() for job in jobs}
    for job in jobs:
        seeds[job.commune_insee].add(job.seed)
    assert all(len(values) == 1 for values in seeds.values())
    assert len({next(iter(values)) for values in seeds.values()}) == 2


@pytest.mark.parametrize("name", list(FORMAT_PRESETS))
def test_generation_size_keeps_area_and_aspect_on_the_grid(name: str) -> None:
    preset = FORMAT_PRESETS[name]
    width, height = generation_size(preset, MODEL)
    assert width % 64 == 0 and height % 64 == 0
    assert abs(width * height / 512**2 - 1) < 0.2
    assert abs((width / height) / preset.aspect - 1) < 0.15


def test_print_formats_are_a3_at_150_and_300_dpi() -> None:
    poster, print_quality = FORMAT_PRESETS["poster_a3"], FORMAT_PRESETS["poster_a3_300dpi"]
    assert (poster.width, poster.height, poster.dpi) == (1754, 2480, 150)
    assert (print_quality.width, print_quality.height, print_quality.dpi) == (3508, 4961, 300)


SD15 = MODEL
SDXL = ModelInfo(
    hash="b" * 64,
    family="sd15",
    steps=25,
    guidance=7.0,
    licence=DEMO_LICENCE,
    native_size=1024,
    size_multiple=8,
    description="sdxl",
    ref=DemoModelRef(),
)
DEMO = ModelInfo(
    hash="c" * 64,
    family="sd15",
    steps=25,
    guidance=7.0,
    licence=DEMO_LICENCE,
    native_size=256,
    size_multiple=16,
    description="demo",
    ref=DemoModelRef(),
)


@pytest.mark.parametrize("model", [SD15, SDXL, DEMO], ids=["sd15", "sdxl", "demo"])
@pytest.mark.parametrize("name", list(FORMAT_PRESETS))
def test_high_resolution_passes_grow_at_most_2x_each_on_the_grid_within_the_format(name: str, model: ModelInfo) -> None:
    preset = FORMAT_PRESETS[name]
    generation = generation_size(preset, model)
    hires = hires_pass(preset, generation, model)
    if preset.hires_scale is None:
        assert hires is None
        return
    assert hires is not None and 0 < hires.strength < 0.5  # redraws detail, keeps the composition
    sizes = [generation, *hires.sizes]
    for (width, height), (larger_width, larger_height) in pairwise(sizes):
        assert 1 < larger_width / width <= 2.1 and 1 < larger_height / height <= 2.1
        assert larger_width % model.size_multiple == 0 and larger_height % model.size_multiple == 0
    last_width, last_height = sizes[-1]
    assert last_width <= preset.width + model.size_multiple and last_height <= preset.height + model.size_multiple
    wanted = min(preset.hires_scale, preset.width / generation[0])
    assert last_width / generation[0] == pytest.approx(wanted, rel=0.1)


def test_the_300_dpi_poster_is_redrawn_twice_and_never_shares_a_call_with_the_150_dpi_one(
    make_campaign: Callable[..., Path],
) -> None:
    jobs = expand_jobs(load_campaign(make_campaign(formats=["poster_a3", "poster_a3_300dpi"])), SD15, "float32")
    by_format = {job.format: job for job in jobs}
    assert by_format["poster_a3"].hires.sizes == ((896, 1280),)  # type: ignore[union-attr]
    assert by_format["poster_a3_300dpi"].hires.sizes == ((896, 1280), (1792, 2560))  # type: ignore[union-attr]
    for chunk in batches(jobs, batch_size=8):
        assert len({job.format for job in chunk}) == 1  # same first pass size, other redraws


def test_batches_group_jobs_that_share_a_diffusers_call(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign(audiences={"a": "x", "b": "y", "c": "z"})
    jobs = expand_jobs(load_campaign(path), MODEL, "float32")
    chunks = list(batches(jobs, batch_size=4))
    assert sorted(job.key for chunk in chunks for job in chunk) == sorted(job.key for job in jobs)
    for chunk in chunks:
        assert 1 <= len(chunk) <= 4
        assert len({(j.generation_width, j.generation_height) for j in chunk}) == 1


GOLDEN_KEY = "d8f780ccf509d0095ea42306a208decb62f52b034aedfe12f1cb9202388fba00"  # POSTPROCESS_VERSION 6 (#31)


def test_audiences_times_languages_give_their_texts_and_labels(make_campaign: Callable[..., Path]) -> None:
    path = make_campaign(
        languages=["fr", "en", "oc"],
        headline={"fr": "L'été", "en": "Summer", "oc": "L'estiu"},
        audiences={
            "residents": {
                "prompt": "local families",
                "tone": ["warm"],
                "call_to_action": {"fr": "agenda.example", "oc": "agenda-oc.example"},
                "languages": ["fr", "oc"],
            },
            "visitors": {"prompt": "tourists", "headline": {"fr": "Venez", "en": "Come"}, "languages": ["fr", "en"]},
            "investors": "entrepreneurs",  # every campaign language, the campaign's headline, no call to action
        },
        formats=["story"],
    )
    jobs = expand_jobs(load_campaign(path), MODEL, "float32")
    texts = {(job.commune_name, job.audience, job.language): (job.headline, job.call_to_action) for job in jobs}
    sete = {key[1:]: value for key, value in texts.items() if key[0] == "Sète"}
    assert sete == {
        ("residents", "fr"): ("L'été", "agenda.example"),
        ("residents", "oc"): ("L'estiu", "agenda-oc.example"),
        ("visitors", "fr"): ("Venez", ""),
        ("visitors", "en"): ("Come", ""),
        ("investors", "fr"): ("L'été", ""),
        ("investors", "en"): ("Summer", ""),
        ("investors", "oc"): ("L'estiu", ""),
    }
    assert len(jobs) == 2 * 7 and len({job.key for job in jobs}) == len(jobs)
    for job in jobs:
        assert f"/{job.audience}-{job.language}-" in job.relative_path
    resident = next(job for job in jobs if job.audience == "residents")
    assert "local families" in resident.prompt and resident.prompt.split(", ").count("warm") == 1
    # The language's AI label is drawn: the label differs between the French and English pictures.
    from PIL import Image
    from visuels.postprocess.chain import postprocess

    charter = load_campaign(path).charter
    source = Image.new("RGB", (256, 256), (120, 140, 160))
    labels = {
        language: postprocess(source, charter, 1080, 1920, language, "Sète", "Summer", "plan.example")
        for language in ("fr", "en")
    }
    assert labels["fr"].label.box != labels["en"].label.box  # "Image générée par IA" / "AI-generated image"
    assert len(labels["en"].text.below) == 2  # headline and call to action, under the name


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"languages": ["fr", "en"], "headline": "L'été"}, "headline", "give this text per language"),
        (
            {"languages": ["fr", "en"], "headline": {"fr": "L'été"}},
            "headline",
            "no 'en' text",
        ),
        (
            {"audiences": {"visitors": {"prompt": "tourists", "call_to_action": {"fr": "x"}, "languages": ["en"]}}},
            "audiences.visitors.call_to_action",
            "no 'en' text",
        ),
        (
            {"audiences": {"visitors": {"prompt": "tourists", "languages": ["de"]}}},
            "audiences.visitors.languages[0]",
            "no AI label text for 'de'",
        ),
        ({"languages": ["fr", "fr"]}, "languages", "listed twice"),
        ({"language": "fr", "languages": ["fr"]}, "(top level)", "not both"),
    ],
)
def test_texts_missing_a_language_name_the_field(
    make_campaign: Callable[..., Path], fields: dict, field: str, message: str
) -> None:
    with pytest.raises(CampaignError) as caught:
        load_campaign(make_campaign(**fields))
    assert (caught.value.field or "") == field and message in caught.value.message


def test_keys_name_the_precision_asked_for_whichever_machine_plans(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """In a mixed pool (a CPU planner, bf16 and fp16 GPUs), "auto" must give one set of keys: the
    machine that renders resolves it, not the one that plans."""
    from visuels.planning.plan import plan_render
    from visuels.planning.request import RenderSettings

    path = make_campaign()
    plans = [plan_render(path, tmp_path, settings=RenderSettings(device=device)) for device in ("cpu", "cuda", "mps")]
    assert {job.precision for plan in plans for job in plan.jobs} == {"auto"}
    assert plans[0].jobs == plans[1].jobs == plans[2].jobs
    pinned = plan_render(path, tmp_path, settings=RenderSettings(dtype="float16"))
    assert all(job.key != auto.key for job, auto in zip(pinned.jobs, plans[0].jobs, strict=True))
