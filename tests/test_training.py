"""LoRA training on the demo model: dataset checks, loss, exports, resume, charter:latest."""

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from visuels.cli import main
from visuels.inputs.campaign import load_campaign
from visuels.inputs.lora_runs import WEIGHTS_FILE, latest_run
from visuels.inputs.model_refs import DemoModelRef
from visuels.models.demo import ensure_demo_model
from visuels.training.dataset import DatasetError, load_training_set
from visuels.training.evaluation import colour_distance, sampling_arguments
from visuels.training.run import TrainingSummary, check_training_inputs, run_training
from visuels.training.trainer import TrainingConfig

from tests.helpers import SAMPLE_CHARTER_DIR

# Measured on this machine kind (benchmarks/RESULTS.md), 300 steps at 64 px, batch 4, lr 3e-3
# cosine, training seeds 0, 1, 2: the mean loss of the last 50 steps is 41%, 37%, 46% below that
# of the first 50; the colour distance to the references falls by 18%, 33%, 21%. The bars are
# about half of the smallest measurement.
MIN_LOSS_DROP = 0.18
MIN_COLOUR_IMPROVEMENT = 0.09


@pytest.fixture
def references(tmp_path: Path) -> Path:
    folder = tmp_path / "references"
    shutil.copytree(SAMPLE_CHARTER_DIR / "references", folder)
    return folder


@pytest.mark.parametrize(
    ("damage", "field", "words"),
    [
        (lambda f: [p.unlink() for p in sorted(f.glob("*.png"))[4:]], None, "at least 5"),
        (lambda f: (f / "03-hills.txt").unlink(), "caption", "missing caption"),
        (lambda f: (f / "03-hills.txt").write_text("  \n"), "caption", "empty"),
        (lambda f: (f / "03-hills.png").write_bytes(b"\x89PNG broken"), None, "not a picture"),
        (lambda f: Image.new("RGB", (32, 32)).save(f / "03-hills.png"), "size", "smaller than 64"),
        # Notepad's "ANSI" (Windows-1252): a traceback in `visuels check` and `visuels train`.
        (lambda f: (f / "03-hills.txt").write_bytes("slnstyle, Sète".encode("cp1252")), "caption", "not UTF-8"),
    ],
)
def test_bad_training_sets_name_the_file(references: Path, damage: Callable, field: str | None, words: str) -> None:
    damage(references)
    with pytest.raises(DatasetError) as caught:
        load_training_set(references, 64)
    assert caught.value.field == field and words in caught.value.message


def test_sample_references_make_a_training_set() -> None:
    dataset = load_training_set(SAMPLE_CHARTER_DIR / "references", 64)
    assert dataset.pixels.shape == (12, 64, 64, 3)
    assert all(caption.startswith("slnstyle") for caption in dataset.captions)
    assert dataset.hash == load_training_set(SAMPLE_CHARTER_DIR / "references", 64).hash


def test_references_and_captions_as_windows_and_photographers_save_them(references: Path) -> None:
    """A caption saved with a byte order mark (Notepad) kept it in the prompt; UTF-16 ("Unicode") was
    refused; TIFF references were silently left out of the training set."""
    sample = load_training_set(references, 64)
    caption = (references / "01-sea.txt").read_text(encoding="utf-8")
    (references / "01-sea.txt").write_bytes(caption.encode("utf-8-sig"))
    (references / "02-sea-village.txt").write_bytes(caption.encode("utf-16"))
    Image.open(references / "03-hills.png").save(references / "03-hills.tiff")
    (references / "03-hills.png").unlink()
    dataset = load_training_set(references, 64)
    assert dataset.captions[:2] == [caption.strip()] * 2
    assert [path.name for path in dataset.files][2] == "03-hills.tiff"
    assert np.array_equal(dataset.pixels[2], sample.pixels[2])


