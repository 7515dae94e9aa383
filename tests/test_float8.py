"""The precision float8 (visuels.models.float8): the denoiser's linear layers multiply in FP8.

On a CPU, PyTorch computes FP8 products too (slowly), so these tests run the same code path a
Hopper GPU runs; its speed is measured by benchmarks/gpu_render.py on the GPU machine.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from visuels.inputs.model_refs import DemoModelRef, LoraWeights
from visuels.models import float8
from visuels.models.devices import choose_dtype
from visuels.models.float8 import FLOAT8, Float8Linear, to_float8
from visuels.models.host import ModelHost
from visuels.planning.plan import plan_render
from visuels.planning.request import RenderSettings

CPU = torch.device("cpu")


def test_a_float8_layer_computes_the_product_to_fp8_rounding() -> None:
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 48))
    small = torch.nn.Linear(20, 48)  # not a multiple of 16: the FP8 kernels refuse it, it stays
    inputs = torch.randn(3, 5, 64)
    with torch.no_grad():
        exact = layers(inputs)
        assert to_float8(layers) == 2 and to_float8(small) == 0
        assert isinstance(layers[0], Float8Linear) and type(small) is torch.nn.Linear
        assert layers[0].float8_weight.dtype == FLOAT8
        product = layers(inputs)
    error = float((product - exact).norm() / exact.norm())
    assert product.shape == exact.shape
    assert 0.005 < error < 0.1  # e4m3 keeps 3 mantissa bits: a few % off, not exact (5 % seen)


def test_float8_renders_close_to_full_precision_under_a_key_of_its_own(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    campaign = make_campaign(formats=["story"], photos=None)
    plans = {
        precision: plan_render(campaign, tmp_path / precision, settings=RenderSettings(device="cpu", dtype=precision))
        for precision in ("float32", "float8")
    }
    assert choose_dtype(CPU, "float8") == FLOAT8
    assert {job.key for job in plans["float8"].jobs}.isdisjoint(job.key for job in plans["float32"].jobs)
    host = ModelHost(CPU)
    jobs = plans["float8"].pending[:2]
    full = host.generate(DemoModelRef(), torch.float32, None, jobs)
    fp8 = host.generate(DemoModelRef(), FLOAT8, None, jobs)
    with host.use(DemoModelRef(), FLOAT8, None) as pipeline:
        linear = [layer for layer in pipeline.unet.modules() if isinstance(layer, torch.nn.Linear)]
        assert linear and all(isinstance(layer, Float8Linear) for layer in linear)
        assert pipeline.unet.dtype == torch.float32  # the rest of the model in the device's precision
    for a, b in zip(full, fp8, strict=True):
        difference = np.abs(a.astype(int) - b.astype(int)).mean()
        assert 0 < difference < 3.0  # 0.6 levels seen on the demo model


def test_a_fused_lora_is_quantized_with_the_weights_and_taken_out_exactly(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    plan = plan_render(make_campaign(formats=["story"], photos=None), tmp_path, settings=RenderSettings(device="cpu"))
    host = ModelHost(CPU, fuse_lora=True)  # as on a GPU: the LoRA folded into the weights
    lora = LoraWeights(path=str(lora_file), scale=1.0)

    def picture(weights: LoraWeights | None) -> np.ndarray:
        return host.generate(DemoModelRef(), FLOAT8, weights, plan.pending[:1])[0]

    plain, styled = picture(None), picture(lora)
    assert np.abs(plain.astype(int) - styled.astype(int)).mean() > 1.0
    for _ in range(2):  # the FP8 copies are made again from the restored weights each time
        assert np.array_equal(picture(None), plain)
        assert np.array_equal(picture(lora), styled)


def test_float8_falls_back_to_the_devices_precision_where_it_has_no_fp8(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not float8.float8_available(torch.device("mps"))
    monkeypatch.setattr(float8, "float8_available", lambda device: False)
    assert choose_dtype(CPU, "float8") == torch.float32
