"""Retouching by instruction with an edit model (Qwen-Image-Edit-2509's shape, tiny, random weights,
saved as its publisher ships it: tests/tiny_families.py): described from its files and kept apart
from the render models, refused by licence, run through the CLI and the studio on a demo output,
only inside the mask, and marked and recorded with the edit model's hash and licence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from visuels.cli import main
from visuels.errors import ModelError
from visuels.inputs.charter import load_charter
from visuels.inputs.model_refs import DemoModelRef, DiffusersFolderRef, HubRef
from visuels.marking.keys import signing_files
from visuels.models.reference import describe_model
from visuels.record.database import Database, database_url
from visuels.review.retouch import instruct_model

from tests.helpers import SAMPLE_CHARTER_DIR, ledger_rows
from tests.tiny_families import save_tiny_edit_model


@pytest.fixture(scope="session")
def edit_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_edit_model(tmp_path_factory.mktemp("edit") / "Qwen-Image-Edit-tiny")


def test_an_edit_model_is_described_from_its_files_and_kept_apart_from_render_models(edit_model: Path) -> None:
    info = describe_model(DiffusersFolderRef(path=str(edit_model)), edits=True)
    assert (info.family, info.native_size, info.size_multiple) == ("qwen-image-edit-plus", 1024, 16)
    assert (info.licence.id, info.licence.use) == ("apache-2.0", "publishable")
    with pytest.raises(ModelError, match=r"is an edit model \('QwenImageEditPlusPipeline'\).*does not render"):
        describe_model(DiffusersFolderRef(path=str(edit_model)))
    with pytest.raises(ModelError, match="'StableDiffusionPipeline' does not edit pictures by instruction"):
        instruct_model("demo")
    with pytest.raises(ModelError, match=r"needs an edit model.*--edit-model") as missing:
        instruct_model(None)
    assert missing.value.field == "--edit-model"


def test_an_edit_model_whose_licence_refuses_publication_is_refused_and_doctor_says_so(
    edit_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    research = shutil.copytree(edit_model, tmp_path / "research-edit")
    (research / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"its licence \(cc-by-nc-4.0\) does not let a region publish"):
        instruct_model(str(research))
    model = instruct_model(str(edit_model))
    assert (model.steps, model.guidance, model.licence, model.lora) == (40, 4.0, "apache-2.0", None)

    arguments = ["doctor", "--model", str(edit_model), "--model", str(research), "--output-dir", str(tmp_path / "out")]
    assert main(arguments) == 1  # the refused licence
    shown = " ".join(capsys.readouterr().out.split())
    assert "Qwen-Image-Edit-tiny: Qwen-Image-Edit (2509 and later), 1024 px" in shown
    assert "apache-2.0: a region may publish its pictures" in shown
    assert "cc-by-nc-4.0 does not let a region publish its pictures: retouching with it is refused" in shown


def test_the_processor_is_read_without_torchvision_from_the_published_layout(edit_model: Path) -> None:
    """The folder names transformers' Qwen2VLProcessor (whose default image and video processors need
    torchvision): the loaded pipeline gets the PIL image processor with the folder's settings."""
    from visuels.models.host import load_from_files
    from visuels.models.instruct import PictureOnlyProcessor

    settings = json.loads((edit_model / "processor" / "preprocessor_config.json").read_text(encoding="utf-8"))
    assert settings["image_processor_type"] == "Qwen2VLImageProcessor"
    pipeline = load_from_files(DiffusersFolderRef(path=str(edit_model)), torch.float32)
    assert isinstance(pipeline.processor, PictureOnlyProcessor)
    assert pipeline.processor.image_processor.patch_size == settings["patch_size"]
    assert pipeline.processor.image_token_id == pipeline.text_encoder.config.image_token_id


