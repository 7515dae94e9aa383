"""A campaign's LoRA is applied for real: renders with and without it differ."""

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from visuels.errors import CampaignError, ModelError
from visuels.inputs.model_refs import DemoModelRef, LoraWeights
from visuels.models.devices import choose_device
from visuels.models.host import ModelHost
from visuels.planning.plan import plan_render

from tests.helpers import write_lora_at_other_widths, write_random_lora


def render_first(host: ModelHost, plan_campaign: Path, out: Path, lora: LoraWeights | None) -> np.ndarray:
    plan = plan_render(plan_campaign, out)
    return host.generate(plan.setup.model, torch.float32, lora, plan.jobs[:1])[0].astype(int)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
@pytest.mark.parametrize("fuse", [False, True], ids=["adapters", "fused"])
def test_lora_changes_pixels_and_scale_zero_does_not(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path, fuse: bool
) -> None:
    host = ModelHost(choose_device("cpu"), fuse_lora=fuse)
    campaign = make_campaign(formats=["instagram_square"], photos=None)  # from text: the LoRA's effect in full
    plain = render_first(host, campaign, tmp_path, None)
    with_lora = render_first(host, campaign, tmp_path, LoraWeights(path=str(lora_file), scale=1.0))
    at_zero = render_first(host, campaign, tmp_path, LoraWeights(path=str(lora_file), scale=0.0))
    again = render_first(host, campaign, tmp_path, LoraWeights(path=str(lora_file), scale=1.0))
    back_to_plain = render_first(host, campaign, tmp_path, None)
    assert np.abs(with_lora - plain).mean() > 1.0
    assert np.abs(at_zero - plain).max() <= 2
    assert np.array_equal(again, with_lora)  # switching back and forth is exact, fused or not
    assert np.array_equal(back_to_plain, plain)
    assert host.loads == 1


