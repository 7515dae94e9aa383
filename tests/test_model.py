"""The demo model and the model host: built from configs, loaded like any checkpoint, deterministic per job."""

import json
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from visuels.errors import ModelError
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DemoModelRef, DiffusersFolderRef, HubRef, SingleFileRef, parse_model_option
from visuels.models.demo import build_demo_pipeline, ensure_demo_model
from visuels.models.devices import choose_device, choose_dtype
from visuels.models.generation import generate
from visuels.models.host import GpuMemoryError, ModelHost
from visuels.models.reference import describe_model
from visuels.planning.jobs import expand_jobs


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


def test_a_cache_folder_that_cannot_be_made_is_one_line_naming_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo model cannot be built without its folder: the setting to change is named. The
    file-hash cache is only a cache: a hash is still given when it cannot be written."""
    from visuels._internal.hashing import cached_sha256_file, sha256_file
    from visuels.errors import SettingsError

    monkeypatch.setenv("VISUELS_CACHE_DIR", "/proc/visuels-cache")  # no folder can be made there, even as root
    with pytest.raises(SettingsError, match=r"^VISUELS_CACHE_DIR: cannot make the demo model's folder in /proc/"):
        ensure_demo_model()
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"0123456789")
    assert cached_sha256_file(weights, Path("/proc/visuels-cache/file-hashes.json")) == sha256_file(weights)
    damaged = tmp_path / "file-hashes.json"  # valid JSON, but not the cache's mapping: a TypeError
    for content in ("[]", "12", "[" * 100_000):
        damaged.write_text(content)
        assert cached_sha256_file(weights, damaged) == sha256_file(weights)


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
    # ~ as a laptop's user writes it, where the shell leaves it (after `::`, in a campaign file).
    home = str(Path.home())
    single = parse_model_option("~/m/sd.safetensors::~/m/sd-config")
    assert (single.path, single.config) == (f"{home}/m/sd.safetensors", f"{home}/m/sd-config")
    from visuels.inputs.model_refs import resolve_paths

    in_campaign = resolve_paths(DiffusersFolderRef(path="~/models/x"), Path("/campaigns"))
    assert in_campaign.path == f"{home}/models/x"
    assert resolve_paths(DiffusersFolderRef(path="models/x"), Path("/campaigns")).path == "/campaigns/models/x"


def test_a_models_kind_is_read_as_written_or_from_its_fields() -> None:
    """`kind: Diffusers` or `kind: single-file` was refused in pydantic's words ("Input tag ... does
    not match any of the expected tags"), and `{path: /models/sd15}` as "Unable to extract tag
    using discriminator 'kind'"; a kind the project has not stays as written, to be said so."""
    from visuels.inputs.model_refs import kind_as_written

    assert kind_as_written({"kind": "Diffusers", "path": "/m"}) == {"kind": "diffusers", "path": "/m"}
    assert kind_as_written({"kind": "single-file", "path": "/m.safetensors"})["kind"] == "single_file"
    assert kind_as_written({"path": "/models/sd15"})["kind"] == "diffusers"
    assert kind_as_written({"path": "/m/sd.safetensors"})["kind"] == "single_file"
    assert kind_as_written({"path": "/m/sd", "config": "/m/config"})["kind"] == "single_file"
    assert kind_as_written({"id": "org/model", "revision": "v1"})["kind"] == "hub"
    assert kind_as_written({"kind": "Telepathy"}) == {"kind": "Telepathy"}
    assert kind_as_written({"kind": None}) == {"kind": None}
    assert kind_as_written({"native_size": 512}) == {"native_size": 512}


def test_missing_or_broken_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model_index\.json"):
        describe_model(DiffusersFolderRef(path=str(tmp_path)))
    with pytest.raises(ModelError, match="checkpoint not found"):
        describe_model(SingleFileRef(path=str(tmp_path / "x.safetensors"), config=str(ensure_demo_model())))


