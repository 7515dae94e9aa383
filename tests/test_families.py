"""The 2026 families (FLUX.1 schnell, FLUX.2 klein, Z-Image, Qwen-Image) through the same renderer
as SD1.5 and SDXL: tiny folders made outside visuels (tests/tiny_families.py), described from their
files, rendered from a campaign file and from ``--model DIR``, marked and recorded like any other
picture; their licences as governance; LoRA on a transformer."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from visuels.errors import CampaignError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DiffusersFolderRef, LoraWeights
from visuels.models.families import family_named
from visuels.models.generation import prompt_arguments
from visuels.models.licences import card_licence, licence_use
from visuels.models.noise_mark import payload_for_key
from visuels.models.reference import describe_model
from visuels.planning.jobs import expand_jobs
from visuels.planning.plan import plan_render
from visuels.planning.request import Overrides, Selection
from visuels.record.database import database_url

from tests.helpers import render_now
from tests.test_faults import assert_record_matches_files, rows
from tests.tiny_families import FAMILIES, save_random_controlnet, save_test_shaped, save_tiny

NEW_FAMILIES = sorted(FAMILIES)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family's tiny folder, saved once for the session."""
    folder = tmp_path_factory.mktemp("families")
    return {family: save_tiny(family, folder / family) for family in NEW_FAMILIES}


@pytest.mark.parametrize("family", ["flux2-klein", "qwen-image"])
def test_a_language_models_prompt_is_read_without_its_vocabulary_head(
    tiny_models: dict[str, Path], family: str
) -> None:
    """FLUX.2 klein and Qwen-Image read their text encoder's hidden layers only: it is loaded
    without the causal LM's head, and a prompt gives the very embeddings it gave with it."""
    import diffusers
    from visuels.models.host import load_from_files

    folder = tiny_models[family]
    loaded = load_from_files(DiffusersFolderRef(path=str(folder)), torch.float32)
    assert not hasattr(loaded.text_encoder, "lm_head")
    whole = diffusers.DiffusionPipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    assert hasattr(whole.text_encoder, "lm_head")
    prompt = "poster of Sète, the lighthouse, summer"
    with torch.no_grad():
        (ours, *_), (theirs, *_) = (pipeline.encode_prompt(prompt=prompt) for pipeline in (loaded, whole))
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_each_family_is_described_from_its_files(tiny_models: dict[str, Path], family: str) -> None:
    info = describe_model(DiffusersFolderRef(path=str(tiny_models[family])))
    assert info.family == family
    assert (info.native_size, info.size_multiple) == (family_named(family).native_size, 16)
    assert (info.licence.id, info.licence.use, info.licence.source) == ("apache-2.0", "publishable", "model card")
    smaller = describe_model(DiffusersFolderRef(path=str(tiny_models[family]), native_size=256))
    assert (smaller.native_size, smaller.hash) == (256, info.hash)  # the same files


