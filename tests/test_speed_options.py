"""Speed options of issue #31 on the demo model: guidance that stops early, few-step schedulers.

Each option runs, changes the keys where it changes the pixels, and combines with the others.
What it costs a real model in quality is for the quality guard on a real checkpoint
(benchmarks/gpu_render.py): random weights cannot show it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from visuels.errors import CampaignError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DemoModelRef, LoraWeights
from visuels.models.devices import choose_device
from visuels.models.generation import generate, use_scheduler
from visuels.models.host import ModelHost
from visuels.models.reference import describe_model
from visuels.planning.jobs import RenderJob, expand_jobs

pytestmark = pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop


@pytest.fixture(scope="module")
def demo_pipeline():
    with ModelHost(choose_device("cpu"), keep_models=1).use(DemoModelRef(), torch.float32, None) as pipeline:
        return pipeline


@contextmanager
def unet_batches(pipeline) -> Iterator[list[int]]:
    """The batch size of every UNet call made inside the block."""
    sizes: list[int] = []
    hook = pipeline.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        yield sizes
    finally:
        hook.remove()


def planned(make_campaign: Callable[..., Path], **fields) -> list[RenderJob]:
    campaign = load_campaign(
        make_campaign(audiences={"a": "families", "b": "students"}, formats=["instagram_square"], photos=None, **fields)
    )
    return expand_jobs(campaign, describe_model(DemoModelRef()), "float32")


def test_guidance_stops_after_its_share_of_the_steps(demo_pipeline, make_campaign: Callable[..., Path]) -> None:
    jobs = planned(make_campaign, steps=10, guidance_cutoff=0.4)[:2]
    with unet_batches(demo_pipeline) as sizes:
        generate(demo_pipeline, jobs)
    assert sizes == [4] * 4 + [2] * 6  # both passes for 4 steps, then the prompts alone
    with unet_batches(demo_pipeline) as sizes:
        generate(demo_pipeline, [job.model_copy(update={"guidance_cutoff": None}) for job in jobs])
    assert sizes == [4] * 10


def test_each_picture_of_a_batch_keeps_its_own_prompt_after_guidance_stops(
    demo_pipeline, make_campaign: Callable[..., Path]
) -> None:
    # diffusers' own cut-off callbacks keep the last prompt's embeddings only: in a batch, every
    # picture would follow the last prompt from the cut-off on.
    jobs = planned(make_campaign, steps=8, guidance_cutoff=0.5)
    assert len({job.prompt for job in jobs}) == len(jobs) == 4
    together = generate(demo_pipeline, jobs)
    for job, picture in zip(jobs, together, strict=True):
        alone = generate(demo_pipeline, [job])[0]
        assert np.abs(alone.astype(int) - picture.astype(int)).max() <= 2  # batching rounds, nothing more
    full = generate(demo_pipeline, [job.model_copy(update={"guidance_cutoff": None}) for job in jobs[:1]])[0]
    assert np.abs(full.astype(int) - together[0].astype(int)).mean() > 1  # stopping guidance shows


def test_a_cutoff_at_the_last_step_changes_nothing(demo_pipeline, make_campaign: Callable[..., Path]) -> None:
    jobs = planned(make_campaign, steps=6, guidance_cutoff=1.0)[:2]
    cut = generate(demo_pipeline, jobs)
    full = generate(demo_pipeline, [job.model_copy(update={"guidance_cutoff": None}) for job in jobs])
    assert all(np.array_equal(a, b) for a, b in zip(cut, full, strict=True))


def test_the_cutoff_shapes_the_key_only_when_set(make_campaign: Callable[..., Path]) -> None:
    plain = planned(make_campaign, steps=10)
    cut = planned(make_campaign, steps=10, guidance_cutoff=0.4)
    cut_later = planned(make_campaign, steps=10, guidance_cutoff=0.6)
    assert len({job.key for job in plain} | {job.key for job in cut} | {job.key for job in cut_later}) == 3 * len(plain)
    assert plain[0].guidance_cutoff is None and cut[0].guidance_cutoff == 0.4


def test_a_family_without_classifier_free_guidance_refuses_a_cutoff(make_campaign: Callable[..., Path]) -> None:
    from visuels.models.reference import ModelInfo

    campaign = load_campaign(make_campaign(guidance_cutoff=0.4, steps=None, guidance=None, scheduler=None))
    klein = describe_model(DemoModelRef()).model_copy(update={"family": "flux2-klein"})
    assert isinstance(klein, ModelInfo)
    with pytest.raises(CampaignError, match="guidance_cutoff") as refused:
        expand_jobs(campaign, klein, "float32")
    assert "FLUX.2 klein" in str(refused.value)


@pytest.mark.parametrize("scheduler", ["euler_trailing", "lcm", "tcd"])
def test_few_step_schedulers_run_one_pass_per_step_on_trailing_timesteps(
    scheduler: str, demo_pipeline, make_campaign: Callable[..., Path]
) -> None:
    jobs = planned(make_campaign, steps=4, guidance=1.0, scheduler=scheduler)[:2]
    with unet_batches(demo_pipeline) as sizes:
        pictures = generate(demo_pipeline, jobs)
    assert sizes == [2] * 4  # guidance 1: no unconditional pass
    # Trailing: the first step starts from the end of the schedule, where the noise is pure.
    assert int(demo_pipeline.scheduler.timesteps[0]) == demo_pipeline.scheduler.config.num_train_timesteps - 1
    assert all(picture.std() > 1 for picture in pictures)
    default_spacing = planned(make_campaign, steps=4, guidance=1.0, scheduler="euler")
    assert {job.key for job in default_spacing}.isdisjoint(
        job.key for job in planned(make_campaign, steps=4, guidance=1.0, scheduler=scheduler)
    )


def test_the_next_campaign_gets_the_models_own_spacing_back(demo_pipeline) -> None:
    own = demo_pipeline.__dict__.get("model_scheduler", demo_pipeline.scheduler).config["timestep_spacing"]
    use_scheduler(demo_pipeline, "euler_trailing")
    assert demo_pipeline.scheduler.config.timestep_spacing == "trailing" != own
    use_scheduler(demo_pipeline, "euler")
    assert demo_pipeline.scheduler.config.timestep_spacing == own
    use_scheduler(demo_pipeline, "lcm")
    use_scheduler(demo_pipeline, "default")
    assert demo_pipeline.scheduler is demo_pipeline.model_scheduler


def test_options_combine(demo_pipeline, make_campaign: Callable[..., Path], lora_file: Path) -> None:
    # A few-step scheduler, guidance stopping half-way and the style LoRA, in one campaign.
    jobs = planned(
        make_campaign,
        steps=6,
        guidance=3.0,
        scheduler="euler_trailing",
        guidance_cutoff=0.5,
        lora={"path": str(lora_file), "scale": 0.8},
    )[:2]
    host = ModelHost(choose_device("cpu"), keep_models=1)
    lora = LoraWeights(path=str(lora_file), scale=0.8)
    with host.use(DemoModelRef(), torch.float32, lora) as with_lora, unet_batches(with_lora) as sizes:
        pictures = generate(with_lora, jobs)
    assert sizes == [4] * 3 + [2] * 3
    assert len({job.key for job in jobs}) == 2 and all(picture.std() > 1 for picture in pictures)


@contextmanager
def deep_block_runs(pipeline) -> Iterator[list[int]]:
    """How many times the UNet's middle block really ran inside the block (a deep block: skipped
    on cached steps). Its first layer's hook tells: the block's own hooks fire on cached calls too."""
    runs: list[int] = []
    hook = pipeline.unet.mid_block.resnets[0].register_forward_hook(lambda module, args, output: runs.append(1))
    try:
        yield runs
    finally:
        hook.remove()


def test_deep_features_are_computed_every_n_steps_and_reused_between(
    demo_pipeline, make_campaign: Callable[..., Path]
) -> None:
    from visuels.models.feature_cache import feature_cache

    jobs = planned(make_campaign, steps=9, deep_cache=3)[:2]
    with unet_batches(demo_pipeline) as calls, deep_block_runs(demo_pipeline) as runs:
        cached = generate(demo_pipeline, jobs)
    assert len(calls) == 9 and len(runs) == 3
    full = generate(demo_pipeline, [job.model_copy(update={"deep_cache": None}) for job in jobs])
    difference = np.abs(cached[0].astype(int) - full[0].astype(int)).mean()
    assert 0.1 < difference < 40  # another picture, the same one roughly
    # Afterwards the UNet is whole again: a render without the cache is the same as before it.
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            generate(demo_pipeline, [job.model_copy(update={"deep_cache": None}) for job in jobs]), full, strict=True
        )
    )
    assert "forward" not in demo_pipeline.unet.mid_block.__dict__
    text = torch.zeros(1, 77, demo_pipeline.unet.config.cross_attention_dim)
    with feature_cache(demo_pipeline.unet, 2) as cache, torch.inference_mode():
        demo_pipeline.unet(torch.zeros(1, 4, 8, 8), 10, text)
        demo_pipeline.unet(torch.zeros(1, 4, 8, 8), 9, text)
        demo_pipeline.unet(torch.zeros(1, 4, 16, 16), 8, text)  # a new shape: whole
    assert cache.deep_runs == 2


def test_deep_cache_with_guidance_stopping_early_recomputes_at_the_new_batch(
    demo_pipeline, make_campaign: Callable[..., Path]
) -> None:
    jobs = planned(make_campaign, steps=8, deep_cache=4, guidance_cutoff=0.25)[:2]
    with unet_batches(demo_pipeline) as calls, deep_block_runs(demo_pipeline) as runs:
        pictures = generate(demo_pipeline, jobs)
    assert calls == [4] * 2 + [2] * 6
    assert len(runs) == 3  # step 1 (new), step 3 (batch halved), step 7 (4 steps later)
    assert all(picture.std() > 1 for picture in pictures)


def test_deep_cache_is_keyed_and_refused_by_transformer_families(make_campaign: Callable[..., Path]) -> None:
    plain, cached = planned(make_campaign, steps=9), planned(make_campaign, steps=9, deep_cache=3)
    assert {job.key for job in plain}.isdisjoint(job.key for job in cached)
    campaign = load_campaign(make_campaign(deep_cache=3, steps=None, guidance=None, scheduler=None))
    zimage = describe_model(DemoModelRef()).model_copy(update={"family": "z-image"})
    with pytest.raises(CampaignError, match="deep_cache"):
        expand_jobs(campaign, zimage, "float32")