def test_configs_shape_the_model_hash_as_much_as_weights(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(ensure_demo_model(), folder)
    before = describe_model(DiffusersFolderRef(path=str(folder))).hash
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"scaled_linear"', '"linear"'))
    assert describe_model(DiffusersFolderRef(path=str(folder))).hash != before
    # A cloned repository's .git/ (LFS copies of the weights) and a download's .cache/ change
    # without the model: never hashed (nor read: gigabytes on every plan).
    changed = describe_model(DiffusersFolderRef(path=str(folder))).hash
    for hidden in (".git/lfs/objects/ab/abcdef", ".cache/huggingface/download/unet.metadata"):
        (folder / hidden).parent.mkdir(parents=True)
        (folder / hidden).write_text("changes with every fetch")
    assert describe_model(DiffusersFolderRef(path=str(folder))).hash == changed


def test_a_hub_id_is_pinned_to_the_commit_its_revision_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repository = tmp_path / "models--region--sd"
    for commit in ("a" * 40, "b" * 40):
        shutil.copytree(ensure_demo_model(), repository / "snapshots" / commit)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("a" * 40)
    first = describe_model(HubRef(id="region/sd"))
    assert first.ref == HubRef(id="region/sd", revision="a" * 40) and first.native_size == 256
    assert first.description == f"hub:region/sd@{'a' * 12}"  # loaded without a safety checker
    index = repository / "snapshots" / ("b" * 40) / "model_index.json"
    with_checker = json.loads(index.read_text()) | {
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]
    }
    index.write_text(json.dumps(with_checker))
    (repository / "refs" / "main").write_text("b" * 40)  # someone pushed to main
    second = describe_model(HubRef(id="region/sd"))
    assert second.ref.revision == "b" * 40 and second.hash != first.hash
    assert second.description == f"hub:region/sd@{'b' * 12}, safety-checked"  # recorded in every picture's C2PA
    with pytest.raises(ModelError, match="not in the local hub cache"):
        describe_model(HubRef(id="region/other"))


def _loaded(host: ModelHost, ref, dtype, lora):
    """The pipeline the host holds for these, as ``generate`` would use it."""
    with host.use(ref, dtype, lora) as pipeline:
        return pipeline


@pytest.fixture(scope="module")
def host() -> ModelHost:
    return ModelHost(choose_device("cpu"), keep_models=2)


@pytest.fixture(scope="module")
def demo_pipeline(host: ModelHost):
    return _loaded(host, DemoModelRef(), torch.float32, None)


def test_the_host_keeps_its_models(host: ModelHost, demo_pipeline) -> None:
    loads = host.loads
    assert _loaded(host, DemoModelRef(), torch.float32, None) is demo_pipeline
    as_folder = DiffusersFolderRef(path=str(ensure_demo_model()))
    other = _loaded(host, as_folder, torch.float32, None)  # a second model: both are kept
    assert _loaded(host, DemoModelRef(), torch.float32, None) is demo_pipeline
    assert _loaded(host, as_folder, torch.float32, None) is other and host.loads == loads + 1
    single = ModelHost(choose_device("cpu"), keep_models=1)
    _loaded(single, DemoModelRef(), torch.float32, None)
    _loaded(single, as_folder, torch.float32, None)
    _loaded(single, as_folder, torch.float32, None)  # the one it keeps: not read again
    assert single.loads == 2
    _loaded(single, DemoModelRef(), torch.float32, None)  # the one it let go: read again
    assert single.loads == 3


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_same_job_same_pixels_other_seed_other_pixels(demo_pipeline, make_campaign: Callable[..., Path]) -> None:
    campaign = load_campaign(make_campaign(audiences={"a": "families", "b": "students"}, formats=["story"]))
    jobs = expand_jobs(campaign, describe_model(DemoModelRef()), "float32")
    first = generate(demo_pipeline, jobs[:2])
    again = generate(demo_pipeline, jobs[:2])
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (jobs[0].generation_height, jobs[0].generation_width, 3)
    assert first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1])
    # A job's starting noise does not depend on its batch: alone it comes out (almost) the same.
    alone = generate(demo_pipeline, jobs[1:2])[0]
    assert np.abs(alone.astype(int) - first[1].astype(int)).max() <= 2


class SpyingRedraw:
    """The img2img pipeline the high-resolution pass builds, recording each call and the VAE's tiling."""

    def __init__(self, redraw, vae) -> None:
        self.redraw, self.vae, self.calls = redraw, vae, []

    def set_progress_bar_config(self, **settings) -> None:
        self.redraw.set_progress_bar_config(**settings)

    def __call__(self, **arguments):
        self.calls.append({**arguments, "tiled": self.vae.use_tiling})
        return self.redraw(**arguments)