def test_an_unsupported_pipeline_is_one_clear_line(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    import shutil

    folder = shutil.copytree(tiny_models["z-image"], tmp_path / "sd3")
    index = folder / "model_index.json"
    index.write_text(index.read_text().replace("ZImagePipeline", "StableDiffusion3Pipeline"))
    with pytest.raises(Exception, match="StableDiffusion3Pipeline' is not one visuels renders with"):
        describe_model(DiffusersFolderRef(path=str(folder)))


@pytest.mark.slow
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_each_family_renders_marks_and_records_from_its_campaign_file(
    tiny_models: dict[str, Path], family: str, make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    from visuels.marking.c2pa_manifest import read_manifest_state
    from visuels.review.publish import finish_render

    model = {"kind": "diffusers", "path": str(tiny_models[family]), "native_size": 256}
    settings = {"steps": None, "guidance": None, "scheduler": None, "photos": None}
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    campaign = make_campaign(model=model, communes=one, formats=["instagram_square", "story"], **settings)
    defaults = family_named(family)
    [square, story] = expand_jobs(load_campaign(campaign), describe_model(DiffusersFolderRef(**model)), "float32")
    assert (square.steps, square.guidance, square.scheduler) == (defaults.steps, defaults.guidance, "default")
    assert (square.generation_width, square.generation_height) == (256, 256)
    assert (story.generation_width, story.generation_height) == (192, 336)  # 9:16 on the 16-pixel grid
    # A distilled family reads no negative prompt: it is neither sent nor in the key.
    assert bool(square.negative_prompt) == defaults.negative_prompt

    out = tmp_path / "outputs"
    plan = plan_render(campaign, out, overrides=Overrides(steps=2))
    assert len(plan.pending) == 2
    exported = render_now(renderer, plan, out)
    finish_render(plan, out)
    assert len(exported) == 2
    assert_record_matches_files(out, plan)  # whole, recorded once, the chain intact, every file verifying
    assert rows(database_url(out), "SELECT DISTINCT model_licence FROM ledger") == [("apache-2.0",)]
    manifest = read_manifest_state(out / exported[0].job.relative_path, None)
    assert manifest.model_licence == "apache-2.0" and manifest.soft_binding is not None


def test_a_klein_base_folder_takes_its_cards_steps_and_guidance(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """FLUX.2 klein Base says so in its pipeline's config (``is_distilled: false``): 50 steps at
    guidance 4, classifier-free, where the distilled klein takes 4 steps without; a campaign's own
    settings still win. Z-Image Turbo: 8 steps, its card's 8 model evaluations in diffusers 0.42."""
    import json

    from visuels.review.publish import finish_render

    base = shutil.copytree(tiny_models["flux2-klein"], tmp_path / "klein-base")
    index = json.loads((base / "model_index.json").read_text(encoding="utf-8"))
    (base / "model_index.json").write_text(json.dumps(index | {"is_distilled": False}), encoding="utf-8")
    distilled, undistilled = (
        describe_model(DiffusersFolderRef(path=str(folder))) for folder in (tiny_models["flux2-klein"], base)
    )
    assert (distilled.steps, distilled.guidance) == (4, 1.0)
    assert (undistilled.steps, undistilled.guidance) == (50, 4.0) and undistilled.family == "flux2-klein"
    assert undistilled.hash != distilled.hash  # its config is part of the model's files
    assert describe_model(DiffusersFolderRef(path=str(tiny_models["z-image"]))).steps == 8

    model = {"kind": "diffusers", "path": str(base), "native_size": 256}
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    defaults = {"steps": None, "guidance": None, "scheduler": None, "photos": None}
    campaign = make_campaign(model=model, communes=one, formats=["instagram_square"], **defaults)
    [job] = expand_jobs(load_campaign(campaign), undistilled, "float32")
    assert (job.steps, job.guidance) == (50, 4.0)
    own = make_campaign(model=model, communes=one, formats=["instagram_square"], **defaults | {"steps": 28})
    assert expand_jobs(load_campaign(own), undistilled, "float32")[0].steps == 28

    out = tmp_path / "outputs"
    plan = plan_render(campaign, out, overrides=Overrides(steps=2))
    [item] = render_now(renderer, plan, out)  # guided: the pipeline runs its empty-prompt pass
    assert (item.job.steps, item.job.guidance) == (2, 4.0)
    finish_render(plan, out)
    assert_record_matches_files(out, plan)


@pytest.mark.slow
def test_model_dir_renders_a_family_at_its_native_size(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """What ``visuels render --model DIR`` plans: the folder's family and native size (1024)."""
    campaign = make_campaign(formats=["instagram_square"], steps=None, guidance=None, scheduler=None, photos=None)
    campaign_path = load_campaign(campaign).path
    out = tmp_path / "outputs"
    plan = plan_render(campaign_path, out, overrides=Overrides(model=str(tiny_models["flux2-klein"]), steps=1))
    assert {(job.generation_width, job.generation_height) for job in plan.jobs} == {(1024, 1024)}
    exported = render_now(renderer, plan, out, plan.pending[:1])
    assert len(exported) == 1 and (out / exported[0].job.relative_path).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_a_model_given_for_the_run_renders_the_sample_campaign_as_its_family_does(
    family: str, make_campaign: Callable[..., Path], tmp_path: Path, renderer, caplog: pytest.LogCaptureFixture
) -> None:
    """``visuels render campaigns/ete-2027.yaml --model DIR``, DIR shaped as diffusers' own tests
    make their dummy models: the campaign's SD settings (steps, guidance 4, scheduler euler,
    photos) give way to the family's with a warning, the pictures stay within the position tables
    of a VAE of one or two blocks, and they are marked, recorded and retouched (a tall box) within
    the same tables."""
    from visuels.inputs.images import read_picture
    from visuels.record.database import Database
    from visuels.review.derivatives import find_original
    from visuels.review.publish import finish_render
    from visuels.review.retouch import RetouchSettings, retouch, retouch_model

    folder = save_test_shaped(family, tmp_path / family)
    # The sample's prompt, longer than the test model's text positions (byte-level tokens).
    prompt = "poster of {commune}, {landmark}, {landscape} landscape, {season}, inviting {audience}" + ", bright" * 30
    campaign = make_campaign(formats=["instagram_square", "story"], photos={"strength": 0.5}, prompt=prompt)
    out = tmp_path / "outputs"
    story = Selection(communes=["Sète"], formats=["story"])  # the tallest format, from a photo where offered
    with caplog.at_level("WARNING"):
        plan = plan_render(campaign, out, story, Overrides(model=str(folder), steps=2))
    defaults, info = family_named(family), describe_model(DiffusersFolderRef(path=str(folder)))
    assert "are for its own Stable Diffusion 1.5 model" in caplog.text
    # Its own guidance: diffusers' test klein is the undistilled base (``is_distilled`` left false).
    assert {(job.steps, job.guidance, job.scheduler) for job in plan.jobs} == {(2, info.guidance, "default")}
    assert (info.steps, info.guidance) == (
        (50, 4.0) if family == "flux2-klein" else (defaults.steps, defaults.guidance)
    )
    assert ("cannot start from a photo" in caplog.text) == (defaults.img2img is None)
    assert any(job.photo is not None for job in plan.jobs) == (defaults.img2img is not None)
    longest = info.longest_side or 10**6
    assert all(max(job.generation_width, job.generation_height) <= longest for job in plan.jobs)
    [item] = render_now(renderer, plan, out)
    finish_render(plan, out)
    assert_record_matches_files(out, plan)

    # Retouched with the model that made it, over a tall box: within the same tables.
    database = Database(database_url(out))
    try:
        retouching = retouch_model(database, find_original(database, out / item.job.relative_path, out))
    finally:
        database.close()
    picture = read_picture(out / item.job.relative_path)
    mask = np.zeros((picture.height, picture.width), dtype=bool)
    mask[100:1800, 300:700] = True
    settings = RetouchSettings(prompt="a boat", mode="inpaint", variants=1, strength=0.9, steps=2)
    [variant] = retouch(renderer.host, retouching, picture, mask, settings, torch.float32)
    assert variant.size == picture.size


def test_a_model_given_for_the_run_keeps_the_settings_it_can_use_when_the_campaigns_own_is_elsewhere(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The campaign names a folder of another machine: its family is not known to differ, so its
    steps and guidance stay; only the scheduler the run's model cannot take gives way. A model of
    the campaign's own family changes nothing."""
    elsewhere = {"kind": "diffusers", "path": str(tmp_path / "not-here")}
    campaign = make_campaign(model=elsewhere, formats=["instagram_square"], photos=None)
    with caplog.at_level("WARNING"):
        plan = plan_render(campaign, tmp_path / "out", overrides=Overrides(model=str(tiny_models["z-image"])))
    assert {(job.steps, job.guidance, job.scheduler) for job in plan.jobs} == {(3, 4.0, "default")}
    assert "scheduler is not one Z-Image models take" in caplog.text
    caplog.clear()
    same_family = make_campaign(name="sd.yaml", formats=["instagram_square"], photos=None)
    demo = plan_render(same_family, tmp_path / "out", overrides=Overrides(model="demo"))
    assert {(job.steps, job.guidance, job.scheduler) for job in demo.jobs} == {(3, 4.0, "euler")}
    assert not [record for record in caplog.records if record.levelname == "WARNING"]


def test_a_lora_for_the_other_kind_of_denoiser_is_refused_or_left_out(
    tiny_models: dict[str, Path],
    make_campaign: Callable[..., Path],
    lora_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An SD LoRA named by a campaign on FLUX.2 klein (and a FLUX LoRA on SD1.5) is refused when the
    campaign is checked or planned, naming the field; a model given for the run leaves it out, as
    it leaves out the photo uses its family cannot serve."""
    from safetensors.torch import save_file

    klein = {"kind": "diffusers", "path": str(tiny_models["flux2-klein"]), "native_size": 256}
    sd_lora_on_klein = make_campaign(
        "klein.yaml",
        model=klein,
        formats=["instagram_square"],
        scheduler=None,
        photos=None,
        guidance=None,
        lora={"path": str(lora_file), "scale": 0.8},
    )
    with pytest.raises(CampaignError, match=r"lora\.path: this LoRA changes a UNet's layers: .* than FLUX\.2 klein"):
        plan_render(sd_lora_on_klein, tmp_path / "out")
    flux_lora = tmp_path / "flux.safetensors"
    prefix = "transformer.transformer_blocks.0.attn.to_q"
    save_file(
        {f"{prefix}.lora_A.weight": torch.ones(4, 8), f"{prefix}.lora_B.weight": torch.ones(8, 4)}, str(flux_lora)
    )
    on_sd = make_campaign(
        "sd.yaml", formats=["instagram_square"], photos=None, speed_lora={"path": str(flux_lora), "scale": 1.0}
    )
    with pytest.raises(CampaignError, match=r"speed_lora\.path: this LoRA changes a transformer's layers"):
        plan_render(on_sd, tmp_path / "out")

    with_sd_lora = make_campaign(
        "run.yaml", formats=["instagram_square"], photos=None, lora={"path": str(lora_file), "scale": 0.8}
    )
    with caplog.at_level("WARNING"):
        plan = plan_render(with_sd_lora, tmp_path / "out", overrides=Overrides(model=str(tiny_models["flux2-klein"])))
    assert "the campaign's lora was made for another kind of model than FLUX.2 klein: left out" in caplog.text
    assert {job.lora_hash for job in plan.jobs} == {None}
    assert {job.lora_hash for job in plan_render(with_sd_lora, tmp_path / "out").jobs} != {None}  # on its own model

    # A UNet of the same kind whose widths the LoRA's are not (an SDXL for the run): left out too.
    from tests.helpers import write_lora_at_other_widths
    from tests.test_model import save_tiny_sdxl

    sdxl = save_tiny_sdxl(tmp_path / "sdxl")
    wider = write_lora_at_other_widths(lora_file, tmp_path / "wider.safetensors")
    with_wider_lora = make_campaign(
        "wider.yaml", formats=["instagram_square"], photos=None, lora={"path": str(wider), "scale": 0.8}
    )
    caplog.clear()
    with caplog.at_level("WARNING"):
        plan = plan_render(with_wider_lora, tmp_path / "out", overrides=Overrides(model=str(sdxl)))
    assert "the campaign's lora does not fit Stable Diffusion XL (its layers or widths): left out" in caplog.text
    assert {job.lora_hash for job in plan.jobs} == {None}


# Each family's ComfyUI export, checked against a family whose layers it does not name (the tiny
# FLUX.2 klein and Qwen-Image share their double blocks' names and widths: the full ones do not).
OTHER_FAMILY = {"flux1": "z-image", "flux2-klein": "z-image", "qwen-image": "z-image", "z-image": "flux1"}


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_a_loras_comfyui_export_fits_its_family_and_is_refused_on_another_before_the_run(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, family: str
) -> None:
    """The layout `visuels train` exports for ComfyUI (``diffusion_model.`` names, FLUX.2's fused BFL
    layers) was left to loading: a LoRA for another family stopped the night's run when its model
    loaded it. It is read as diffusers converts it, from its header, when the campaign is planned."""
    from diffusers import DiffusionPipeline
    from peft import LoraConfig
    from visuels.training.export import export_comfyui
    from visuels.training.objectives import FLUX2_TARGET_MODULES, JOINT_TARGET_MODULES, ZIMAGE_TARGET_MODULES

    targets = {"flux2-klein": FLUX2_TARGET_MODULES, "z-image": ZIMAGE_TARGET_MODULES}.get(family, JOINT_TARGET_MODULES)
    pipeline = DiffusionPipeline.from_pretrained(tiny_models[family])
    pipeline.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    exported = export_comfyui(pipeline, family, tmp_path, 4.0, {"rank": "4"})
    settings = {"formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None, "photos": None}
    lora = {"path": str(exported), "scale": 0.8}
    for model_family in (family, OTHER_FAMILY[family]):
        model = {"kind": "diffusers", "path": str(tiny_models[model_family]), "native_size": 256}
        campaign = make_campaign(f"{model_family}.yaml", model=model, lora=lora, **settings)
        if model_family == family:
            assert plan_render(campaign, tmp_path / "out").setup.lora is not None
        else:
            label = re.escape(family_named(model_family).label)
            with pytest.raises(CampaignError, match=rf"lora\.path: .*\({label}\)(: | does not have: )a LoRA made for"):
                plan_render(campaign, tmp_path / "out")


def test_sizes_stay_within_a_models_position_tables(tmp_path: Path) -> None:
    """Z-Image's RoPE tables reach a fixed count of patches: every format and its high-resolution
    passes stay within them; the family's 1024 pixels are for its published 8x VAE."""
    from visuels.inputs.formats import FORMAT_PRESETS
    from visuels.planning.jobs import generation_size, hires_pass

    info = describe_model(DiffusersFolderRef(path=str(save_test_shaped("z-image", tmp_path / "z"))))
    assert (info.native_size, info.size_multiple, info.longest_side) == (128, 4, 128)  # 32 patches x 2 x 2
    for preset in FORMAT_PRESETS.values():
        width, height = generation_size(preset, info)
        assert width % 4 == height % 4 == 0 and max(width, height) <= 128
        for size in (hires_pass(preset, (width, height), info) or SimpleNamespace(sizes=())).sizes:
            assert max(size) <= 128


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux1", "z-image", "qwen-image"])
def test_families_with_img2img_start_from_a_commune_photo(
    tiny_models: dict[str, Path], family: str, make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    model = {"kind": "diffusers", "path": str(tiny_models[family]), "native_size": 256}
    campaign = make_campaign(
        model=model, formats=["instagram_square"], steps=4, guidance=None, scheduler=None, photos={"strength": 0.5}
    )
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    from_photo = [job for job in plan.pending if job.photo is not None]
    assert from_photo  # Sète has photos
    exported = render_now(renderer, plan, out, from_photo[:1])
    assert len(exported) == 1 and (out / exported[0].job.relative_path).is_file()


def test_a_family_without_img2img_refuses_photos_in_one_line(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    model = {"kind": "diffusers", "path": str(tiny_models["flux2-klein"]), "native_size": 256}
    campaign = make_campaign(model=model, scheduler=None)
    with pytest.raises(CampaignError, match=r"FLUX\.2 klein models cannot start from a photo") as caught:
        plan_render(campaign, tmp_path / "outputs")
    assert caught.value.field == "photos"
    scheduled = make_campaign(model=model, photos=None, scheduler="euler")
    with pytest.raises(CampaignError, match="use their own flow-matching scheduler"):
        plan_render(scheduled, tmp_path / "outputs")


def test_keys_are_stable_and_follow_the_family_settings(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    """The same folder and campaign, the same keys; another family or other steps, other keys."""
    keys: dict[tuple[str, int | None], list[str]] = {}
    for family in ("flux2-klein", "z-image"):
        model = DiffusersFolderRef(path=str(tiny_models[family]), native_size=256)
        for steps in (None, 2):
            fields = {"steps": steps, "guidance": None, "scheduler": None, "photos": None}
            campaign = load_campaign(make_campaign(model=model.model_dump(), **fields))
            keys[family, steps] = [job.key for job in expand_jobs(campaign, describe_model(model), "float32")]
            assert [job.key for job in expand_jobs(campaign, describe_model(model), "float32")] == keys[family, steps]
    every = [key for listed in keys.values() for key in listed]
    assert len(set(every)) == len(every)


def test_licences_are_read_and_classified(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nlicense: other\nlicense_name: flux-1-dev-non-commercial-license\n---\n")
    assert card_licence(tmp_path).use == "non_commercial"
    assert [licence_use(name) for name in ("Apache-2.0", "openrail++", "cc-by-nc-4.0", "qwen-research", "x")] == [
        "publishable",
        "publishable",
        "non_commercial",
        "research_only",
        "unknown",
    ]
    (tmp_path / "README.md").write_text("# no front matter\n")
    assert card_licence(tmp_path).id is None
    # Cards as they come: a byte-order mark, Windows line ends, a list (bound by its most
    # restrictive member: weights and code under two licences are both bound), front matter
    # that does not parse (nothing known: a finding, never a guess).
    cards = {
        "\ufeff---\nlicense: other\nlicense_name: flux-non-commercial-license\n---\n": (
            "flux-non-commercial-license",
            "non_commercial",
        ),
        "---\r\nlicense: Apache-2.0\r\n---\r\n": ("apache-2.0", "publishable"),
        "---\nlicense:\n- apache-2.0\n---\n": ("apache-2.0", "publishable"),
        "---\nlicense: [apache-2.0, cc-by-nc-4.0]\n---\n": ("apache-2.0, cc-by-nc-4.0", "non_commercial"),
        "---\nlicense: [other, mit]\nlicense_name: stabilityai-ai-community\n---\n": (
            "stabilityai-ai-community, mit",
            "revenue_capped",
        ),
        "---\nlicense: other\n---\n": (None, "unknown"),
        "---\nlicense: [apache\n---\n": (None, "unknown"),
    }
    for card, (licence_id, use) in cards.items():
        (tmp_path / "README.md").write_bytes(card.encode("utf-8"))
        assert (card_licence(tmp_path).id, card_licence(tmp_path).use) == (licence_id, use), card


@pytest.mark.slow
def test_a_non_commercial_model_is_refused_unless_the_campaign_records_why(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    from visuels.cli.main import main

    folder = save_tiny("z-image", tmp_path / "dev", licence="other", licence_name="flux-1-dev-non-commercial-license")
    model = {"kind": "diffusers", "path": str(folder), "native_size": 256}
    common = {"model": model, "formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None}
    refused = make_campaign(**common, photos=None)
    with pytest.raises(CampaignError, match=r"\(flux-1-dev-non-commercial-license\) does not let a region"):
        plan_render(refused, tmp_path / "outputs")
    # The command line says it in one line, exit code 2, before anything is rendered.
    assert main(["render", str(refused), "--output-dir", str(tmp_path / "outputs")], render=lambda _: None) == 2
    assert not (tmp_path / "outputs").exists()

    reason = "Internal mock-ups for the jury, never published"
    allowed = make_campaign("allowed.yaml", **common, photos=None, model_licence={"override": reason})
    out = tmp_path / "outputs"
    plan = plan_render(allowed, out)
    assert plan.setup.model_licence.override == reason
    render_now(renderer, plan, out, plan.pending[:1])
    recorded = rows(database_url(out), "SELECT model_licence, licence_override FROM ledger")
    assert recorded == [("flux-1-dev-non-commercial-license", reason)]


def test_check_refuses_what_render_would_of_a_campaign_on_its_model(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A campaign copied from the sample with only its model changed said "ok" in `visuels check`,
    then its render was refused: the sample's `scheduler: euler` is no FLUX.2 klein scheduler."""
    from visuels.cli.main import main

    model = {"kind": "diffusers", "path": str(tiny_models["flux2-klein"]), "native_size": 256}
    sample_like = make_campaign(model=model, formats=["instagram_square"], scheduler="euler", photos=None)
    assert main(["check", str(sample_like)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {sample_like}: scheduler: FLUX.2 klein models use their own flow-matching scheduler:"
        " write `scheduler: default` or leave it out"
    )
    fixed = make_campaign("fixed.yaml", model=model, formats=["instagram_square"], scheduler=None, photos=None)
    assert main(["check", str(fixed)]) in (0, 1)  # valid; 1 only for review findings
    assert capsys.readouterr().out.startswith(f"ok  {fixed}")
    missing = make_campaign("missing.yaml", model={"kind": "diffusers", "path": "/nonexistent/model"}, photos=None)
    assert main(["check", str(missing)]) == 2  # as a missing LoRA is
    assert capsys.readouterr().err.strip() == f"error: {missing}: model: /nonexistent/model not found"


def test_a_declared_licence_fills_a_silent_card_and_may_not_contradict_one(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    model = {"kind": "diffusers", "path": str(tiny_models["z-image"]), "native_size": 256}
    common = {"model": model, "steps": 2, "guidance": None, "scheduler": None, "photos": None}
    contradicting = make_campaign(**common, model_licence={"licence": "mit"})
    with pytest.raises(CampaignError, match=r"own files say its licence is apache-2\.0, not mit"):
        plan_render(contradicting, tmp_path / "outputs")


@pytest.mark.slow
def test_z_image_guidance_stops_early_one_transformer_pass_per_picture_after(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models["z-image"]), native_size=256)
    campaign = make_campaign(
        model=ref.model_dump(),
        formats=["instagram_square"],
        audiences={"a": "families", "b": "students"},
        steps=5,
        guidance=3.0,
        guidance_cutoff=0.4,
        scheduler=None,
        photos=None,
    )
    jobs = expand_jobs(load_campaign(campaign), describe_model(ref), "float32")[:2]
    host = ModelHost(torch.device("cpu"))
    calls: list[int] = []
    with host.use(ref, torch.float32, None) as pipeline:  # loaded once, kept by the host
        # Z-Image's transformer takes a list of latents: its length is the pictures of the pass.
        hook = pipeline.transformer.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    try:
        cut = host.generate(ref, torch.float32, None, jobs)
    finally:
        hook.remove()
    assert calls == [4] * 2 + [2] * 3  # guided for 2 of the 5 steps
    full = host.generate(ref, torch.float32, None, [job.model_copy(update={"guidance_cutoff": None}) for job in jobs])
    assert np.abs(cut[0].astype(int) - full[0].astype(int)).mean() > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("family", ["z-image", "flux1", "flux2-klein", "qwen-image"])
def test_a_flow_family_starts_from_the_marked_noise_and_its_flow_runs_back_to_it(
    family: str, tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    """The mark on a flow-matching transformer, each in its own latent layout. Read here from the
    final latents: the tiny models' VAEs have random weights and do not reconstruct (a picture
    re-encoded correlates 0.01 with its latents), so the picture-level read needs a real
    checkpoint; the demo model's covers it for a UNet."""
    from visuels.models.host import ModelHost
    from visuels.models.inversion import as_latents_argument, invert_flow
    from visuels.models.noise import starting_latents
    from visuels.models.noise_mark import read_bits

    key = 0x5EED_0F_A_C0DE
    ref = DiffusersFolderRef(path=str(tiny_models[family]), native_size=256)
    fields = {"formats": ["instagram_square"], "steps": 8, "guidance": None, "scheduler": None, "photos": None}
    jobs = expand_jobs(load_campaign(make_campaign(model=ref.model_dump(), **fields)), describe_model(ref), "float32")
    assert {job.noise_mark for job in jobs} == {"1"}
    host = ModelHost(torch.device("cpu"))
    marked = host.generate(ref, torch.float32, None, jobs[:1], noise_key=key)[0]
    assert not np.array_equal(marked, host.generate(ref, torch.float32, None, jobs[:1])[0])
    family_defaults = family_named(family)
    with host.use(ref, torch.float32, None) as pipeline, torch.inference_mode():
        starts = {"marked": starting_latents(pipeline, jobs[:1], key), "ordinary": None}
        for start, noise in starts.items():
            final = pipeline(
                **prompt_arguments(pipeline, family_defaults, [jobs[0].prompt], [""], family_defaults.guidance),
                latents=noise,
                height=256,
                width=256,
                num_inference_steps=8,
                generator=torch.Generator().manual_seed(1),
                output_type="latent",
            ).images
            back = invert_flow(pipeline, as_latents_argument(pipeline, final), 256, 256, 25)
            reading = read_bits(back[0].numpy(), key)
            assert (reading.payload == payload_for_key(jobs[0].generation_key)) == (start == "marked")


@pytest.mark.slow
def test_a_lora_on_a_transformer_loads_changes_the_pictures_and_fuses_to_the_same(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    from diffusers import Flux2KleinPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from visuels.models.host import ModelHost

    folder = tiny_models["flux2-klein"]
    transformer = Flux2KleinPipeline.from_pretrained(folder).transformer
    torch.manual_seed(5)
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    with torch.no_grad():  # a strong style: the saved file keeps no alpha, so the weights carry it
        for name, weights in transformer.named_parameters():
            if "lora_B" in name:
                weights.mul_(8)
    Flux2KleinPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(transformer))
    lora = LoraWeights(path=str(tmp_path / "pytorch_lora_weights.safetensors"), scale=1.0)

    ref = DiffusersFolderRef(path=str(folder), native_size=256)
    campaign = make_campaign(model=ref.model_dump(), steps=2, guidance=None, scheduler=None, photos=None)
    jobs = expand_jobs(load_campaign(campaign), describe_model(ref), "float32")[:1]
    unfused, fused = ModelHost(torch.device("cpu"), fuse_lora=False), ModelHost(torch.device("cpu"), fuse_lora=True)
    plain = unfused.generate(ref, torch.float32, None, jobs)[0]
    styled = unfused.generate(ref, torch.float32, lora, jobs)[0]
    assert np.abs(styled.astype(int) - plain.astype(int)).mean() > 1
    assert np.abs(fused.generate(ref, torch.float32, lora, jobs)[0].astype(int) - styled.astype(int)).max() <= 1
    assert np.array_equal(fused.generate(ref, torch.float32, None, jobs)[0], plain)  # unfused back exactly


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux2-klein", "qwen-image"])
def test_an_output_of_a_family_is_retouched_with_its_own_model(
    tiny_models: dict[str, Path], family: str, make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """Inpainting through the family's own pipeline: only the mask changes. FLUX.2 klein has no
    img2img pipeline: that mode is one clear line."""
    from visuels.errors import ModelError
    from visuels.inputs.images import read_picture
    from visuels.record.database import Database
    from visuels.review.derivatives import find_original
    from visuels.review.retouch import RetouchSettings, retouch, retouch_model

    model = {"kind": "diffusers", "path": str(tiny_models[family]), "native_size": 256}
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    campaign = make_campaign(
        model=model, communes=one, formats=["instagram_square"], steps=2, guidance=None, scheduler=None, photos=None
    )
    out = tmp_path / "outputs"
    [item] = render_now(renderer, plan_render(campaign, out), out)
    database = Database(database_url(out))
    try:
        retouching = retouch_model(database, find_original(database, out / item.job.relative_path, out))
    finally:
        database.close()
    assert (retouching.family, retouching.native_size) == (family, 256)
    picture = read_picture(out / item.job.relative_path)
    mask = np.zeros((picture.height, picture.width), dtype=bool)
    mask[200:500, 200:500] = True
    settings = RetouchSettings(prompt="a boat", mode="inpaint", variants=1, strength=0.9)
    [variant] = retouch(renderer.host, retouching, picture, mask, settings, torch.float32)
    changed = np.abs(np.asarray(variant, dtype=np.int16) - np.asarray(picture, dtype=np.int16)).max(axis=2) > 0
    assert not changed[~mask].any() and changed[mask].mean() > 0.5
    if family == "flux2-klein":
        with pytest.raises(ModelError, match=r"FLUX\.2 klein models have no img2img pipeline"):
            retouch(
                renderer.host, retouching, picture, mask, settings.model_copy(update={"mode": "img2img"}), torch.float32
            )


def test_doctor_shows_each_models_family_and_licence(
    tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.cli.main import main

    dev = save_tiny("flux2-klein", tmp_path / "klein-9b", licence="other", licence_name="flux-non-commercial-license")
    silent = save_tiny("z-image", tmp_path / "silent")
    (silent / "README.md").unlink()
    arguments = ["--model", str(tiny_models["qwen-image"]), "--model", str(dev), "--model", str(silent)]
    assert main(["doctor", *arguments, "--output-dir", str(tmp_path / "outputs")]) == 1  # the refused licence
    shown = " ".join(capsys.readouterr().out.split())
    assert "qwen-image: Qwen-Image, 1328 px" in shown
    assert "apache-2.0: a region may publish its pictures" in shown
    assert "refused model " in shown and "licence: flux-non-commercial-license does not let a region publish" in shown
    assert "none in its card or files" in shown


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux2-klein", "z-image", "flux1", "qwen-image"])
def test_the_charter_lora_trains_on_a_flow_family_resumes_exactly_and_renders(
    tiny_models: dict[str, Path], family: str, tmp_path: Path, make_campaign: Callable[..., Path]
) -> None:
    """The flow-matching loss goes down over a short run; a run cut after a checkpoint and resumed
    ends with the same weights; the exported file loads in a campaign and changes its pictures.
    Every family's run writes a ComfyUI file too, which diffusers reads back to the same LoRA."""
    from safetensors.torch import load_file
    from visuels.models.host import ModelHost
    from visuels.training import TrainingConfig, run_training

    from tests.helpers import SAMPLE_CHARTER_DIR

    base = DiffusersFolderRef(path=str(tiny_models[family]))
    config = TrainingConfig(
        steps=20,
        resolution=128,
        rank=8,
        learning_rate=5e-3,
        batch_size=4,
        checkpoint_every=10,
        validation_seeds=[1],
        sample_steps=2,
    )
    straight = run_training(SAMPLE_CHARTER_DIR, base, config, root=tmp_path / "straight")
    assert len(straight.validation_grids) == 2
    # The ComfyUI file: Z-Image's diffusers module names (its Lumina2 loader maps them onto the
    # fused layers), FLUX.2's original layer names (q, k, v fused), as ComfyUI's loaders take them.
    projections = r"attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)"
    comfy_names = {
        "z-image": r"diffusion_model\.(layers|noise_refiner|context_refiner)\.\d+\.attention\.(to_[qkv]|to_out\.0)",
        "flux2-klein": r"diffusion_model\.(double_blocks\.\d+\.(img|txt)_attn\.(qkv|proj)|single_blocks\.\d+\.linear1)",
        # The diffusers module paths (ComfyUI maps FLUX.1's through flux_to_diffusers).
        "flux1": r"transformer\.(single_)?transformer_blocks\.\d+\." + projections,
        "qwen-image": r"diffusion_model\.transformer_blocks\.\d+\." + projections,
    }[family]
    modules = {key.rsplit(".lora_", 1)[0].removesuffix(".alpha") for key in load_file(straight.community_file)}
    assert modules and all(re.fullmatch(comfy_names, module) for module in modules), modules
    losses = torch.load(straight.folder / "checkpoints" / "step-000020.pt", weights_only=False)["losses"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses

    def power_cut(step: int, loss: float) -> None:
        if step == 12:  # after the step-10 checkpoint, before the end
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(SAMPLE_CHARTER_DIR, base, config, root=tmp_path / "resumed", on_step=power_cut)
    [partial] = list((tmp_path / "resumed" / "solane").glob(".*.partial"))
    resumed = run_training(SAMPLE_CHARTER_DIR, base, config, resume=partial.name[1:-8], root=tmp_path / "resumed")
    first, second = load_file(str(straight.diffusers_file)), load_file(str(resumed.diffusers_file))
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    for file, twin in (
        (resumed.diffusers_file, straight.diffusers_file),
        (resumed.community_file, straight.community_file),
    ):
        assert file.read_bytes() == twin.read_bytes()  # one LoRA hash: nothing rendered again for it

    ref = DiffusersFolderRef(path=str(tiny_models[family]), native_size=256)
    campaign = make_campaign(model=ref.model_dump(), steps=2, guidance=None, scheduler=None, photos=None)
    jobs = expand_jobs(load_campaign(campaign), describe_model(ref), "float32")[:1]
    host = ModelHost(torch.device("cpu"))
    plain = host.generate(ref, torch.float32, None, jobs)[0]
    styled = host.generate(ref, torch.float32, LoraWeights(path=str(straight.diffusers_file), scale=1.0), jobs)[0]
    assert not np.array_equal(plain, styled)
    # The ComfyUI file through diffusers' own conversion of that format: the same LoRA.
    community = LoraWeights(path=str(straight.community_file), scale=1.0)
    assert np.abs(host.generate(ref, torch.float32, community, jobs)[0].astype(int) - styled.astype(int)).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux2-klein", "z-image"])
def test_the_charter_lora_trains_on_a_test_shaped_model_within_its_tables(family: str, tmp_path: Path) -> None:
    """Shaped as diffusers' tests make them: FLUX.2 klein's two-layer text encoder is read at the
    layers its transformer takes (training, validation grid, evaluation); a resolution beyond
    Z-Image's position tables is one line naming the field."""
    from visuels.errors import ModelError
    from visuels.training import TrainingConfig, run_training

    from tests.helpers import SAMPLE_CHARTER_DIR

    base = DiffusersFolderRef(path=str(save_test_shaped(family, tmp_path / family)))
    config = TrainingConfig(steps=2, resolution=64, checkpoint_every=2, validation_seeds=[1], sample_steps=2)
    summary = run_training(SAMPLE_CHARTER_DIR, base, config, root=tmp_path / "lora")
    assert summary.steps == 2 and summary.diffusers_file.is_file() and len(summary.validation_grids) == 1
    if family == "z-image":
        too_large = config.model_copy(update={"resolution": 256})
        with pytest.raises(ModelError, match="position tables reach 128 pixels") as caught:
            run_training(SAMPLE_CHARTER_DIR, base, too_large, root=tmp_path / "lora")
        assert caught.value.field == "resolution" and caught.value.file == str(tmp_path / family)


def test_training_refuses_a_family_it_cannot_train(tmp_path: Path) -> None:
    from visuels.errors import ModelError
    from visuels.training import TrainingConfig, run_training

    from tests.helpers import SAMPLE_CHARTER_DIR
    from tests.test_model import save_tiny_sdxl

    sdxl = DiffusersFolderRef(path=str(save_tiny_sdxl(tmp_path / "sdxl")))
    with pytest.raises(ModelError, match=r"training is built for SD1\.5, FLUX\.1, .* Qwen-Image models, not Stable"):
        run_training(SAMPLE_CHARTER_DIR, sdxl, TrainingConfig())


@pytest.mark.slow
def test_a_model_that_fails_on_a_format_is_one_line_naming_the_job(
    tmp_path: Path, make_campaign: Callable[..., Path]
) -> None:
    """A model failing on a job (here a fine-tune's position tables too short for the size asked,
    which planning keeps within; the job is made taller by hand): a ModelError naming the job's
    file and size (the CLI's one line), not a traceback."""
    from diffusers import ZImagePipeline
    from visuels.errors import ModelError
    from visuels.models.host import ModelHost

    folder = save_tiny("z-image", tmp_path / "short")
    pipeline = ZImagePipeline.from_pretrained(folder)
    short = type(pipeline.transformer).from_config({**pipeline.transformer.config, "axes_lens": [1024, 64, 64]})
    short.load_state_dict(pipeline.transformer.state_dict())
    short.save_pretrained(folder / "transformer")
    ref = DiffusersFolderRef(path=str(folder))
    campaign = make_campaign(
        model=ref.model_dump(), formats=["story"], steps=1, guidance=None, scheduler=None, photos=None
    )
    [planned, *_] = expand_jobs(load_campaign(campaign), describe_model(ref), "float32")
    assert max(planned.generation_width, planned.generation_height) <= 64 * 2 * 8  # its tables' reach
    job = planned.model_copy(update={"generation_width": 768, "generation_height": 1360})
    with pytest.raises(
        ModelError, match=r"the model failed on a 768x1360 picture: index 64 is out of bounds"
    ) as caught:
        ModelHost(torch.device("cpu")).generate(ref, torch.float32, None, [job])
    assert caught.value.file == job.relative_path


def test_a_unet_model_keeps_its_own_scheduler_when_told_default(make_campaign: Callable[..., Path]) -> None:
    from visuels.inputs.model_refs import DemoModelRef

    campaign = load_campaign(make_campaign(scheduler="default", photos=None))
    [job, *_] = expand_jobs(campaign, describe_model(DemoModelRef()), "float32")
    assert (job.scheduler, job.steps, job.guidance) == ("default", 3, 4.0)  # the campaign's steps and guidance


@pytest.mark.slow
def test_a_flow_family_draws_posters_larger_and_outpaints_a_key_visual(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """Z-Image's img2img redraws a poster's enlarged first pass; its inpainting pipeline extends
    the square key visual to a banner."""
    model = {"kind": "diffusers", "path": str(tiny_models["z-image"]), "native_size": 256}
    common = {"model": model, "communes": {"file": "charter/communes.csv", "names": ["Collioure"]}, "photos": None}
    common |= {"steps": 2, "guidance": None, "scheduler": None}
    posters = make_campaign("posters.yaml", formats=["poster_a3"], **common)
    declined = make_campaign(
        "declined.yaml", formats=["instagram_square", "web_banner"], format_mode="key_visual", **common
    )
    out = tmp_path / "outputs"
    for campaign in (posters, declined):
        plan = plan_render(campaign, out)
        exported = render_now(renderer, plan, out)
        assert len(exported) == len(plan.jobs) and all((out / item.job.relative_path).is_file() for item in exported)
        if campaign == posters:
            assert plan.jobs[0].hires is not None and plan.jobs[0].hires.sizes[-1][0] > plan.jobs[0].generation_width
        else:
            banner = next(job for job in plan.jobs if job.format == "web_banner")
            assert banner.key_visual is not None and banner.key_visual.method == "outpaint"


@pytest.mark.slow
def test_a_kohya_flux1_lora_from_the_community_loads_and_changes_the_pictures(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """A LoRA in kohya's FLUX.1 layout (the original layer names, q/k/v and the MLP fused, as
    community trainers write it), through diffusers' conversion: every key is taken."""
    from safetensors.torch import save_file
    from visuels.models.host import ModelHost

    hidden, inner, mlp, rank = 32, 32, 128, 4  # the tiny FLUX.1's widths (tests/tiny_families.py)
    layers = {
        "double_blocks_0_img_attn_qkv": (3 * inner, hidden),
        "double_blocks_0_img_attn_proj": (hidden, inner),
        "double_blocks_0_txt_attn_qkv": (3 * inner, hidden),
        "double_blocks_0_txt_attn_proj": (hidden, inner),
        "double_blocks_0_img_mlp_0": (mlp, hidden),
        "double_blocks_0_img_mlp_2": (hidden, mlp),
    }  # not single_blocks' linear1: diffusers splits it at the full model's widths
    generator = torch.Generator().manual_seed(7)
    weights = {}
    for name, (outputs, inputs) in layers.items():
        weights[f"lora_unet_{name}.lora_down.weight"] = torch.randn(rank, inputs, generator=generator)
        weights[f"lora_unet_{name}.lora_up.weight"] = torch.randn(outputs, rank, generator=generator)
        weights[f"lora_unet_{name}.alpha"] = torch.tensor(float(rank))
    save_file(weights, str(tmp_path / "kohya_flux.safetensors"))

    ref = DiffusersFolderRef(path=str(tiny_models["flux1"]), native_size=256)
    settings = {"steps": 2, "guidance": None, "scheduler": None, "photos": None}
    jobs = expand_jobs(load_campaign(make_campaign(model=ref.model_dump(), **settings)), describe_model(ref), "float32")
    host = ModelHost(torch.device("cpu"))
    plain = host.generate(ref, torch.float32, None, jobs[:1])[0]
    styled = host.generate(
        ref, torch.float32, LoraWeights(path=str(tmp_path / "kohya_flux.safetensors"), scale=1.0), jobs[:1]
    )[0]
    assert np.abs(styled.astype(int) - plain.astype(int)).mean() > 1


@pytest.mark.slow
def test_first_block_cache_skips_a_transformers_later_blocks_per_picture_and_is_keyed(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    """First Block Cache on FLUX.1: a high threshold runs the later blocks on fewer steps and
    changes the picture, a threshold of almost nothing runs them on every step and changes nothing;
    a job gives the same picture alone or beside others (one picture per call); the key says it;
    families it does not serve refuse it in one line."""
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models["flux1"]), native_size=256)
    fields = {"formats": ["instagram_square"], "steps": 6, "guidance": None, "scheduler": None, "photos": None}

    def planned(**settings: object) -> list:
        campaign = load_campaign(make_campaign(model=ref.model_dump(), **fields, **settings))
        return expand_jobs(campaign, describe_model(ref), "float32")

    plain, cached, barely = planned(), planned(first_block_cache=0.5), planned(first_block_cache=1e-9)
    assert plain[0].key != cached[0].key != barely[0].key
    assert plain[0].generation_key != cached[0].generation_key
    host = ModelHost(torch.device("cpu"))
    with host.use(ref, torch.float32, None) as pipeline:
        last = pipeline.transformer.single_transformer_blocks[-1].attn
    runs: list[int] = []
    hook = last.register_forward_pre_hook(lambda module, args: runs.append(1))
    try:
        full = host.generate(ref, torch.float32, None, plain[:1])[0]
        full_runs = len(runs)
        skipping = host.generate(ref, torch.float32, None, cached[:1])[0]
        skipping_runs = len(runs) - full_runs
    finally:
        hook.remove()
    assert full_runs == 6 and 1 <= skipping_runs < 6
    assert not np.array_equal(full, skipping)  # 0.3 levels on average on the tiny model
    assert np.array_equal(host.generate(ref, torch.float32, None, barely[:1])[0], full)
    alone = host.generate(ref, torch.float32, None, cached[1:2])[0]
    assert np.array_equal(host.generate(ref, torch.float32, None, cached[:2])[1], alone)
    for family in ("z-image", "flux2-klein"):
        other = DiffusersFolderRef(path=str(tiny_models[family]), native_size=256)
        campaign = load_campaign(make_campaign(model=other.model_dump(), **fields, first_block_cache=0.1))
        with pytest.raises(CampaignError, match="first_block_cache"):
            expand_jobs(campaign, describe_model(other), "float32")
    demo = load_campaign(make_campaign(first_block_cache=0.1, photos=None))
    with pytest.raises(CampaignError, match="first_block_cache"):
        plan_render(demo.path, demo.path.parent / "out")


def test_first_block_cache_on_a_one_block_transformer_gives_the_full_models_pictures(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    """A test-shaped Qwen-Image (one transformer block) with `first_block_cache` failed on every
    picture ("pop from empty list", diffusers' hook): with no block after the first there is
    nothing to skip, and the pictures are the full model's."""
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models["qwen-image"]), native_size=256)
    fields = {"formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None, "photos": None}
    host = ModelHost(torch.device("cpu"))
    with host.use(ref, torch.float32, None) as pipeline:
        assert len(pipeline.transformer.transformer_blocks) == 1
    pictures = []
    for settings in ({}, {"first_block_cache": 0.5}):
        campaign = load_campaign(make_campaign(model=ref.model_dump(), **fields, **settings))
        pictures.append(
            host.generate(ref, torch.float32, None, expand_jobs(campaign, describe_model(ref), "float32")[:1])[0]
        )
    assert np.array_equal(*pictures)


@pytest.mark.slow
def test_a_kohya_qwen_image_lora_from_the_community_gives_the_pictures_of_its_diffusers_twin(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """A LoRA in the layout community trainers write for Qwen-Image (``lora_unet_transformer_blocks_…``
    with ``lora_down``, ``lora_up`` and ``.alpha``), through diffusers' conversion: the same
    pictures as the same weights in diffusers' layout, and not the plain model's."""
    from diffusers import QwenImagePipeline
    from safetensors.torch import save_file
    from visuels.models.host import ModelHost

    transformer = QwenImagePipeline.from_pretrained(tiny_models["qwen-image"]).transformer
    attention = transformer.transformer_blocks[0].attn
    names = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
    generator, rank = torch.Generator().manual_seed(9), 4
    kohya, diffusers_layout = {}, {}
    for name in names:
        layer = attention.get_submodule(name)
        down = torch.randn(rank, layer.in_features, generator=generator) * 0.5
        up = torch.randn(layer.out_features, rank, generator=generator) * 0.5
        flat = f"lora_unet_transformer_blocks_0_attn_{name.replace('.', '_')}"
        kohya |= {f"{flat}.lora_down.weight": down, f"{flat}.lora_up.weight": up, f"{flat}.alpha": torch.tensor(4.0)}
        dotted = f"transformer.transformer_blocks.0.attn.{name}"
        diffusers_layout |= {f"{dotted}.lora_A.weight": down, f"{dotted}.lora_B.weight": up}
    save_file(kohya, str(tmp_path / "kohya_qwen.safetensors"))
    save_file(diffusers_layout, str(tmp_path / "diffusers_qwen.safetensors"))

    ref = DiffusersFolderRef(path=str(tiny_models["qwen-image"]), native_size=256)
    settings = {"steps": 2, "guidance": None, "scheduler": None, "photos": None}
    jobs = expand_jobs(load_campaign(make_campaign(model=ref.model_dump(), **settings)), describe_model(ref), "float32")
    host = ModelHost(torch.device("cpu"))

    def picture(file: str | None) -> np.ndarray:
        weights = LoraWeights(path=str(tmp_path / file), scale=1.0) if file else None
        return host.generate(ref, torch.float32, weights, jobs[:1])[0].astype(int)

    plain, community, twin = picture(None), picture("kohya_qwen.safetensors"), picture("diffusers_qwen.safetensors")
    assert np.abs(community - plain).mean() > 1
    assert np.abs(community - twin).max() <= 1


@pytest.mark.slow
def test_a_transformer_single_file_renders_with_the_rest_of_its_folder(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """A FLUX.1 transformer as one safetensors file (as BFL and ComfyUI share them; here in
    diffusers' names, which diffusers reads as they are: its conversion of the original names is
    its own) beside a diffusers folder holding the rest: the same pictures as the whole folder,
    marked and recorded; its key follows the file."""
    from diffusers import FluxPipeline
    from safetensors.torch import save_file
    from visuels.inputs.model_refs import SingleFileRef
    from visuels.models.host import ModelHost

    whole = tiny_models["flux1"]
    rest = tmp_path / "flux1-rest"
    shutil.copytree(whole, rest)
    for weights in (rest / "transformer").glob("*.safetensors"):
        weights.unlink()  # the folder's transformer weights are never read
    state = FluxPipeline.from_pretrained(whole).transformer.state_dict()
    save_file(
        {name: value.contiguous() for name, value in state.items()}, str(tmp_path / "flux1-transformer.safetensors")
    )
    single = SingleFileRef(path=str(tmp_path / "flux1-transformer.safetensors"), config=str(rest), native_size=256)
    folder = DiffusersFolderRef(path=str(whole), native_size=256)
    info = describe_model(single)
    assert info.family == "flux1" and info.licence.id == "apache-2.0"
    fields = {"formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None, "photos": None}
    jobs = expand_jobs(load_campaign(make_campaign(model=single.model_dump(), **fields)), info, "float32")
    host = ModelHost(torch.device("cpu"))
    assert np.array_equal(
        host.generate(single, torch.float32, None, jobs[:1])[0], host.generate(folder, torch.float32, None, jobs[:1])[0]
    )
    campaign = make_campaign("single.yaml", model=single.model_dump(), **fields)
    plan = plan_render(campaign, tmp_path / "out")
    assert len(render_now(renderer, plan, tmp_path / "out")) == len(plan.jobs)
    # Recorded once each, with its file's hash. (Verifying every mark is the other family tests':
    # the tiny FLUX.1's pictures are dense noise, where the pixel watermark's decoding is marginal
    # by design, and it passes or fails with the rounding of the thread count.)
    recorded = dict(rows(database_url(tmp_path / "out"), "SELECT file, sha256 FROM outputs"))
    assert set(recorded) == {job.relative_path for job in plan.jobs}
    save_file({name: value.contiguous() + 1e-3 for name, value in state.items()}, str(single.path))
    assert describe_model(single).hash != info.hash


def _random_flux_controlnet(folder: Path, pipeline_folder: Path) -> Path:
    """A tiny FLUX.1 ControlNet shaped after the tiny transformer, random weights (its zero-started
    projections too, so the edges do steer), saved as a diffusers folder like a real one."""
    from diffusers import FluxControlNetModel, FluxPipeline

    shape = FluxPipeline.from_pretrained(pipeline_folder).transformer.config
    names = ("patch_size", "in_channels", "attention_head_dim", "num_attention_heads", "joint_attention_dim")
    controlnet = FluxControlNetModel(
        **{name: shape[name] for name in (*names, "pooled_projection_dim", "axes_dims_rope", "guidance_embeds")},
        num_layers=1,
        num_single_layers=0,
    )
    return save_random_controlnet(controlnet, [*controlnet.controlnet_blocks, controlnet.controlnet_x_embedder], folder)


@pytest.mark.slow
def test_a_flux_controlnet_steers_by_the_photos_edges_and_an_sd_one_is_refused(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer, lora_file: Path
) -> None:
    """FLUX.1 steered by a commune photo's edges through its own ControlNet (FluxControlNetModel),
    with img2img from the photo and from text: the edges change the picture, the key names the
    ControlNet, a run renders and records it; a ControlNet of another family is refused in one line."""
    from visuels.errors import CampaignError
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models["flux1"]), native_size=256)
    controlnet = _random_flux_controlnet(tmp_path / "flux-controlnet", tiny_models["flux1"])
    sete = {"file": "charter/communes.csv", "names": ["Sète"]}
    fields = {"communes": sete, "formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None}

    def first_job(name: str, **photos: object):
        campaign = load_campaign(make_campaign(f"{name}.yaml", model=ref.model_dump(), photos=photos, **fields))
        return expand_jobs(campaign, describe_model(ref), "float32")[0]

    steered = first_job("steered", strength=0.6, controlnet={"path": str(controlnet), "scale": 1.0})
    plain = first_job("plain", strength=0.6)
    assert steered.photo.controlnet_hash and steered.key != plain.key
    host = ModelHost(torch.device("cpu"))
    with_edges, without = (host.generate(ref, torch.float32, None, [job])[0] for job in (steered, plain))
    assert np.abs(with_edges.astype(int) - without.astype(int)).mean() > 0.5
    from_text = steered.model_copy(update={"photo": steered.photo.model_copy(update={"strength": None})})
    assert host.generate(ref, torch.float32, None, [from_text])[0].shape == with_edges.shape

    out = tmp_path / "outputs"
    campaign = make_campaign(
        "run.yaml", model=ref.model_dump(), photos={"strength": None, "controlnet": {"path": str(controlnet)}}, **fields
    )
    plan = plan_render(campaign, out)
    assert len(render_now(renderer, plan, out)) == len(plan.jobs)
    recorded = dict(rows(database_url(out), "SELECT file, sha256 FROM outputs"))  # the marks: as above
    assert set(recorded) == {job.relative_path for job in plan.jobs}

    sd_controlnet = tmp_path / "sd-controlnet"
    sd_controlnet.mkdir()
    (sd_controlnet / "config.json").write_text('{"_class_name": "ControlNetModel"}', encoding="utf-8")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(sd_controlnet / "diffusion_pytorch_model.safetensors"))
    wrong = make_campaign(
        "wrong.yaml",
        model=ref.model_dump(),
        photos={"strength": 0.6, "controlnet": {"path": str(sd_controlnet)}},
        **fields,
    )
    with pytest.raises(CampaignError, match=r"not one for FLUX\.1 models \(they take a FluxControlNetModel\)"):
        plan_render(wrong, tmp_path / "wrong")


def _random_qwen_controlnet(folder: Path, pipeline_folder: Path) -> Path:
    """A tiny Qwen-Image ControlNet shaped after the tiny transformer (as the published ones are
    after theirs), random weights, its zero-started projections too, saved as a diffusers folder."""
    import json

    from diffusers import QwenImageControlNetModel

    shape = json.loads((pipeline_folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    names = ("patch_size", "in_channels", "out_channels", "attention_head_dim", "num_attention_heads")
    controlnet = QwenImageControlNetModel(
        **{name: shape[name] for name in (*names, "joint_attention_dim", "axes_dims_rope")}, num_layers=1
    )
    return save_random_controlnet(controlnet, [*controlnet.controlnet_blocks, controlnet.controlnet_x_embedder], folder)


@pytest.mark.slow
def test_a_qwen_image_controlnet_steers_from_text_and_with_img2img_is_refused(
    tiny_models: dict[str, Path], make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    """Qwen-Image steered by a commune photo's edges through its own ControlNet
    (QwenImageControlNetModel, diffusers' QwenImageControlNetPipeline): the edges change the
    picture, the key names the ControlNet, a run renders and records it; with img2img from the
    photo (no such pipeline in diffusers) it is one line naming the field."""
    from visuels.errors import CampaignError
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models["qwen-image"]), native_size=256)
    controlnet = _random_qwen_controlnet(tmp_path / "qwen-controlnet", tiny_models["qwen-image"])
    sete = {"file": "charter/communes.csv", "names": ["Sète"]}
    fields = {"communes": sete, "formats": ["instagram_square"], "steps": 2, "guidance": None, "scheduler": None}

    def first_job(name: str, scale: float):
        photos = {"strength": None, "controlnet": {"path": str(controlnet), "scale": scale}}
        campaign = load_campaign(make_campaign(f"{name}.yaml", model=ref.model_dump(), photos=photos, **fields))
        return expand_jobs(campaign, describe_model(ref), "float32")[0]

    steered, unsteered = first_job("steered", 1.0), first_job("unsteered", 0.0)
    assert steered.photo.controlnet_hash and steered.key != unsteered.key
    host = ModelHost(torch.device("cpu"))
    with_edges, without = (host.generate(ref, torch.float32, None, [job])[0] for job in (steered, unsteered))
    assert with_edges.shape == (256, 256, 3)
    assert np.abs(with_edges.astype(int) - without.astype(int)).mean() > 0.5

    out = tmp_path / "outputs"
    photos = {"strength": None, "controlnet": {"path": str(controlnet)}}
    plan = plan_render(make_campaign("run.yaml", model=ref.model_dump(), photos=photos, **fields), out)
    assert len(render_now(renderer, plan, out)) == len(plan.jobs)
    recorded = dict(rows(database_url(out), "SELECT file, sha256 FROM outputs"))
    assert set(recorded) == {job.relative_path for job in plan.jobs}

    with_img2img = {"strength": 0.6, "controlnet": {"path": str(controlnet)}}
    wrong = make_campaign("wrong.yaml", model=ref.model_dump(), photos=with_img2img, **fields)
    with pytest.raises(
        CampaignError, match=r"Qwen-Image models are steered by a photo's edges from text only"
    ) as refused:
        plan_render(wrong, tmp_path / "wrong")
    assert refused.value.field == "photos.strength"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux1", "z-image", "qwen-image"])
def test_a_posters_second_pass_and_a_photo_draw_at_their_own_size(
    family: str, tiny_models: dict[str, Path], make_campaign: Callable[..., Path]
) -> None:
    """The img2img pipelines of the flow families draw at the size they are given: a poster's
    second pass at the poster's generation size, a photo's pass at the job's (FLUX's and
    Qwen-Image's would draw at their default 1024² otherwise)."""
    from visuels.models.host import ModelHost

    ref = DiffusersFolderRef(path=str(tiny_models[family]), native_size=256)
    sete = {"file": "charter/communes.csv", "names": ["Sète"]}
    fields = {"communes": sete, "steps": 2, "guidance": None, "scheduler": None}
    poster_campaign = make_campaign("poster.yaml", model=ref.model_dump(), formats=["poster_a3"], photos=None, **fields)
    [poster, *_] = expand_jobs(load_campaign(poster_campaign), describe_model(ref), "float32")
    photo_campaign = make_campaign("photo.yaml", model=ref.model_dump(), formats=["story"], **fields)
    [photo, *_] = expand_jobs(load_campaign(photo_campaign), describe_model(ref), "float32")
    assert poster.hires is not None and photo.photo is not None
    host = ModelHost(torch.device("cpu"))
    width, height = poster.hires.sizes[-1]
    assert host.generate(ref, torch.float32, None, [poster])[0].shape == (height, width, 3)
    assert host.generate(ref, torch.float32, None, [photo])[0].shape == (
        photo.generation_height,
        photo.generation_width,
        3,
    )