def test_every_documented_training_option_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import SAMPLE_CAMPAIGN

    guide = (SAMPLE_CAMPAIGN.parents[1] / "docs" / "designers.md").read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage = capsys.readouterr().out
    section = guide.split("## Charter LoRA training", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)`", section))
    assert documented and not [option for option in documented if option not in usage]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rank", "0"], "error: visuels train: --rank: Input should be greater than or equal to 1"),
        (
            ["--resolution", "100"],
            "error: visuels train: --resolution: resolution must be a multiple of 64",
        ),
        (["--resume", "20990101-000000"], "no interrupted run '20990101-000000' to resume"),
        (["--train-text-encoder", "--rank", "0"], "--rank: Input should be greater than or equal to 1"),
        (["--base", "/nonexistent/model"], "error: base: /nonexistent/model not found"),  # not "model: model:"
    ],
)
def test_bad_training_options_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    lora_dir = tmp_path / "lora"
    refuse = lambda *args: pytest.fail("bad input must be refused before the flow starts")  # noqa: E731
    assert main(["train", str(SAMPLE_CHARTER_DIR), "--lora-dir", str(lora_dir), *argv], train=refuse) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not lora_dir.exists()


def test_resume_takes_a_run_by_its_name_or_its_folder_and_says_a_finished_one_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--resume lora/solane/.20990101-000000.partial` (the folder's path, as `ls` shows it) was
    refused naming `lora/solane/.lora/solane/….partial`; a finished run said "no interrupted run"."""
    lora_dir = tmp_path / "lora"
    charter_folder = lora_dir / "solane"
    (charter_folder / ".20990101-000000.partial").mkdir(parents=True)
    (charter_folder / "20990102-000000").mkdir()
    asked: list[str] = []

    def recorded(charter: str, base: str, options: dict, resume: str, root: str) -> None:
        asked.append(resume)
        raise KeyboardInterrupt  # the options passed: nothing more to see

    def train(*argv: str) -> int:
        return main(["train", str(SAMPLE_CHARTER_DIR), "--lora-dir", str(lora_dir), *argv], train=recorded)

    for given in ("20990101-000000", str(charter_folder / ".20990101-000000.partial"), "lora/solane/20990101-000000"):
        assert train("--resume", given) == 130
    assert len(asked) == 3
    assert train("--resume", str(charter_folder / "20990102-000000")) == 2
    assert "--resume: this run is already complete" in capsys.readouterr().err
    assert train("--resume", "..") == 2
    assert "not a training run's name" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingSummary:
    root = tmp_path_factory.mktemp("lora")
    config = TrainingConfig(
        steps=300, resolution=64, rank=8, learning_rate=3e-3, lr_schedule="cosine", batch_size=4, checkpoint_every=150
    )
    return run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=root)


@pytest.mark.slow
def test_training_lowers_the_loss(trained: TrainingSummary) -> None:
    assert trained.loss_drop >= MIN_LOSS_DROP, trained
    assert trained.last_loss < trained.first_loss


@pytest.mark.slow
def test_the_lora_brings_colours_closer_to_the_references(trained: TrainingSummary) -> None:
    before, after = trained.colour_distance_without_lora, trained.colour_distance_with_lora
    assert (before - after) / before >= MIN_COLOUR_IMPROVEMENT, trained


def test_colour_distance_measures_palettes() -> None:
    rng = np.random.default_rng(0)
    references = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert colour_distance(references, references) == 0.0
    darker = (references * 0.8).astype(np.uint8)
    much_darker = (references * 0.5).astype(np.uint8)
    assert 0 < colour_distance(darker, references) < colour_distance(much_darker, references)


@pytest.mark.slow
def test_a_complete_run_folder(trained: TrainingSummary) -> None:
    names = {path.name for path in trained.folder.iterdir()}
    assert {"pytorch_lora_weights.safetensors", "lora_kohya.safetensors", "loss_curve.png", "README.md"} <= names
    assert [grid.name for grid in trained.validation_grids] == ["step-000150.png", "step-000300.png"]
    assert all(grid.is_file() for grid in trained.validation_grids)
    assert not list(trained.folder.parent.glob(".*.partial"))
    assert latest_run("solane", trained.folder.parent.parent) == trained.folder
    with safe_open(str(trained.diffusers_file), "pt") as weights:
        metadata = weights.metadata()
    assert metadata["trigger_word"] == "slnstyle" and metadata["rank"] == "8" and metadata["steps"] == "300"
    assert metadata["dataset_hash"] == load_training_set(SAMPLE_CHARTER_DIR / "references", 64).hash
    assert {"base_model_hash", "charter_hash", "versions"} <= set(metadata)


def test_validation_and_evaluation_pictures_take_the_steps_asked_else_the_models_own() -> None:
    pipeline = StableDiffusionPipeline.from_pretrained(ensure_demo_model(), safety_checker=None)
    assert sampling_arguments(pipeline, "the sea")["num_inference_steps"] == 20  # a UNet's, at its guidance
    assert sampling_arguments(pipeline, "the sea", 2)["num_inference_steps"] == 2
    with pytest.raises(ValueError, match="sample_steps"):
        TrainingConfig(sample_steps=0)


def test_a_run_whose_loss_stops_being_a_number_stops_there_and_exports_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learning rate too high (or half precision overflowing) makes the loss NaN: every weight
    after it is noise, and a LoRA of them would render noise into a whole campaign."""
    from visuels.training.trainer import DivergedError, Learner

    steps = iter([0.9, 0.8, float("nan")])
    monkeypatch.setattr(Learner, "step", lambda self, objective: next(steps))
    config = TrainingConfig(steps=6, resolution=64, checkpoint_every=2, sample_steps=2, learning_rate=0.5)
    with pytest.raises(DivergedError, match=r"the loss became nan at step 3: .* lower learning rate than 0\.5"):
        run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=tmp_path)
    assert latest_run("solane", tmp_path) is None  # nothing exported; the step-2 checkpoint stays to resume from
    [partial] = list((tmp_path / "solane").glob(".*.partial"))
    assert [path.name for path in (partial / "checkpoints").iterdir()] == ["step-000002.pt"]


