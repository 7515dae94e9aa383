"""The renderer's CUDA paths on the demo model (and two tiny transformer families): bf16, torch.compile,
fused LoRA, CPU workers, guidance stopping early under compile.

Skipped without CUDA; run on a GPU machine (`pytest -m gpu`). Full-size models are measured by
benchmarks/gpu_render.py.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from visuels.engine.renderer import Renderer
from visuels.engine.run import export_target, render_jobs
from visuels.inputs.charter import load_charter
from visuels.inputs.model_refs import DemoModelRef, LoraWeights
from visuels.marking.keys import signing_files
from visuels.models.devices import choose_dtype
from visuels.models.host import ModelHost
from visuels.planning.plan import plan_render
from visuels.planning.request import RenderSettings
from visuels.record.database import Database, database_url
from visuels.review.verify import verify_file

from tests.helpers import SAMPLE_CHARTER_DIR

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_renders_in_bf16_with_cpu_workers_and_every_file_verifies(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "outputs"
    plan = plan_render(make_campaign(), out, settings=RenderSettings(device="cuda"))
    assert choose_dtype(torch.device("cuda"), plan.setup.precision) == torch.bfloat16  # "auto" on CUDA
    renderer = Renderer.for_device("cuda", cpu_workers=2)
    try:
        exported = render_jobs(renderer, plan.setup, plan.pending, export_target(plan, out), RenderSettings())
    finally:
        renderer.close()
    assert len(exported) == len(plan.jobs) == 4
    database = Database(database_url(out))
    charter = load_charter(SAMPLE_CHARTER_DIR)
    for item in exported:
        report = verify_file(out / item.job.relative_path, charter, database, signing_files().trust_anchors)
        assert report.ok, report
    database.close()


def test_a_compiled_model_pads_short_batches_and_makes_the_same_pictures(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    # No commune photos: a batch holds jobs of one kind (text to image here).
    campaign = make_campaign(formats=["story"], photos=None)
    plan = plan_render(campaign, tmp_path, settings=RenderSettings(device="cuda"))
    jobs = plan.pending[:2] + plan.pending[:1]  # 3 pictures in batches of 2: the last one padded
    eager = ModelHost(torch.device("cuda")).generate(DemoModelRef(), torch.bfloat16, None, jobs)
    compiled = ModelHost(torch.device("cuda"), compile_models=True)
    pictures = compiled.generate(DemoModelRef(), torch.bfloat16, None, jobs[:2], pad_to=2)
    pictures += compiled.generate(DemoModelRef(), torch.bfloat16, None, jobs[2:], pad_to=2)
    assert len(pictures) == 3 and np.array_equal(pictures[0], pictures[2])
    for fast, plain in zip(pictures, eager, strict=True):
        assert (
            np.abs(fast.astype(int) - plain.astype(int)).mean() < 2.0
        )  # fused bf16 kernels round differently (1.4 seen)


def test_guidance_stopping_early_compiles_two_batch_shapes_once(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """Guided steps run the UNet on twice the batch, the later ones on the batch: two graphs,
    compiled on the first batch; the next batches compile nothing."""
    from torch._dynamo.utils import counters

    campaign = make_campaign(formats=["story"], steps=6, guidance_cutoff=0.5, photos=None)
    plan = plan_render(campaign, tmp_path, settings=RenderSettings(device="cuda"))
    compiled = ModelHost(torch.device("cuda"), compile_models=True)
    compiled.generate(DemoModelRef(), torch.bfloat16, None, plan.pending[:2], pad_to=2)
    graphs = counters["stats"]["unique_graphs"]
    again = compiled.generate(DemoModelRef(), torch.bfloat16, None, plan.pending[:2], pad_to=2)
    assert counters["stats"]["unique_graphs"] == graphs
    eager = ModelHost(torch.device("cuda")).generate(DemoModelRef(), torch.bfloat16, None, plan.pending[:2])
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 2.0 for a, b in zip(again, eager, strict=True))


def test_a_fused_lora_switches_back_and_forth_exactly_in_bf16(
    make_campaign: Callable[..., Path], tmp_path: Path, lora_file: Path
) -> None:
    plan = plan_render(make_campaign(formats=["story"]), tmp_path, settings=RenderSettings(device="cuda"))
    host = ModelHost(torch.device("cuda"))
    assert host.fuse_lora
    lora = LoraWeights(path=str(lora_file), scale=1.0)

    def picture(weights: LoraWeights | None) -> np.ndarray:
        return host.generate(DemoModelRef(), torch.bfloat16, weights, plan.pending[:1])[0]

    plain, styled = picture(None), picture(lora)
    assert not np.array_equal(plain, styled)  # the tests' LoRA is faint in bf16 (0.19 levels seen on an H200)
    for _ in range(3):  # subtracting a fused LoRA in bf16 would drift; restoring the weights does not
        assert np.array_equal(picture(None), plain)
        assert np.array_equal(picture(lora), styled)


@pytest.mark.parametrize("family", ["flux2-klein", "z-image"])
def test_a_flow_family_renders_in_bf16_compiled_with_padded_batches(
    family: str, make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    """A transformer family through the same CUDA paths: bf16, the transformer and VAE decoder
    compiled (graph breaks allowed in the transformer), short batches padded to one shape."""
    from visuels.inputs.model_refs import DiffusersFolderRef

    from tests.tiny_families import save_tiny

    ref = DiffusersFolderRef(path=str(save_tiny(family, tmp_path / family)), native_size=256)
    settings = {"steps": 2, "guidance": None, "scheduler": None, "photos": None}
    campaign = make_campaign(model=ref.model_dump(), formats=["story"], **settings)
    plan = plan_render(campaign, tmp_path / "outputs", settings=RenderSettings(device="cuda"))
    jobs = plan.pending[:2] + plan.pending[:1]
    eager = ModelHost(torch.device("cuda")).generate(ref, torch.bfloat16, None, jobs)
    compiled = ModelHost(torch.device("cuda"), compile_models=True)
    pictures = compiled.generate(ref, torch.bfloat16, None, jobs[:2], pad_to=2)
    pictures += compiled.generate(ref, torch.bfloat16, None, jobs[2:], pad_to=2)
    # A job in another batch: the same picture but for rounding (on a CPU in fp32, 1 level at most).
    assert len(pictures) == 3 and np.abs(pictures[0].astype(int) - pictures[2].astype(int)).mean() < 1.0
    for fast, plain in zip(pictures, eager, strict=True):
        assert np.abs(fast.astype(int) - plain.astype(int)).mean() < 4.0  # bf16 kernels round differently


def test_float8_compiles_and_renders_close_to_bf16(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    """The precision float8 on a GPU that has FP8 (compute capability 8.9 or more): the compiled
    model multiplies in FP8 and lands near the bf16 pictures."""
    from visuels.models.float8 import FLOAT8, float8_available

    if not float8_available(torch.device("cuda")):
        pytest.skip("this GPU has no FP8 matrix products")
    plan = plan_render(make_campaign(formats=["story"], photos=None), tmp_path, settings=RenderSettings(device="cuda"))
    jobs = plan.pending[:2]
    plain = ModelHost(torch.device("cuda")).generate(DemoModelRef(), torch.bfloat16, None, jobs)
    fp8 = ModelHost(torch.device("cuda"), compile_models=True).generate(DemoModelRef(), FLOAT8, None, jobs, pad_to=2)
    for a, b in zip(plain, fp8, strict=True):
        assert 0 < np.abs(a.astype(int) - b.astype(int)).mean() < 4.0


def test_formatting_on_the_gpu_gives_the_cpus_pictures() -> None:
    """VISUELS_FORMAT_ON_DEVICE on CUDA: the grading gathers the CPU's bytes, the resampling lands
    within a level of OpenCV's (the CPU-side checks: tests/test_device_format.py)."""
    import cv2
    from PIL import Image
    from visuels.engine.device_format import grade_on_device, resample_on_device
    from visuels.postprocess.palette import grade_to_palette, grading_offsets
    from visuels.postprocess.resize import resample

    palette = tuple(colour.rgb for colour in load_charter(SAMPLE_CHARTER_DIR).spec.palette)
    offsets = torch.from_numpy(grading_offsets(palette, 0.5)).cuda()
    rng = np.random.default_rng(3)
    smooth = cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (512, 512), interpolation=cv2.INTER_CUBIC)
    picture = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    on_gpu = torch.from_numpy(picture).cuda()
    assert np.array_equal(grade_on_device(on_gpu, offsets).cpu().numpy(), grade_to_palette(picture, palette, 0.5))
    for size in ((1080, 1080), (1200, 628), (300, 300)):
        resized = resample_on_device(on_gpu, *size).cpu().numpy().astype(np.int16)
        difference = np.abs(resized - resample(Image.fromarray(picture), *size))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001