@pytest.mark.slow
def test_the_high_resolution_pass_redraws_the_enlarged_first_pass_in_tiles(
    demo_pipeline, make_campaign: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.models.generation

    campaign = load_campaign(
        make_campaign(audiences={"a": "families", "b": "students"}, formats=["poster_a3_300dpi"], photos=None)
    )
    jobs = expand_jobs(campaign, describe_model(DemoModelRef()), "float32")[:2]
    assert jobs[0].hires is not None and jobs[0].hires.sizes == ((416, 608), (832, 1216))
    first_pass = generate(demo_pipeline, [job.model_copy(update={"hires": None}) for job in jobs])
    build = visuels.models.generation.derived
    spies: list[SpyingRedraw] = []
    monkeypatch.setattr(
        visuels.models.generation,
        "derived",
        lambda pipeline, *args: spies.append(SpyingRedraw(build(pipeline, *args), pipeline.vae)) or spies[-1],
    )
    pictures = generate(demo_pipeline, jobs)

    assert [picture.shape for picture in pictures] == [(1216, 832, 3)] * 2
    calls = spies[0].calls
    assert [tuple(call["image"].shape[-2:]) for call in calls] == [(608, 416), (1216, 832)]
    assert all(call["tiled"] and call["strength"] == jobs[0].hires.strength for call in calls)
    assert not demo_pipeline.vae.use_tiling  # the next first pass decodes whole
    # The first redraw starts from the first pass, enlarged: the same picture at half the size.
    shrunk = torch.nn.functional.avg_pool2d(calls[0]["image"], 2).permute(0, 2, 3, 1).numpy() * 255
    assert np.abs(shrunk - np.stack(first_pass)).mean() < 2
    assert all(np.array_equal(a, b) for a, b in zip(generate(demo_pipeline, jobs), pictures, strict=True))


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_out_of_memory_halves_the_batch_frees_the_failed_call_and_keeps_the_pictures(
    host: ModelHost,
    demo_pipeline,
    make_campaign: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import visuels.models.host

    # From text only: a batch of jobs from photos and from text would be two calls.
    campaign = load_campaign(make_campaign(audiences={"a": "x", "b": "y", "c": "z"}, formats=["story"], photos=None))
    jobs = expand_jobs(campaign, describe_model(DemoModelRef()), "float32")[:5]
    expected = generate(demo_pipeline, jobs)
    calls: list[int] = []
    failed_calls_memory: list[weakref.ref] = []

    def small_gpu(pipeline, batch, controlnet, noise_key):
        # What a failed call held (its activations) must be gone before the next call starts.
        assert all(memory() is None for memory in failed_calls_memory), "a failed call's memory is still held"
        calls.append(len(batch))
        if len(batch) > 2:
            activations = torch.ones(4_000_000)
            failed_calls_memory.append(weakref.ref(activations))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return generate(pipeline, batch, controlnet, noise_key)

    monkeypatch.setattr(visuels.models.host, "generate", small_gpu)
    pictures = host.generate(DemoModelRef(), torch.float32, None, jobs)
    assert calls == [5, 3, 2, 1, 2]
    for got, want in zip(pictures, expected, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2  # same pictures, other batches
    calls.clear()
    host.generate(DemoModelRef(), torch.float32, None, jobs)
    assert calls == [2, 2, 1]  # the host remembers what fits...
    monkeypatch.setattr(visuels.models.host, "generate", lambda pipeline, batch, *inputs: [None] * len(batch))
    for _call in range(visuels.models.host.REGROW_AFTER):
        host.generate(DemoModelRef(), torch.float32, None, jobs)
    monkeypatch.setattr(visuels.models.host, "generate", small_gpu)
    calls.clear()
    host.generate(DemoModelRef(), torch.float32, None, jobs)
    assert calls[0] == 5  # ...for a while: the memory may have been another job's, so the full size is tried again


def test_one_picture_that_does_not_fit_is_a_clear_error(
    host: ModelHost, make_campaign: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.models.host

    def no_memory(pipeline, batch, controlnet, noise_key):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(visuels.models.host, "generate", no_memory)
    jobs = expand_jobs(load_campaign(make_campaign(formats=["story"])), describe_model(DemoModelRef()), "float32")
    with pytest.raises(GpuMemoryError, match="one picture does not fit"):
        host.generate(DemoModelRef(), torch.float32, None, jobs[:1])


def save_tiny_sdxl(folder: Path) -> Path:
    """An SDXL-architecture pipeline (two text encoders, text-time conditioning), tiny, random."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from visuels.models.demo import build_tokenizer

    tokenizer = build_tokenizer()
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2}
    text |= {"num_attention_heads": 4, "max_position_embeddings": 77, "projection_dim": 32}
    text |= {"bos_token_id": len(tokenizer) - 2, "eos_token_id": len(tokenizer) - 1}
    torch.manual_seed(0)
    pipeline = StableDiffusionXLPipeline(
        vae=AutoencoderKL(
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=4,
        ),
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)),
        tokenizer=tokenizer,
        tokenizer_2=build_tokenizer(),
        unet=UNet2DConditionModel(
            sample_size=16,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            layers_per_block=1,
            attention_head_dim=(2, 4),
            cross_attention_dim=64,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=80,
            norm_num_groups=8,
        ),
        scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    )
    pipeline.save_pretrained(folder)
    return folder


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_an_sdxl_checkpoint_renders_at_its_native_size(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    from visuels.planning.plan import plan_render

    from tests.helpers import render_now

    folder = save_tiny_sdxl(tmp_path / "sdxl")
    info = describe_model(DiffusersFolderRef(path=str(folder)))
    assert (info.native_size, info.size_multiple) == (128, 16)  # latent 16 x the VAE's 8
    checkpoint = tmp_path / "sdxl.safetensors"
    parts = ("model.diffusion_model.", "first_stage_model.", "conditioner.embedders.")
    save_file({f"{part}w": torch.zeros(2) for part in parts}, str(checkpoint))  # sizes: from its config folder
    single = describe_model(SingleFileRef(path=str(checkpoint), config=str(folder)))
    assert (single.native_size, single.size_multiple) == (128, 16)

    out = tmp_path / "outputs"
    campaign = make_campaign(model={"kind": "diffusers", "path": str(folder)}, formats=["instagram_square", "story"])
    plan = plan_render(campaign, out)
    assert {(job.generation_width, job.generation_height) for job in plan.jobs} == {(128, 128), (96, 176)}
    exported = render_now(renderer, plan, out, plan.pending[:2])
    assert len(exported) == 2 and all((out / item.job.relative_path).is_file() for item in exported)


def test_a_folder_with_fp16_weights_loads_them_in_half_precision(tmp_path: Path) -> None:
    from visuels.models.demo import build_demo_pipeline
    from visuels.models.host import load_from_files

    folder = tmp_path / "model"
    build_demo_pipeline().save_pretrained(folder)
    marked = build_demo_pipeline().to(torch.float16)  # as SD checkpoints ship: *.fp16.safetensors
    with torch.no_grad():
        marked.unet.conv_in.weight.zero_()  # so the test can tell which file was read
    marked.save_pretrained(folder, variant="fp16")
    half = load_from_files(DiffusersFolderRef(path=str(folder)), torch.bfloat16)
    full = load_from_files(DiffusersFolderRef(path=str(folder)), torch.float32)
    assert half.unet.dtype == torch.bfloat16 and not half.unet.conv_in.weight.any()
    assert full.unet.dtype == torch.float32 and full.unet.conv_in.weight.any()


def test_pickle_weights_are_refused_unless_the_deployment_allows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(ensure_demo_model(), folder)
    for weights in folder.rglob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))  # only the names matter to the check
    checkpoint = tmp_path / "sd.ckpt"
    checkpoint.write_bytes(b"pickle")
    monkeypatch.delenv("VISUELS_ALLOW_PICKLE", raising=False)
    with pytest.raises(ModelError, match="pickle weights, which can run code"):
        describe_model(DiffusersFolderRef(path=str(folder)))
    with pytest.raises(ModelError, match=r"sd\.ckpt holds pickle weights"):
        describe_model(SingleFileRef(path=str(checkpoint), config=str(ensure_demo_model())))
    monkeypatch.setenv("VISUELS_ALLOW_PICKLE", "1")
    assert describe_model(DiffusersFolderRef(path=str(folder))).hash
    assert describe_model(SingleFileRef(path=str(checkpoint), config=str(ensure_demo_model()))).hash


def test_a_picture_the_safety_checker_blacked_out_is_never_exported_silently(
    make_campaign: Callable[..., Path],
) -> None:
    from types import SimpleNamespace

    from visuels.models.generation import refuse_flagged

    jobs = expand_jobs(load_campaign(make_campaign()), describe_model(DemoModelRef()), "float32")[:2]
    refuse_flagged(jobs, SimpleNamespace(images=None))  # no checker: nothing to say
    refuse_flagged(jobs, SimpleNamespace(nsfw_content_detected=[False, False]))
    with pytest.raises(ModelError, match="safety checker blacked out this picture") as caught:
        refuse_flagged(jobs, SimpleNamespace(nsfw_content_detected=[False, True]))
    assert caught.value.file == jobs[1].relative_path
