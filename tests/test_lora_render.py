"""A campaign's LoRA is applied for real: renders with and without it differ."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from pipelines.demo_model import build_demo_pipeline
from pipelines.devices import choose_device, choose_dtype
from pipelines.errors import ModelError
from pipelines.generation import generate
from pipelines.model_loading import LoraWeights, load_pipeline
from pipelines.render import plan_render


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA on the demo UNet's attention projections, with random (non-zero) weights."""
    unet = build_demo_pipeline().unet
    torch.manual_seed(3)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


def render_first(plan_campaign: Path, out: Path, lora: LoraWeights | None) -> np.ndarray:
    plan = plan_render(plan_campaign, out)
    device = choose_device("cpu")
    pipeline = load_pipeline(plan.setup.model, device, choose_dtype(device), lora)
    return np.asarray(generate(pipeline, plan.jobs[:1])[0]).astype(int)


def test_lora_changes_pixels_and_scale_zero_does_not(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    campaign = make_campaign(formats=["instagram_square"])
    plain = render_first(campaign, tmp_path, None)
    with_lora = render_first(campaign, tmp_path, LoraWeights(path=str(lora_file), scale=1.0))
    at_zero = render_first(campaign, tmp_path, LoraWeights(path=str(lora_file), scale=0.0))
    back_to_plain = render_first(campaign, tmp_path, None)
    assert np.abs(with_lora - plain).mean() > 1.0
    assert np.abs(at_zero - plain).max() <= 2
    assert np.array_equal(back_to_plain, plain)


def test_campaign_lora_reaches_the_plan(make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path) -> None:
    plan = plan_render(make_campaign(lora={"path": str(lora_file), "scale": 0.7}), tmp_path)
    assert plan.setup.lora == LoraWeights(path=str(lora_file), scale=0.7)
    assert all(job.lora_hash and job.lora_scale == 0.7 for job in plan.jobs)


def test_a_file_that_is_not_a_lora_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    device = choose_device("cpu")
    from pipelines.model_reference import DemoModelRef

    with pytest.raises(ModelError, match="cannot load LoRA weights"):
        load_pipeline(DemoModelRef(), device, choose_dtype(device), LoraWeights(path=str(bogus), scale=1.0))
    load_pipeline(DemoModelRef(), device, choose_dtype(device), None)  # the model is still usable
