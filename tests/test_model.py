"""The demo model: built from configs, loaded like any checkpoint, deterministic per job."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.campaign import load_campaign
from pipelines.demo_model import build_demo_pipeline, ensure_demo_model
from pipelines.devices import choose_device, choose_dtype
from pipelines.errors import ModelError
from pipelines.generation import generate
from pipelines.jobs import expand_jobs
from pipelines.model_loading import load_pipeline
from pipelines.model_reference import (
    DemoModelRef,
    DiffusersFolderRef,
    HubRef,
    SingleFileRef,
    describe_model,
    parse_model_option,
)


def test_demo_model_is_built_deterministically() -> None:
    first = build_demo_pipeline().unet.state_dict()
    second = build_demo_pipeline().unet.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_demo_model_is_a_diffusers_folder_described_without_loading() -> None:
    folder = ensure_demo_model()
    assert (folder / "model_index.json").is_file()
    demo = describe_model(DemoModelRef())
    as_folder = describe_model(DiffusersFolderRef(path=str(folder)))
    assert demo.hash == as_folder.hash
    assert (demo.native_size, demo.size_multiple) == (256, 16)


def test_cpu_gets_float32() -> None:
    device = choose_device("cpu")
    assert choose_dtype(device) == torch.float32
    assert choose_dtype(device, "bfloat16") == torch.bfloat16


def test_model_options_parse() -> None:
    assert parse_model_option("demo") == DemoModelRef()
    assert parse_model_option("hub:org/model") == HubRef(id="org/model")
    assert isinstance(parse_model_option("/models/sd15"), DiffusersFolderRef)
    single = parse_model_option("/m/sd.safetensors::/m/sd-config")
    assert isinstance(single, SingleFileRef) and single.config == "/m/sd-config"
    with pytest.raises(ModelError, match="config folder"):
        parse_model_option("/m/sd.safetensors")


def test_missing_or_broken_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model_index\.json"):
        describe_model(DiffusersFolderRef(path=str(tmp_path)))
    with pytest.raises(ModelError, match="checkpoint not found"):
        describe_model(SingleFileRef(path=str(tmp_path / "x.safetensors"), config=str(ensure_demo_model())))


@pytest.fixture(scope="module")
def demo_pipeline():
    device = choose_device("cpu")
    return load_pipeline(DemoModelRef(), device, choose_dtype(device))


def test_loading_twice_reuses_the_process_model(demo_pipeline) -> None:
    device = choose_device("cpu")
    assert load_pipeline(DemoModelRef(), device, choose_dtype(device)) is demo_pipeline


def test_same_job_same_pixels_other_seed_other_pixels(demo_pipeline, make_campaign: Callable[..., Path]) -> None:
    campaign = load_campaign(make_campaign(audiences={"a": "families", "b": "students"}, formats=["story"]))
    jobs = expand_jobs(campaign, describe_model(DemoModelRef()))
    first = [np.asarray(image) for image in generate(demo_pipeline, jobs[:2])]
    again = [np.asarray(image) for image in generate(demo_pipeline, jobs[:2])]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (jobs[0].generation_height, jobs[0].generation_width, 3)
    assert not np.array_equal(first[0], first[1])
    # A job's starting noise does not depend on its batch: alone it comes out (almost) the same.
    alone = np.asarray(generate(demo_pipeline, jobs[1:2])[0])
    assert np.abs(alone.astype(int) - first[1].astype(int)).max() <= 2


def test_out_of_memory_halves_the_batch_and_keeps_the_pictures(
    demo_pipeline,
    make_campaign: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipelines.render
    from pipelines.render import generate_fitting_memory

    campaign = load_campaign(make_campaign(audiences={"a": "x", "b": "y", "c": "z"}, formats=["story"]))
    jobs = expand_jobs(campaign, describe_model(DemoModelRef()))[:5]
    expected = [np.asarray(image) for image in generate(demo_pipeline, jobs)]
    calls = []

    def small_gpu(pipeline, batch):
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return generate(pipeline, batch)

    monkeypatch.setattr(pipelines.render, "generate", small_gpu)
    pictures = generate_fitting_memory(demo_pipeline, jobs)
    assert calls == [5, 2, 3, 1, 2]
    for got, want in zip(pictures, expected, strict=True):
        assert np.abs(np.asarray(got).astype(int) - want.astype(int)).max() <= 2  # same pictures, other batches