@pytest.mark.slow
def test_a_lora_of_weights_that_are_not_numbers_exports_nothing(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    """NaN weights (a run that diverged, elsewhere) decode to black: the batch is refused, naming
    its first picture, and the model still renders without that LoRA."""
    broken = tmp_path / "diverged.safetensors"
    save_file({name: torch.full_like(value, float("nan")) for name, value in load_file(str(lora_file)).items()}, broken)
    host = ModelHost(choose_device("cpu"))
    plan = plan_render(make_campaign(formats=["instagram_square"], photos=None), tmp_path / "out")
    jobs = plan.jobs[:2]
    with pytest.raises(ModelError, match=r"drew 2 of 2 pictures with values that are not numbers") as refused:
        host.generate(plan.setup.model, torch.float32, LoraWeights(path=str(broken), scale=1.0), jobs)
    assert refused.value.file == jobs[0].relative_path
    assert len(host.generate(plan.setup.model, torch.float32, None, jobs[:1])) == 1


def test_campaign_lora_reaches_the_plan(make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path) -> None:
    plan = plan_render(make_campaign(lora={"path": str(lora_file), "scale": 0.7}), tmp_path)
    assert plan.setup.lora == LoraWeights(path=str(lora_file), scale=0.7)
    assert all(job.lora_hash and job.lora_scale == 0.7 for job in plan.jobs)


@pytest.mark.slow  # renders with the demo model
def test_a_speed_lora_is_applied_with_the_style_lora_keyed_and_taken_off_exactly(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    speed_file = write_random_lora(tmp_path / "speed", seed=11)
    style = {"path": str(lora_file), "scale": 1.0}
    plans = {
        name: plan_render(make_campaign(f"{name}.yaml", formats=["instagram_square"], photos=None, **fields), tmp_path)
        for name, fields in {
            "style": {"lora": style},
            "both": {"lora": style, "speed_lora": {"path": str(speed_file), "scale": 0.8}},
            "speed": {"speed_lora": {"path": str(speed_file), "scale": 0.8}},
        }.items()
    }
    speed = LoraWeights(path=str(speed_file), scale=0.8)
    assert plans["both"].setup.lora == LoraWeights(path=str(lora_file), scale=1.0, speed=speed)
    assert plans["speed"].setup.lora == speed
    both = plans["both"].jobs[0]
    assert (both.speed_lora_hash, both.speed_lora_scale) != (None, None) and both.lora_hash
    assert plans["style"].jobs[0].speed_lora_hash is None
    assert len({plan.jobs[0].key for plan in plans.values()}) == 3
    assert len({plan.jobs[0].generation_key for plan in plans.values()}) == 3
    host = ModelHost(choose_device("cpu"), fuse_lora=True)  # fused, as on a GPU

    def picture(name: str) -> np.ndarray:
        plan = plans[name]
        return host.generate(plan.setup.model, torch.float32, plan.setup.lora, plan.jobs[:1])[0].astype(int)

    style_only, stacked = picture("style"), picture("both")
    assert np.abs(stacked - style_only).mean() > 1.0
    assert np.array_equal(picture("style"), style_only)  # the speed LoRA taken off exactly
    assert np.array_equal(picture("both"), stacked)
    missing = make_campaign("missing.yaml", speed_lora={"path": str(tmp_path / "none.safetensors")})
    with pytest.raises(CampaignError, match=r"speed_lora\.path"):
        plan_render(missing, tmp_path)


def _sdxl_lora_in_kohyas_layout(path: Path) -> Path:
    """Two layers of an SDXL LoRA as kohya names them: blocks SD1.5's UNet does not have."""
    blocks = {"input_blocks_4_1": 640, "output_blocks_0_1": 1280}
    save_file(
        {
            f"lora_unet_{block}_transformer_blocks_0_attn1_to_q.{part}": torch.ones(shape)
            for block, width in blocks.items()
            for part, shape in (("lora_down.weight", (4, width)), ("lora_up.weight", (width, 4)))
        },
        str(path),
    )
    return path


def test_a_file_that_is_not_a_lora_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    host = ModelHost(choose_device("cpu"))
    with (
        pytest.raises(ModelError, match="cannot load LoRA weights"),
        host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(bogus), scale=1.0)),
    ):
        pass
    # In kohya's layout, a down projection without its up one (a file cut short by its exporter).
    incomplete = tmp_path / "incomplete.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32)}, str(incomplete))
    with (
        pytest.raises(ModelError, match=r"proj_in\.lora_up\.weight is missing: the LoRA file is incomplete"),
        host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(incomplete), scale=1.0)),
    ):
        pass
    # A LoRA for another family (a FLUX transformer's): diffusers only warns that nothing matched.
    foreign = tmp_path / "flux.safetensors"
    prefix = "transformer.transformer_blocks.0.attn.to_q"
    weights = {f"{prefix}.lora_A.weight": torch.ones(4, 32), f"{prefix}.lora_B.weight": torch.ones(32, 4)}
    save_file(weights, str(foreign))
    with (
        pytest.raises(ModelError, match=r"none of its weights names a layer of this model \(Stable Diffusion 1\.5\)"),
        host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(foreign), scale=1.0)),
    ):
        pass
    # A LoRA of the same layer names at another model's widths (an SDXL LoRA on SD1.5).
    fitting = write_random_lora(tmp_path / "fitting", 3)
    wider = write_lora_at_other_widths(fitting, tmp_path / "wider.safetensors")
    with (
        pytest.raises(ModelError, match=r"its weights' shapes are not this model's \(Stable Diffusion 1\.5\)"),
        host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(wider), scale=1.0)),
    ):
        pass
    # An SDXL LoRA in kohya's layout: its UNet blocks (input_blocks.4, output_blocks.0) are not SD1.5's.
    sdxl = _sdxl_lora_in_kohyas_layout(tmp_path / "sdxl_kohya.safetensors")
    with (
        pytest.raises(ModelError, match=r"it names layers this model \(Stable Diffusion 1\.5\) does not have"),
        host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(sdxl), scale=1.0)),
    ):
        pass
    with host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(fitting), scale=1.0)):
        pass  # nothing the failed one half-injected is left in the way
    with host.use(DemoModelRef(), torch.float32, None):  # the model is still usable
        pass