def test_an_edit_model_from_the_hub_cache_gets_the_same_processor(
    edit_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hub:ORG/NAME`` of an edit model, from the local hub cache: described as an edit model
    (doctor included) and loaded with the processor read without torchvision."""
    import shutil

    import huggingface_hub.constants
    from visuels.models.host import load_from_files
    from visuels.models.instruct import PictureOnlyProcessor
    from visuels.models.reference import edits_pictures

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repository = tmp_path / "models--region--edit"
    shutil.copytree(edit_model, repository / "snapshots" / ("c" * 40))
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("c" * 40)
    assert edits_pictures(HubRef(id="region/edit")) and not edits_pictures(DemoModelRef())
    model = instruct_model("hub:region/edit")
    assert model.ref == HubRef(id="region/edit", revision="c" * 40) and model.family == "qwen-image-edit-plus"
    assert isinstance(load_from_files(model.ref, torch.float32).processor, PictureOnlyProcessor)


@pytest.mark.slow
def test_the_first_qwen_image_edit_retouches_through_the_same_code(tmp_path: Path) -> None:
    """QwenImageEditPipeline (Qwen-Image-Edit before 2509): described as its own family, its
    processor read the same way, a masked retouch changing only the mask."""
    from visuels.models.host import ModelHost
    from visuels.review.retouch import RetouchSettings, retouch

    folder = save_tiny_edit_model(tmp_path / "Qwen-Image-Edit-first", pipeline_class="QwenImageEditPipeline")
    model = instruct_model(str(folder))
    assert (model.family, model.steps) == ("qwen-image-edit", 50)
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    mask = np.zeros((240, 320), dtype=bool)
    mask[60:180, 80:240] = True
    settings = RetouchSettings(prompt="a red door", mode="instruct", variants=1, steps=2)
    [variant] = retouch(ModelHost(torch.device("cpu")), model, picture, mask, settings, torch.float32)
    changed = np.abs(np.asarray(variant, dtype=np.int16) - np.asarray(picture, dtype=np.int16)).max(axis=2) > 0
    assert not changed[~mask].any() and changed[mask].mean() > 0.5


@pytest.mark.slow  # renders with the demo model, then the edit model at 1024² pixels of input
def test_a_retouch_by_instruction_changes_only_the_mask_and_records_the_edit_model(
    edit_model: Path, exported: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.marking.c2pa_manifest import read_manifest_state
    from visuels.record import model_sources

    original, out, charter = exported
    with Image.open(original) as picture:
        before = np.asarray(picture.convert("RGB"), dtype=np.int16)
    mask = np.zeros(before.shape[:2], dtype=bool)
    mask[150:450, 250:650] = True
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    common = ["--database", str(out / "visuels.sqlite"), "--charter", str(charter)]
    retouch = ["retouch", str(original), "--mask", str(tmp_path / "mask.png"), "--mode", "instruct"]
    asked = [*retouch, "--prompt", "paint the sky orange", "--steps", "2", "--variants", "2", "--seed", "3"]

    assert main([*asked, *common]) == 2  # no edit model given: one line, nothing written
    assert "--edit-model" in capsys.readouterr().err and len(ledger_rows(out)) == 1
    assert main([*asked, "--edit-model", str(edit_model), "--lora", "style.safetensors", *common]) == 2
    assert "--lora: retouching by instruction uses the edit model alone" in capsys.readouterr().err

    code = main([*asked, "--edit-model", str(edit_model), "-o", str(tmp_path / "variants"), *common])
    assert code in (0, 1), capsys.readouterr()  # 1: a charter finding on random pixels, said
    capsys.readouterr()
    variants = sorted((tmp_path / "variants").glob("*-retouch-*.png"))
    assert [path.name.split("-retouch-")[1] for path in variants] == ["3.png", "4.png"]
    pictures = []
    for path in variants:
        after = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        changed = np.abs(after - before).max(axis=2) > 16  # the new watermark moves pixels by a few levels only
        assert changed[~mask].mean() < 0.002 and changed[mask].mean() > 0.5
        pictures.append(after)
    assert np.abs(pictures[0] - pictures[1]).max() > 16  # two seeds, two variants

    edit_hash = describe_model(DiffusersFolderRef(path=str(edit_model)), edits=True).hash
    rows = ledger_rows(out)[1:]
    assert [(row["model_hash"], row["model_licence"], row["parent_id"]) for row in rows] == [
        (edit_hash, "apache-2.0", 1)
    ] * 2
    assert rows[0]["prompt"] == "retouch (by instruction with Qwen-Image-Edit-tiny): paint the sky orange"
    manifest = read_manifest_state(variants[0], None)
    assert manifest.model_licence == "apache-2.0" and manifest.edited_from is not None
    database = Database(database_url(out))
    try:
        assert model_sources.model_for(database, edit_hash) == DiffusersFolderRef(path=str(edit_model))
    finally:
        database.close()
    assert main(["verify", *map(str, variants), *common]) == 0


@pytest.mark.slow
def test_the_studio_retouches_by_instruction_only_when_given_an_edit_model(
    edit_model: Path, rendered_copy: tuple[Path, str, list[str], list[str]]
) -> None:
    from visuels.record import model_sources
    from visuels.studio.app import Studio, create_app

    out, _, files, _ = rendered_copy
    ask = {"file": files[0], "prompt": "make the sea calmer", "mode": "instruct", "variants": 1, "steps": 2}
    charter, signing = load_charter(SAMPLE_CHARTER_DIR), signing_files()
    database = Database(database_url(out))
    try:
        without = Studio(out, database, charter, signing, device="cpu")
        with TestClient(create_app(without), base_url="http://127.0.0.1:7860") as client:
            assert 'value="instruct"' not in client.get("/retouch", params={"file": files[0]}).text
            refused = client.post("/api/retouch", json=ask)
            assert refused.status_code == 400 and "--edit-model" in refused.json()["error"]
        given = Studio(out, database, charter, signing, device="cpu", edit_model=instruct_model(str(edit_model)))
        with TestClient(create_app(given), base_url="http://127.0.0.1:7860") as client:
            page = client.get("/retouch", params={"file": files[0]}).text
            assert 'value="instruct"' in page and "Qwen-Image-Edit-tiny" in page
            made = client.post("/api/retouch", json=ask)
            assert made.status_code == 200, made.text
            kept = client.post("/api/keep", json={"session": made.json()["session"], "variant": 0})
            assert kept.status_code == 200, kept.text
        written = out / kept.json()["file"]
        assert written.is_file() and written.name.endswith("-retouch-0.png")
        kept_row = ledger_rows(out)[-1]
        assert kept_row["model_licence"] == "apache-2.0"
        assert model_sources.model_for(database, kept_row["model_hash"]) == DiffusersFolderRef(path=str(edit_model))
    finally:
        database.close()
