"""Formatting on the rendering device (VISUELS_FORMAT_ON_DEVICE): the crop, the resampling and the
grading in torch give the CPU path's pictures, here with torch on the CPU (the same code runs on a
GPU: tests/test_gpu.py)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from visuels.engine.device_format import area_weights, grade_on_device, resample_on_device
from visuels.inputs.charter import load_charter
from visuels.postprocess.palette import grade_to_palette, grading_offsets
from visuels.postprocess.resize import resample

from tests.helpers import SAMPLE_CHARTER_DIR, render_now, write_small_campaign
from tests.test_faults import assert_record_matches_files


def _pictures() -> list[np.ndarray]:
    """A smooth picture and the same with grain (the hardest case for grading's cell switches)."""
    rng = np.random.default_rng(3)
    smooth = cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (512, 512), interpolation=cv2.INTER_CUBIC)
    grain = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    return [smooth, grain]


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255**2 / error)


@pytest.mark.parametrize("strength", [0.2, 0.5, 1.0])
def test_grading_on_the_device_gives_the_cpus_bytes(strength: float) -> None:
    palette = tuple(colour.rgb for colour in load_charter(SAMPLE_CHARTER_DIR).spec.palette)
    offsets = torch.from_numpy(grading_offsets(palette, strength))
    grain = _pictures()[1]
    for picture in (*_pictures(), grain[:301, :203], grain[:, ::-1]):  # a last band cut short; a view
        on_device = grade_on_device(torch.from_numpy(np.ascontiguousarray(picture)), offsets).numpy()
        assert np.array_equal(on_device, grade_to_palette(picture, palette, strength))


def test_reducing_on_the_device_gives_opencvs_bytes_and_enlarging_is_within_a_level() -> None:
    for weights in (area_weights(512, 300), area_weights(1024, 128)):
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    for picture in _pictures():
        for size in ((300, 300), (128, 72), (500, 260)):  # reduced, by fractional factors
            on_device = resample_on_device(torch.from_numpy(picture), *size).numpy()
            assert np.array_equal(on_device, resample(Image.fromarray(picture), *size))
        for size in ((1080, 1080), (1080, 1350), (1200, 628)):  # enlarged
            on_device = resample_on_device(torch.from_numpy(picture), *size).numpy().astype(np.int16)
            difference = np.abs(on_device - resample(Image.fromarray(picture), *size))
            assert difference.max() <= 1 and (difference > 0).mean() < 0.001


@pytest.mark.slow  # renders the demo model twice
def test_a_run_formatted_on_the_device_gives_the_same_pictures_and_keys(tmp_path: Path, renderer) -> None:
    """The same campaign (built-in layout and a template's image slot) rendered with the CPU
    formatting and with the device's: the same jobs, every file marked and verifying, pixels
    equal but for the enlarging's rounding on a few."""
    import shutil

    from visuels.engine.cpu_stage import CpuStage
    from visuels.engine.renderer import Renderer
    from visuels.planning.plan import plan_render
    from visuels.review.publish import finish_render

    shutil.copytree(SAMPLE_CHARTER_DIR, tmp_path / "charter")
    sete = {"file": "charter/communes.csv", "names": ["Sète"]}
    builtin = write_small_campaign(
        tmp_path / "builtin.yaml", steps=2, formats=["instagram_square", "story"], communes=sete
    )
    template = write_small_campaign(
        tmp_path / "template.yaml", layout="bande", formats=["web_banner"], steps=2, communes=sete
    )
    on_device = Renderer(renderer.host, CpuStage(workers=0), format_on_device=True)
    try:
        for campaign in (builtin, template):
            outputs = []
            for name, rendering in (("cpu", renderer), ("device", on_device)):
                out = tmp_path / f"{campaign.stem}-{name}"
                plan = plan_render(campaign, out)
                exported = render_now(rendering, plan, out)
                finish_render(plan, out)
                assert_record_matches_files(out, plan)  # whole, recorded once, every file verifying
                outputs.append({item.job.key: out / item.job.relative_path for item in exported})
            cpu, device = outputs
            assert set(cpu) == set(device) and len(cpu) >= 1
            for key, path in device.items():
                first, second = (np.asarray(Image.open(p).convert("RGB")) for p in (cpu[key], path))
                assert first.shape == second.shape
                assert psnr(first, second) > 60, f"{path.name}: {psnr(first, second):.1f} dB"
    finally:
        on_device.cpu.close()