def test_a_lora_that_fails_to_load_leaves_no_stale_lora_state(
    make_campaign: Callable[..., Path], lora_file: Path
) -> None:
    """After a failed switch, asking for the previous LoRA again applies it again (fused, as before),
    instead of trusting a state the failure left half-undone."""
    from visuels.inputs.campaign import load_campaign
    from visuels.models.reference import describe_model
    from visuels.planning.jobs import expand_jobs

    host = ModelHost(choose_device("cpu"), fuse_lora=True)
    style = LoraWeights(path=str(lora_file), scale=1.0)
    jobs = expand_jobs(load_campaign(make_campaign(formats=["story"])), describe_model(DemoModelRef()), "float32")[:1]
    with_style = host.generate(DemoModelRef(), torch.float32, style, jobs)[0]
    bogus = lora_file.parent / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot load LoRA weights"):
        host.generate(DemoModelRef(), torch.float32, LoraWeights(path=str(bogus), scale=1.0), jobs)
    again = host.generate(DemoModelRef(), torch.float32, style, jobs)[0]
    assert np.array_equal(again, with_style)


def test_a_style_lora_with_its_speed_lora_loads_without_the_loaders_warnings(
    tmp_path: Path, lora_file: Path, recwarn: pytest.WarningsRecorder, capfd: pytest.CaptureFixture[str]
) -> None:
    """Two adapters at once are what a few-step run always has: peft's "multiple adapters, make sure
    you know what you are doing" is no news to print in the middle of every such render."""
    speed = LoraWeights(path=str(write_random_lora(tmp_path / "speed", 4)), scale=1.0)
    host = ModelHost(choose_device("cpu"))
    with host.use(DemoModelRef(), torch.float32, LoraWeights(path=str(lora_file), scale=1.0, speed=speed)) as pipeline:
        assert sorted(pipeline.get_list_adapters()["unet"]) == ["lora0", "lora1"]
    # (an earlier test's unclosed file, collected now, is no loader's warning)
    said = [str(warning.message) for warning in recwarn if not issubclass(warning.category, ResourceWarning)]
    assert not said, said
    assert capfd.readouterr().err == ""