def test_a_resume_keeps_the_options_its_run_started_with_and_passes_over_a_damaged_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`--resume` with another `--rank` ended in a traceback of 200 "size mismatch" lines; a
    checkpoint cut short (a copy, a full disk elsewhere), in PyTorch's "failed finding central
    directory". Options that shape the run are checked against those it started with, before the
    model loads; a damaged checkpoint is passed over for the one before it, and said."""
    from visuels.training.run import RUN_OPTIONS_FILE, TrainingRunError
    from visuels.training.trainer import CheckpointError, DivergedError, Learner

    losses = iter([0.9, 0.8, 0.7, 0.6, float("nan")])
    config = TrainingConfig(steps=6, resolution=64, checkpoint_every=2, sample_steps=1)
    with monkeypatch.context() as diverging:  # stopped after step 4's checkpoint, as by a kill
        diverging.setattr(Learner, "step", lambda self, objective: next(losses))
        with pytest.raises(DivergedError):
            run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=tmp_path)
    [partial] = list((tmp_path / "solane").glob(".*.partial"))
    run = partial.name[1 : -len(".partial")]
    with pytest.raises(TrainingRunError, match=r"--rank: this run started with 8, not 4: resume it with the options"):
        check_training_inputs(SAMPLE_CHARTER_DIR, DemoModelRef(), config.model_copy(update={"rank": 4}), run, tmp_path)
    started_with = (partial / RUN_OPTIONS_FILE).read_bytes()
    (partial / RUN_OPTIONS_FILE).unlink()  # a run from before runs recorded their options: its checkpoints say it
    with pytest.raises(CheckpointError, match=r"step-000004\.pt: --resume: .* does not fit this one"):
        run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config.model_copy(update={"rank": 4}), run, tmp_path)
    (partial / RUN_OPTIONS_FILE).write_bytes(started_with)
    newest = partial / "checkpoints" / "step-000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    with caplog.at_level("WARNING", logger="visuels.training.trainer"):
        summary = run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, run, tmp_path)
    assert (
        "step-000004.pt: passed over (it cannot be read" in caplog.text
        and "resuming from step-000002.pt" in caplog.text
    )
    assert summary.steps == 6 and summary.folder.name == run


def test_one_process_at_a_time_trains_a_run(tmp_path: Path) -> None:
    """Two resumes of one run at once (a form sent twice) trained in one folder: the first renamed
    it, the second failed at its end with a traceback and left a folder that could not be resumed.
    The second is now refused in one line, before it trains; a lock whose process is gone is taken over."""
    import subprocess
    import sys

    from visuels._internal.liveness import machine_id
    from visuels.training.run_lock import RunLockedError, training_alone

    charter_folder = tmp_path / "solane"
    partial, final = charter_folder / ".20990101-000000.partial", charter_folder / "20990101-000000"
    partial.mkdir(parents=True)
    config = TrainingConfig(steps=2, resolution=64, checkpoint_every=1, sample_steps=1)
    held = r"\.20990101-000000\.lock: --resume: this run is being trained by another"
    # Held, as by a run training now:
    with training_alone(partial, final, "--resume"), pytest.raises(RunLockedError, match=held):
        run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, "20990101-000000", tmp_path)
    assert not (charter_folder / ".20990101-000000.lock").exists() and not final.exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (charter_folder / ".20990101-000000.lock").write_text(f"{machine_id()} {gone.stdout.strip()}\n")  # killed
    summary = run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, "20990101-000000", tmp_path)
    assert summary.folder == final and not list(charter_folder.glob(".*"))  # no lock, no folder left behind


def test_new_runs_started_in_the_same_second_each_train_under_a_name_of_their_own(tmp_path: Path) -> None:
    from visuels.training.run_lock import new_run_alone

    folder = tmp_path / "solane"
    with new_run_alone(folder, "20990101-000000") as (partial, final):
        assert final == folder / "20990101-000000" and partial == folder / ".20990101-000000.partial"
        partial.mkdir()
        with new_run_alone(folder, "20990101-000000") as (second, second_final):  # launched with it
            assert second_final.name == "20990101-000000-2"
            second.mkdir()
            second.rename(second_final)
            (second_final / WEIGHTS_FILE).write_bytes(b"")
        partial.rename(final)
        (final / WEIGHTS_FILE).write_bytes(b"")
    with new_run_alone(folder, "20990101-000000") as (_, third):
        assert third.name == "20990101-000000-3"
    (folder / "20990101-000001").mkdir()
    (folder / "20990101-000001" / WEIGHTS_FILE).write_bytes(b"")
    assert [run.name for run in sorted(folder.glob("2*"))] == [
        "20990101-000000",
        "20990101-000000-2",
        "20990101-000001",
    ]
    assert latest_run("solane", tmp_path) == folder / "20990101-000001" and not list(folder.glob(".*.lock"))


def picture(lora_file: Path | None) -> np.ndarray:
    pipeline = StableDiffusionPipeline.from_pretrained(ensure_demo_model(), safety_checker=None)
    pipeline.set_progress_bar_config(disable=True)
    if lora_file is not None:
        pipeline.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name)
    generator = torch.Generator().manual_seed(1)
    prompt = "slnstyle flat illustration, the sea"
    return pipeline(prompt, height=64, width=64, num_inference_steps=8, generator=generator, output_type="np").images[0]


def test_the_same_weights_and_metadata_give_the_same_lora_file(tmp_path: Path) -> None:
    """safetensors wrote its header's metadata in a new order at every call, and peft lists the
    target modules in the process's hash order: two identical trainings gave two different files,
    so two LoRA hashes, and every picture of a campaign was rendered again."""
    from peft import LoraConfig
    from visuels.training import export

    tensors = {f"down_blocks.{index}.to_q.lora_A.weight": torch.full((2, 3), float(index)) for index in range(6)}
    tensors |= {"mid.alpha": torch.tensor(4.0), "up.lora_B.weight": torch.ones(3, 2, dtype=torch.bfloat16)}
    metadata = {f"key_{index}": f"value {index} é" for index in range(12)}
    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    export._save_safetensors(first, tensors, metadata)
    export._save_safetensors(second, dict(reversed(tensors.items())), dict(reversed(metadata.items())))
    assert first.read_bytes() == second.read_bytes()
    loaded = load_file(str(first))
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[key], tensors[key]) for key in tensors)
    with safe_open(str(first), "pt") as weights:
        assert weights.metadata() == metadata

    targets = [f"blocks.{index}.attn.to_{part}" for index in range(8) for part in "qkv"]
    module = torch.nn.Module()
    module.peft_config = {"default": LoraConfig(r=4, target_modules=targets)}
    assert isinstance(module.peft_config["default"].target_modules, set)  # peft keeps them as a set
    assert export._adapter_config(module)["target_modules"] == sorted(targets)


@pytest.mark.slow
def test_diffusers_and_kohya_files_load_and_agree(trained: TrainingSummary) -> None:
    plain = picture(None)
    diffusers_output = picture(trained.diffusers_file)
    kohya_output = picture(trained.community_file)  # through diffusers' conversion of kohya files
    assert np.abs(diffusers_output - plain).max() > 1e-3  # the LoRA does something...
    np.testing.assert_allclose(kohya_output, diffusers_output, atol=1e-5)  # ...the same in both files


@pytest.mark.slow
def test_campaigns_find_the_latest_lora(
    trained: TrainingSummary, make_campaign: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISUELS_LORA_DIR", str(trained.folder.parent.parent))
    campaign = load_campaign(make_campaign(lora={"path": "charter:latest", "scale": 0.8}))
    assert campaign.lora_path == trained.diffusers_file.resolve()


def test_charter_latest_without_a_trained_lora_is_a_clear_error(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visuels.errors import CampaignError

    monkeypatch.setenv("VISUELS_LORA_DIR", str(tmp_path / "nothing"))
    with pytest.raises(CampaignError, match="no trained LoRA for charter 'solane'"):
        load_campaign(make_campaign(lora={"path": "charter:latest"}))


@pytest.mark.slow
def test_resume_gives_the_same_weights_and_grids_as_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed while it drew a checkpoint's validation grid kept that checkpoint without its
    grid, and a resume never drew it; the summary listed only the grids drawn after the resume.
    A checkpoint a killed run was saving stayed in the exported folder, half written."""
    import subprocess
    import sys

    from visuels._internal.liveness import machine_id
    from visuels.training import trainer

    config = TrainingConfig(
        steps=8,
        resolution=64,
        rank=4,
        learning_rate=1e-3,
        batch_size=2,
        checkpoint_every=2,
        train_text_encoder=True,
        sample_steps=2,
    )
    straight = run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=tmp_path / "straight")
    drawn = trainer._validation_grid

    def power_cut(pipeline: object, prompts: list[str], config: TrainingConfig, target: Path) -> None:
        if target.name == "step-000004.png":  # after the step-2 checkpoint, at the step-4 one
            raise KeyboardInterrupt
        drawn(pipeline, prompts, config, target)

    monkeypatch.setattr(trainer, "_validation_grid", power_cut)
    with pytest.raises(KeyboardInterrupt):
        run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=tmp_path / "resumed")
    monkeypatch.undo()
    [partial] = list((tmp_path / "resumed" / "solane").glob(".*.partial"))
    assert latest_run("solane", tmp_path / "resumed") is None  # an interrupted run never looks complete
    checkpoints = {path.stem for path in (partial / "checkpoints").glob("*.pt")}
    assert checkpoints == {"step-000002"} <= {path.stem for path in (partial / "validation").glob("*.png")}
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    half = partial / "checkpoints" / f".step-000004.pt.{machine_id()}.{dead.stdout.strip()}.0123abcd.tmp"
    half.write_bytes(b"half a checkpoint")  # a run killed while it saved one (an SDXL LoRA's: hundreds of MB)
    resumed = run_training(
        SAMPLE_CHARTER_DIR, DemoModelRef(), config, resume=partial.name[1:-8], root=tmp_path / "resumed"
    )
    first, second = load_file(str(straight.diffusers_file)), load_file(str(resumed.diffusers_file))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    # The same weights in the same file: one LoRA hash, so the campaign's pictures stay rendered.
    assert resumed.diffusers_file.read_bytes() == straight.diffusers_file.read_bytes()
    assert resumed.community_file.read_bytes() == straight.community_file.read_bytes()
    assert [grid.name for grid in resumed.validation_grids] == [f"step-{step:06d}.png" for step in (2, 4, 6, 8)]
    assert not [path for path in resumed.folder.rglob("*") if path.name.endswith(".tmp")]
    for grid, twin in zip(resumed.validation_grids, straight.validation_grids, strict=True):
        assert grid.parent == resumed.folder / "validation" and grid.read_bytes() == twin.read_bytes()


