"""A training run: from a charter folder to ``lora/<charter>/<run>/``, complete or not at all.

The run trains in ``lora/<charter>/.<run>.partial/`` (checkpoints, validation grids) and is
renamed to ``lora/<charter>/<run>/`` only when every output is written, so an interrupted run
never looks complete; ``--resume RUN`` continues it from its last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from visuels._internal.atomic import check_output_folder, remove_leftover_temporaries, write_text_atomic
from visuels._internal.json_text import read_json
from visuels.errors import ModelError, Text, VisuelsError, first_line
from visuels.inputs.charter import Charter, load_charter
from visuels.inputs.lora_runs import lora_root, run_of_partial
from visuels.inputs.model_refs import ModelRef, SingleFileRef
from visuels.models.families import family_named
from visuels.models.reference import ModelInfo, describe_named_model, model_folder
from visuels.training.dataset import TrainingSet, load_training_set
from visuels.training.evaluation import evaluate_colours
from visuels.training.export import (
    draw_loss_curve,
    export_comfyui,
    export_diffusers,
    export_kohya,
    metadata_for,
    write_model_card,
)
from visuels.training.objectives import TRAINABLE_FAMILIES
from visuels.training.run_lock import new_run_alone, run_folders, training_alone
from visuels.training.trainer import TrainingConfig, train_lora

LOSS_WINDOW = 50  # steps averaged at each end of a run, to say how far its loss fell
RUN_OPTIONS_FILE = "run-options.json"  # in the run's folder: the options it started with
# The options that shape a run's checkpoints and where it goes from them: a resume keeps them.
# Steps, checkpoints, validation steps and gradient checkpointing may change.
KEPT_ON_RESUME = (
    "rank",
    "lora_alpha",
    "learning_rate",
    "lr_schedule",
    "warmup_steps",
    "batch_size",
    "gradient_accumulation",
    "train_text_encoder",
    "min_snr_gamma",
    "seed",
    "resolution",
)


class TrainingRunError(VisuelsError):
    """A run cannot start or resume."""


class TrainingSummary(BaseModel):
    run: str
    folder: Path
    diffusers_file: Path
    # The same LoRA for the community's tools: kohya's layout (SD1.5), ComfyUI's (the 2026 families).
    community_file: Path
    loss_curve: Path
    validation_grids: list[Path]
    steps: int
    first_loss: float
    last_loss: float
    loss_drop: float
    colour_distance_without_lora: float
    colour_distance_with_lora: float


def check_training_inputs(
    charter_path: Path, base: ModelRef, config: TrainingConfig, resume: str | None, root: Path | None
) -> tuple[Charter, TrainingSet, ModelInfo, Path, Path, Path]:
    """Validate everything a run needs; return charter, dataset, base model, its folder, partial and final folders."""
    charter = load_charter(charter_path)
    dataset = load_training_set(charter.references, config.resolution)
    if isinstance(base, SingleFileRef):
        raise ModelError(str(base.path), "base", "training needs a diffusers folder (convert the checkpoint first)")
    base_info = describe_named_model(base, "base")  # said of the option, as a run model is
    base_folder = model_folder(base)
    name = str(base_folder) if base_folder is not None else base_info.description  # where its files are
    if base_info.family not in TRAINABLE_FAMILIES:
        raise ModelError(
            name,
            "base",
            "training is built for SD1.5, FLUX.1, FLUX.2 klein, Z-Image and Qwen-Image models, not {family}",
            family=family_named(base_info.family).label,
        )
    if base_info.longest_side is not None and config.resolution > base_info.longest_side:
        raise ModelError(
            name,
            "resolution",
            "this model's position tables reach {longest} pixels: train at a resolution of {longest} or less",
            longest=base_info.longest_side,
        )
    if config.train_text_encoder and base_info.family != "sd15":
        raise ModelError(name, "train_text_encoder", "only SD1.5 models train a LoRA on their text encoder")
    if base_folder is None:
        raise ModelError(name, "base", "training needs a local model (the demo model or a diffusers folder)")

    charter_folder = (root or lora_root()) / charter.spec.slug
    # Before the model is loaded: a folder the run cannot write in would fail it at its end.
    check_output_folder(charter_folder, "--lora-dir" if root else "VISUELS_LORA_DIR", Text("LoRA folder"))
    run = run_name(resume) if resume else datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    partial, final = run_folders(charter_folder, run)
    if resume and final.exists():
        raise TrainingRunError(final, "--resume", "this run is already complete")
    if resume and not partial.is_dir():
        raise TrainingRunError(charter_folder, "--resume", "no interrupted run '{run}' to resume", run=run)
    if resume:
        _check_resumed_as_started(partial / RUN_OPTIONS_FILE, run_options(config, base_info))
    return charter, dataset, base_info, base_folder, partial, final


def run_options(config: TrainingConfig, base_info: ModelInfo) -> dict:
    """What a run records when it starts, for a resume to be checked against (``KEPT_ON_RESUME``)."""
    return {"base": base_info.description, "base_hash": base_info.hash} | {
        name: getattr(config, name) for name in KEPT_ON_RESUME
    }


def _check_resumed_as_started(recorded: Path, given: dict) -> None:
    """Refuse a resume with other options than its run started with: its checkpoints have other
    shapes (another rank, another model), or it would go on as another run would (a learning
    rate, a seed). A run started before runs recorded their options is not checked."""
    try:
        started = read_json(recorded)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise TrainingRunError(
            recorded, "--resume", "cannot be read ({reason}): delete it to resume unchecked", reason=first_line(exc)
        ) from None
    if not isinstance(started, dict):
        raise TrainingRunError(recorded, "--resume", "not the options of a training run: delete it to resume unchecked")
    if started.get("base_hash", given["base_hash"]) != given["base_hash"]:
        raise TrainingRunError(
            recorded,
            "--base",
            "this run started from {started}, not {given}: resume it from the model it started from",
            started=started.get("base", "?"),
            given=given["base"],
        )
    for name in KEPT_ON_RESUME:
        if name in started and started[name] != given[name]:
            option = "--alpha" if name == "lora_alpha" else "--" + name.replace("_", "-")
            raise TrainingRunError(
                recorded,
                option,
                "this run started with {started}, not {given}: resume it with the options it started with",
                started=started[name],
                given=given[name],
            )


def run_name(resume: str) -> str:
    """The run ``--resume`` names: as `visuels train` said it (``20261207-102222``), or by the path of
    its folder, finished or not (``lora/solane/.20261207-102222.partial``)."""
    name = Path(resume.strip()).name
    if (partial := run_of_partial(name)) is not None:
        name = partial
    if not name or name in (".", ".."):
        raise TrainingRunError(resume, "--resume", "not a training run's name")
    return name


def loss_at_ends(losses: Sequence[float]) -> tuple[float, float]:
    """The mean loss of the first steps and of the last (50 each, or each half of a shorter run:
    windows that overlap would hide what it learnt)."""
    window = max(1, min(LOSS_WINDOW, len(losses) // 2))
    return sum(losses[:window]) / window, sum(losses[-window:]) / window


def run_training(
    charter_path: Path,
    base: ModelRef,
    config: TrainingConfig,
    resume: str | None = None,
    root: Path | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingSummary:
    """Train a LoRA on the charter's references; raise a VisuelsError on bad input."""
    charter, dataset, base_info, base_folder, partial, final = check_training_inputs(
        charter_path, base, config, resume, root
    )
    alone = training_alone(partial, final, "--resume") if resume else new_run_alone(final.parent, final.name)
    with alone as (partial, final):
        partial.mkdir(parents=True, exist_ok=True)
        remove_leftover_temporaries(partial)  # a checkpoint a killed run was writing: never exported with the LoRA
        if not (partial / RUN_OPTIONS_FILE).exists():  # a resumed run keeps what it started with
            write_text_atomic(partial / RUN_OPTIONS_FILE, json.dumps(run_options(config, base_info), indent=1))
        return _train_and_export(charter, dataset, base_info, base_folder, config, partial, final, on_step)