def test_a_lora_for_another_models_widths_or_layers_is_refused_before_the_run(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    """Read from the headers of its file and of the model's: a nightly on a wrong LoRA stops at
    `visuels check`, or before a render writes anything, not at 01:00 when the model loads it."""
    from safetensors.torch import load_file
    from visuels.cli import main

    wider = write_lora_at_other_widths(lora_file, tmp_path / "wider.safetensors")
    elsewhere = tmp_path / "elsewhere.safetensors"
    renamed = {name.replace("down_blocks", "input_blocks"): value for name, value in load_file(str(lora_file)).items()}
    save_file(renamed, str(elsewhere))  # SD1.5's widths, at layers of another UNet's names
    said = {
        "wider": "its weights' shapes are not this model's (Stable Diffusion 1.5): a LoRA made for another model?",
        "elsewhere": "it names layers this model (Stable Diffusion 1.5) does not have: a LoRA made for another model?",
    }
    for name, path in (("wider", wider), ("elsewhere", elsewhere)):
        for field in ("lora", "speed_lora"):
            campaign = make_campaign(f"{name}-{field}.yaml", **{field: {"path": str(path), "scale": 1.0}})
            with pytest.raises(CampaignError, match=re.escape(f"{field}.path: {said[name]}")):
                plan_render(campaign, tmp_path / "out")
    assert main(["check", str(make_campaign("fits.yaml", lora={"path": str(lora_file), "scale": 1.0}))]) in (0, 1)
    assert not (tmp_path / "out").exists()


def _text_encoder_lora_in_kohyas_layout(path: Path, width: int, projections: tuple[str, ...]) -> Path:
    """A LoRA on the text encoder's attention as kohya names it, for a text encoder ``width`` wide."""
    weights = {}
    for layer in range(2):
        for projection in projections:
            name = f"lora_te_text_model_encoder_layers_{layer}_self_attn_{projection}"
            weights[f"{name}.lora_down.weight"] = torch.full((4, width), 0.01)
            weights[f"{name}.lora_up.weight"] = torch.full((width, 4), 0.01)
            weights[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(weights, str(path))
    return path


def test_a_lora_in_kohyas_layout_is_read_as_diffusers_converts_it_and_refused_when_it_does_not_fit(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    lora_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kohya's layout (A1111's, ComfyUI's for SD) was left to loading: an SDXL LoRA on SD1.5 stopped
    the night's run when the model loaded it. Its names go through diffusers' own conversion
    from the file's header (shapes, no weights), UNet and text encoder alike."""
    from safetensors.torch import load_file
    from visuels.training.export import kohya_key

    kohya = tmp_path / "kohya.safetensors"  # the fitting LoRA, as `visuels train` exports it for ComfyUI
    save_file(
        {
            kohya_key(name.removeprefix("unet."), "lora_unet"): value
            for name, value in load_file(str(lora_file)).items()
        },
        str(kohya),
    )
    wide_text_encoder = ("q_proj", "k_proj", "v_proj", "out_proj")
    said = {
        _sdxl_lora_in_kohyas_layout(tmp_path / "sdxl.safetensors"): "it names layers this model",
        _text_encoder_lora_in_kohyas_layout(tmp_path / "sd2-te.safetensors", 1024, wide_text_encoder): (
            "its weights' shapes are not this model's"
        ),
    }
    for path, refusal in said.items():
        campaign = make_campaign(f"{path.stem}.yaml", lora={"path": str(path), "scale": 1.0})
        with pytest.raises(CampaignError, match=re.escape(f"lora.path: {refusal} (Stable Diffusion 1.5)")):
            plan_render(campaign, tmp_path / "out")
    # A hub id's snapshot in the local cache is read as a folder is.
    import shutil

    import huggingface_hub.constants
    from visuels.models.demo import ensure_demo_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repository = tmp_path / "hub" / "models--region--sd"
    shutil.copytree(ensure_demo_model(), repository / "snapshots" / ("a" * 40))
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("a" * 40)
    on_hub = make_campaign("hub.yaml", model={"kind": "hub", "id": "region/sd"}, lora={"path": str(path), "scale": 1.0})
    with pytest.raises(CampaignError, match=re.escape(f"lora.path: {refusal} (Stable Diffusion 1.5)")):
        plan_render(on_hub, tmp_path / "out")
    # A single file names its weights in the original layout: its config folder gives the shapes.
    stub = tmp_path / "sd15.safetensors"
    parts = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")
    save_file({f"{part}w": torch.zeros(1) for part in parts}, str(stub))  # what describe_model reads of it
    single = {"kind": "single_file", "path": str(stub), "config": str(ensure_demo_model())}
    with pytest.raises(CampaignError, match=re.escape(f"lora.path: {refusal} (Stable Diffusion 1.5)")):
        plan_render(make_campaign("single.yaml", model=single, lora={"path": str(path), "scale": 1.0}), tmp_path / "o")
    for fits in (kohya, lora_file):
        plan_render(
            make_campaign("single-fits.yaml", model=single, lora={"path": str(fits), "scale": 1.0}), tmp_path / "o"
        )
    # `visuels doctor CAMPAIGN` said "ok campaign LoRA" of the same file: it says what render would.
    from visuels.cli import main

    capsys.readouterr()
    assert main(["doctor", str(campaign), "--output-dir", str(tmp_path / "out")]) == 1
    shown = " ".join(capsys.readouterr().out.split())
    assert f"refused campaign LoRA: {path}: {refusal} (Stable Diffusion 1.5)" in shown
    # Where only loading can tell (a model given as a single file): the same words, not transformers'
    # "ignore_mismatched_sizes ... look at the above report" with no report shown.
    host = ModelHost(choose_device("cpu"))
    wider = LoraWeights(path=str(tmp_path / "sd2-te.safetensors"), scale=1.0)
    with pytest.raises(ModelError, match=re.escape("lora: its weights' shapes are not this model's")):
        host.generate(DemoModelRef(), torch.float32, wider, [])
    fitting = [kohya, _text_encoder_lora_in_kohyas_layout(tmp_path / "te.safetensors", 64, wide_text_encoder)]
    for path in fitting:
        plan = plan_render(make_campaign(f"{path.stem}.yaml", lora={"path": str(path), "scale": 1.0}), tmp_path / "o")
        assert plan.setup.lora is not None and plan.setup.lora.path == str(path)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_lora_for_another_model_is_one_line_through_render_and_reports_nothing(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """What only loading finds (a text encoder LoRA in kohya's layout with some projections only,
    whose layout diffusers cannot tell), in the flow: the designer reads one line (diffusers had
    logged every weight it could not place before it), and a run that finished no picture writes no
    report of nothing."""
    import subprocess
    import sys

    partial = _text_encoder_lora_in_kohyas_layout(tmp_path / "queries-only.safetensors", 64, ("q_proj",))
    campaign = make_campaign(
        formats=["instagram_square"],
        communes={"file": "charter/communes.csv", "names": ["Sète"]},
        lora={"path": str(partial), "scale": 0.8},
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "visuels"), "render", str(campaign), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 2, result.stderr
    assert "Test campagne: 1 image, 1 to render with" in result.stdout  # one picture: said so
    assert result.stderr.strip() == (
        f"error: {partial}: lora: cannot load LoRA weights:"
        " diffusers cannot tell the layout of its text encoder weights"
    )
    assert not [path for path in out.rglob("*") if path.suffix in (".html", ".csv", ".json", ".png")]


def test_a_loras_header_is_read_without_loading_its_weights_even_an_alpha_that_is_no_scalar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a scalar alpha is read from a file from outside: an "alpha" of a billion values is a
    shape like the others (the conversion then cannot take it: left to loading)."""
    import visuels.models.lora_layout as lora_layout
    from safetensors import safe_open
    from visuels.models.lora_layout import lora_factors

    read: list[str] = []

    class Spying:
        def __init__(self, *args: object) -> None:
            self.file = safe_open(*args)

        def __enter__(self) -> "Spying":
            self.opened = self.file.__enter__()
            return self

        def __exit__(self, *args: object) -> None:
            self.file.__exit__(*args)

        def get_tensor(self, name: str) -> torch.Tensor:
            read.append(name)
            return self.opened.get_tensor(name)

        def __getattr__(self, name: str) -> object:
            return getattr(self.opened, name)

    monkeypatch.setattr(lora_layout, "safe_open", Spying)

    path = _text_encoder_lora_in_kohyas_layout(
        tmp_path / "te.safetensors", 64, ("q_proj", "k_proj", "v_proj", "out_proj")
    )
    assert lora_factors(path, "StableDiffusionPipeline", None) == {
        "text_encoder": {
            f"text_model.encoder.layers.{layer}.self_attn.{projection}.lora_{factor}.weight": shape
            for layer in range(2)
            for projection in ("q_proj", "k_proj", "v_proj", "out_proj")
            for factor, shape in (("A", (4, 64)), ("B", (64, 4)))
        }
    }
    weights = load_file(str(path))
    assert read and all(name.endswith(".alpha") for name in read)  # no weight, only the alphas
    weights["lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"] = torch.zeros(1000)
    save_file(weights, str(path))
    read.clear()
    assert lora_factors(path, "StableDiffusionPipeline", None) is None
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha" not in read