@pytest.mark.slow
def test_a_text_encoder_lora_is_exported_and_loads_in_both_formats_at_its_alpha(tmp_path: Path) -> None:
    # alpha != rank: a file that loses alpha renders at rank/alpha (here 1/4) of the trained strength.
    config = TrainingConfig(
        steps=20,
        resolution=64,
        rank=4,
        alpha=16,
        learning_rate=3e-3,
        batch_size=2,
        checkpoint_every=20,
        train_text_encoder=True,
        sample_steps=2,
    )
    summary = run_training(SAMPLE_CHARTER_DIR, DemoModelRef(), config, root=tmp_path)
    with safe_open(str(summary.diffusers_file), "pt") as weights:
        diffusers_keys = set(weights.keys())
    with safe_open(str(summary.community_file), "pt") as weights:
        kohya_keys = set(weights.keys())
    assert any(key.startswith("text_encoder.") for key in diffusers_keys)
    assert any(key.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj.") for key in kohya_keys)
    np.testing.assert_allclose(picture(summary.community_file), picture(summary.diffusers_file), atol=1e-5)


def test_a_short_runs_loss_is_compared_between_its_halves() -> None:
    """A run of 50 steps or fewer compared its whole mean with itself ("0.0% lower") whatever it learnt."""
    from visuels.training.run import loss_at_ends

    assert loss_at_ends([0.5, 0.4, 0.2, 0.1]) == pytest.approx((0.45, 0.15))
    assert loss_at_ends([0.3]) == (0.3, 0.3)
    long = [1.0] * 50 + [0.5] * 100 + [0.25] * 50
    assert loss_at_ends(long) == (1.0, 0.25)


@pytest.mark.parametrize(("first", "last", "said"), [(0.4, 0.3, "(25.0% lower)"), (0.2, 0.3, "(50.0% higher)")])
def test_the_end_of_a_run_says_whether_its_loss_fell_or_rose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: float, last: float, said: str
) -> None:
    """A short run's loss may end higher: "(-50.0% lower)" said it backwards."""
    from visuels.training.run import TrainingSummary

    def trained(*arguments: object) -> TrainingSummary:
        folder = tmp_path / "solane" / "run"
        return TrainingSummary(
            run="run",
            folder=folder,
            diffusers_file=folder / "pytorch_lora_weights.safetensors",
            community_file=folder / "lora_kohya.safetensors",
            loss_curve=folder / "loss_curve.png",
            validation_grids=[],
            steps=2,
            first_loss=first,
            last_loss=last,
            loss_drop=(first - last) / first,
            colour_distance_without_lora=27.5,
            colour_distance_with_lora=27.0,
        )

    argv = ["train", str(SAMPLE_CHARTER_DIR), "--lora-dir", str(tmp_path), "--steps", "2", "--resolution", "64"]
    assert main(argv, train=trained) == 0
    assert said in capsys.readouterr().out