def _train_and_export(
    charter: Charter,
    dataset: TrainingSet,
    base_info: ModelInfo,
    base_folder: Path,
    config: TrainingConfig,
    partial: Path,
    final: Path,
    on_step: Callable[[int, float], None] | None,
) -> TrainingSummary:
    """Train in ``partial``, export the LoRA in each layout, and rename the folder ``final``."""
    style = charter.spec.style.prompt
    prompts = [f"{style}, the sea and a village", f"{style}, hills and vineyards"]
    pipeline, result = train_lora(base_folder, dataset, config, partial, prompts, on_step)
    colours = evaluate_colours(pipeline, dataset.captions, dataset.pixels, config.resolution, config.sample_steps)

    metadata = metadata_for(
        charter=charter.spec.name,
        charter_hash=charter.hash,
        trigger_word=charter.spec.style.trigger_word,
        base_model=base_info.description,
        base_model_hash=base_info.hash,
        dataset_hash=dataset.hash,
        images=len(dataset.files),
        steps=config.steps,
        rank=config.rank,
        alpha=config.lora_alpha,
        learning_rate=config.learning_rate,
        resolution=config.resolution,
        seed=config.seed,
        config=config.model_dump_json(),
        colour_distance_without_lora=round(colours.without_lora, 3),
        colour_distance_with_lora=round(colours.with_lora, 3),
    )
    diffusers_file = export_diffusers(pipeline, partial, metadata)
    if base_info.family == "sd15":
        community_file = export_kohya(pipeline, partial, config.lora_alpha, metadata)
    else:  # the 2026 families
        community_file = export_comfyui(pipeline, base_info.family, partial, config.lora_alpha, metadata)
    curve = draw_loss_curve(result.losses, partial / "loss_curve.png")
    write_model_card(partial, metadata, community_file.name)
    partial.rename(final)  # complete: only now does the run look like one
    moved = [final / grid.relative_to(partial) for grid in result.validation_grids]
    first_loss, last_loss = loss_at_ends(result.losses)
    return TrainingSummary(
        run=final.name,
        folder=final,
        diffusers_file=final / diffusers_file.name,
        community_file=final / community_file.name,
        loss_curve=final / curve.name,
        validation_grids=moved,
        steps=result.steps,
        first_loss=first_loss,
        last_loss=last_loss,
        loss_drop=(first_loss - last_loss) / first_loss if first_loss > 0 else 0.0,
        colour_distance_without_lora=colours.without_lora,
        colour_distance_with_lora=colours.with_lora,
    )
