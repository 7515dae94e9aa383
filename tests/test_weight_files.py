"""Weight files from outside are looked at before anything loads them: a bad copy, a pickle, a
missing shard or a folder of fp16 files only is one line at planning (or loads), never a failure
in a render worker halfway through a run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from visuels.errors import CampaignError, ModelError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DiffusersFolderRef, SingleFileRef
from visuels.inputs.weight_files import weights_file_problem, weights_problem, weights_variant
from visuels.models.demo import build_demo_pipeline, ensure_demo_model
from visuels.models.reference import describe_model, model_components

pytestmark = pytest.mark.timeout(120)


def _cut_short(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_weights_file_is_whole_safetensors_or_a_trusted_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "style.safetensors"
    save_file({"lora.down.weight": torch.ones(4, 8)}, str(whole))
    assert weights_file_problem(whole) is None
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[:-10])
    assert "is not a whole safetensors file" in str(weights_file_problem(cut))
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(bytes(range(256)) * 20)
    assert "is not a whole safetensors file" in str(weights_file_problem(noise))
    assert "is a folder, not a weights file" in str(weights_file_problem(tmp_path))
    pickle = tmp_path / "style.pt"
    pickle.write_bytes(b"pickle")
    monkeypatch.delenv("VISUELS_ALLOW_PICKLE", raising=False)
    assert "style.pt holds pickle weights" in str(weights_file_problem(pickle))
    monkeypatch.setenv("VISUELS_ALLOW_PICKLE", "1")
    assert weights_file_problem(pickle) is None


@pytest.fixture(scope="module")
def demo_folder() -> Path:
    return ensure_demo_model()


def test_a_folder_of_fp16_files_only_loads_at_any_precision(tmp_path: Path) -> None:
    """Hub snapshots fetched with ``variant="fp16"`` hold nothing else: the CPU (float32) loads them too."""
    from visuels.models.host import load_from_files

    folder = tmp_path / "model"
    build_demo_pipeline().to(torch.float16).save_pretrained(folder, variant="fp16")
    components = model_components(folder)
    assert {path.name for path in components} == {"text_encoder", "unet", "vae"}
    assert weights_variant(components) == "fp16" and weights_problem(components) is None
    info = describe_model(DiffusersFolderRef(path=str(folder)))
    pipeline = load_from_files(info.ref, torch.float32)
    assert pipeline.unet.dtype == torch.float32
    # One component in fp16 only, the others plain: diffusers reads the others' plain files.
    mixed = tmp_path / "mixed"
    shutil.copytree(ensure_demo_model(), mixed)
    for path in (mixed / "vae").glob("*.safetensors"):
        path.rename(path.with_name("diffusion_pytorch_model.fp16.safetensors"))
    assert weights_variant(model_components(mixed)) == "fp16"
    assert load_from_files(DiffusersFolderRef(path=str(mixed)), torch.float32).vae.dtype == torch.float32
    # Plain files beside the variant: the plain ones at full precision, the variant at half.
    both = tmp_path / "both"
    shutil.copytree(ensure_demo_model(), both)
    build_demo_pipeline().save_pretrained(both, variant="fp16")
    assert weights_variant(model_components(both)) is None
    assert weights_variant(model_components(both), half=True) == "fp16"


def test_a_model_folder_that_would_not_load_is_refused_at_planning(tmp_path: Path) -> None:
    # Each damage done to a copy of the demo model, and the line that refuses it.
    damages: dict[str, tuple[Callable[[Path], object], str]] = {
        "cut": (
            lambda folder: _cut_short(folder / "vae" / "diffusion_pytorch_model.safetensors"),
            r"vae/diffusion_pytorch_model\.safetensors is not a whole safetensors file",
        ),
        "pickled": (
            lambda folder: (folder / "unet" / "diffusion_pytorch_model.safetensors").rename(
                folder / "unet" / "diffusion_pytorch_model.bin"
            ),
            r"pickled/unet holds pickle weights",
        ),
        "empty": (
            lambda folder: (folder / "text_encoder" / "model.safetensors").unlink(),
            r"empty/text_encoder holds no safetensors weights to load",
        ),
        "no-encoder": (
            lambda folder: shutil.rmtree(folder / "text_encoder"),
            r"no-encoder/text_encoder not found: its model_index\.json names it",
        ),
        "no-config": (
            lambda folder: (folder / "unet" / "config.json").unlink(),
            r"no-config/unet/config\.json not found",
        ),
        # Python's parser recurses once a level: this raised RecursionError, a traceback.
        "nested": (
            lambda folder: (folder / "model_index.json").write_text("[" * 100_000 + "]" * 100_000),
            r"nested/model_index\.json is not valid JSON \(nested too deeply to be read\)",
        ),
        "nested-config": (
            lambda folder: (folder / "unet" / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
            r"nested-config/unet/config\.json is not valid JSON \(nested too deeply to be read\)",
        ),
    }
    for name, (damage, refusal) in damages.items():
        folder = tmp_path / name
        shutil.copytree(ensure_demo_model(), folder)
        damage(folder)
        with pytest.raises(ModelError, match=refusal):
            describe_model(DiffusersFolderRef(path=str(folder)))

    sharded = tmp_path / "sharded"
    build_demo_pipeline().save_pretrained(sharded, max_shard_size="200KB")
    shards = sorted((sharded / "unet").glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) > 1 and describe_model(DiffusersFolderRef(path=str(sharded))).hash
    shards[-1].unlink()
    with pytest.raises(ModelError, match=rf"{shards[-1].name} is missing: its index"):
        describe_model(DiffusersFolderRef(path=str(sharded)))

    # A single-file checkpoint, and a transformer family's folder around its single file.
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(ModelError, match=r"model\.safetensors is not a whole safetensors file"):
        describe_model(SingleFileRef(path=str(checkpoint), config=str(ensure_demo_model())))


def test_a_campaign_s_lora_and_controlnet_files_are_looked_at_when_it_loads(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = tmp_path / "style.safetensors"
    save_file({"lora.down.weight": torch.ones(4, 8)}, str(cut))
    _cut_short(cut)
    with pytest.raises(CampaignError, match=r"lora\.path: .*style\.safetensors is not a whole safetensors file"):
        load_campaign(make_campaign(lora={"path": str(cut), "scale": 0.8}))
    with pytest.raises(CampaignError, match=r"speed_lora\.path: .* is a folder, not a weights file"):
        load_campaign(make_campaign(speed_lora={"path": str(tmp_path), "scale": 1.0}))
    controlnet = tmp_path / "controlnet"
    controlnet.mkdir()
    (controlnet / "config.json").write_text('{"_class_name": "ControlNetModel"}')
    with pytest.raises(CampaignError, match=r"photos\.controlnet\.path: .*controlnet holds no safetensors weights"):
        load_campaign(make_campaign(photos={"strength": None, "controlnet": {"path": str(controlnet)}}))
    # The charter's latest trained LoRA, its file damaged since (a full disk during a copy).
    run = tmp_path / "lora" / "solane" / "20261205-0100"
    run.mkdir(parents=True)
    (run / "pytorch_lora_weights.safetensors").write_bytes(b"\x00" * 12)
    monkeypatch.setenv("VISUELS_LORA_DIR", str(tmp_path / "lora"))
    with pytest.raises(
        CampaignError, match=r"lora\.path: .*20261205-0100/pytorch_lora_weights\.safetensors is not a whole"
    ):
        load_campaign(make_campaign(lora={"path": "charter:latest", "scale": 0.8}))


def test_a_single_file_that_cannot_be_its_config_s_model_is_refused_in_one_line(tmp_path: Path) -> None:
    """A UNet file given with a FLUX.2 klein config, a diffusers UNet file given as an SD1.5
    checkpoint, a transformer file of another family: one line naming the file, never a traceback
    from the loader in a render worker."""
    from visuels.models.host import load_from_files

    from tests.tiny_families import save_test_shaped

    demo = ensure_demo_model()
    unet_file = demo / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelError, match=r"is not a whole Stable Diffusion 1\.5 checkpoint: it holds no UNet"):
        describe_model(SingleFileRef(path=str(unet_file), config=str(demo)))
    parts = {f"{prefix}w": torch.zeros(1) for prefix in ("model.diffusion_model.", "first_stage_model.")}
    partial = tmp_path / "sd15.safetensors"
    save_file(parts, str(partial))
    with pytest.raises(ModelError, match=r"it holds no text encoder \(cond_stage_model\.… weights\)"):
        describe_model(SingleFileRef(path=str(partial), config=str(demo)))
    save_file({**parts, "cond_stage_model.w": torch.zeros(1)}, str(partial))
    assert describe_model(SingleFileRef(path=str(partial), config=str(demo))).family == "sd15"

    klein = save_test_shaped("flux2-klein", tmp_path / "klein")
    with pytest.raises(ModelError, match=r"holds a UNet's weights, not a FLUX\.2 klein transformer's"):
        describe_model(SingleFileRef(path=str(unet_file), config=str(klein)))
    z_image = save_test_shaped("z-image", tmp_path / "z-image")
    z_image_file = z_image / "transformer" / "diffusion_pytorch_model.safetensors"
    foreign = SingleFileRef(path=str(z_image_file), config=str(klein))
    with pytest.raises(ModelError, match=r"cannot load it as the model its config folder .*klein describes"):
        load_from_files(describe_model(foreign).ref, torch.float32)

    # A folder whose transformer file lacks some weights: diffusers leaves them without data.
    cut = tmp_path / "klein-cut"
    shutil.copytree(klein, cut)
    weights = cut / "transformer" / "diffusion_pytorch_model.safetensors"
    kept = {name: value for name, value in load_file(str(weights)).items() if not name.startswith("single_")}
    save_file(kept, str(weights))
    with pytest.raises(ModelError, match=r"its files hold no weights for transformer\.single_"):
        load_from_files(DiffusersFolderRef(path=str(cut)), torch.float32)


def test_a_loader_s_message_is_said_without_advice_about_its_own_arguments() -> None:
    from visuels.models.host import _loader_said

    diffusers_said = ValueError(
        "Cannot load  because x.weight expected shape torch.Size([32, 64]), but got torch.Size([32, 4]). If you"
        " want to instead overwrite randomly initialized weights, please make sure to pass both"
        " `low_cpu_mem_usage=False` and `ignore_mismatched_sizes=True`. For more information, see also: https://…"
    )
    assert _loader_said(diffusers_said) == (  # its empty name's two spaces read as one
        "Cannot load because x.weight expected shape torch.Size([32, 64]), but got torch.Size([32, 4])"
    )
    short = ValueError("Invalid LoRA checkpoint. Make sure all LoRA param names contain `'lora'` substring.")
    assert _loader_said(short) == str(short)  # both sentences fit
