"""LoRA training of a model's attention projections with peft: an SD1.5-architecture UNet, or the
transformer of FLUX.2 klein or Z-Image (``visuels.training.objectives`` says what a step computes).

VAE latents are computed once, and so are text embeddings unless the text encoder gets a LoRA
too (SD1.5 only); the loop then only runs the denoiser (and the text encoder when it trains).
Every random draw comes from one seeded generator whose state is saved with each checkpoint, so a
run resumed after an interruption ends with the same weights as one that never stopped (same
seed, same device).
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate import Accelerator
from diffusers import DiffusionPipeline
from diffusers.optimization import get_scheduler
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from visuels._internal.atomic import write_with
from visuels._internal.logs import quiet_third_party_logs
from visuels._internal.schema import blank_when_unset
from visuels.errors import InvalidValueError, Text, VisuelsError, first_line
from visuels.inputs.model_refs import DiffusersFolderRef
from visuels.models.generation import pipeline_family
from visuels.models.host import load_from_files
from visuels.training.dataset import DEFAULT_RESOLUTION, TrainingSet
from visuels.training.evaluation import sampling_arguments
from visuels.training.objectives import FlowObjective, UnetObjective, objective_for

log = logging.getLogger(__name__)

TEXT_ENCODER_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "out_proj"]
Objective = UnetObjective | FlowObjective


class DivergedError(VisuelsError):
    """The loss stopped being a number: the options (a learning rate too high), not the machine."""


class CheckpointError(VisuelsError):
    """No checkpoint of a run to resume can be used (damaged copies, or other options' shapes)."""


# What a checkpoint that cannot be used raises as it loads (cut short, not a checkpoint, holding
# more than tensors and plain values) or as it is put back (another rank, another model).
UNREADABLE_CHECKPOINT = (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError)
UNFITTING_CHECKPOINT = (RuntimeError, ValueError, KeyError, TypeError)


class TrainingConfig(BaseModel):
    """Training options (all shape the result, so all go into the LoRA's metadata); numbers finite
    (an alpha of ``inf`` trained a LoRA of NaNs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rank: int = Field(default=8, ge=1, le=256)
    alpha: float | None = Field(
        default=None, gt=0, description="LoRA alpha, > 0. Empty: the rank.", json_schema_extra=blank_when_unset
    )
    learning_rate: float = Field(default=1e-4, gt=0, le=1)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    steps: int = Field(default=500, ge=1, le=100_000)
    batch_size: int = Field(default=1, ge=1, le=64)
    gradient_accumulation: int = Field(default=1, ge=1, le=64)
    gradient_checkpointing: bool = False
    train_text_encoder: bool = Field(default=False, description="Also put a LoRA on the text encoder's attention.")
    min_snr_gamma: float | None = Field(
        default=5.0,
        gt=0,
        description="Min-SNR loss weighting gamma, > 0; None: off.",
        json_schema_extra=blank_when_unset,
    )
    seed: int = Field(default=0, ge=0)
    resolution: int = Field(default=DEFAULT_RESOLUTION, ge=64, le=2048)
    checkpoint_every: int = Field(default=100, ge=1)
    validation_seeds: list[int] = Field(default_factory=lambda: [1, 2])
    sample_steps: int | None = Field(
        default=None,
        ge=1,
        le=200,
        description="Steps of the validation grids' and the colour evaluation's pictures; empty: the model's own.",
        json_schema_extra=blank_when_unset,
    )

    @field_validator("resolution")
    @classmethod
    def _resolution_on_the_latent_grid(cls, value: int) -> int:
        if value % 64:
            raise InvalidValueError("resolution must be a multiple of 64")
        return value

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else float(self.rank)


@dataclass
class TrainingResult:
    losses: list[float]
    steps: int
    validation_grids: list[Path] = field(default_factory=list)


def _lora_config(config: TrainingConfig, target_modules: list[str]) -> LoraConfig:
    return LoraConfig(
        r=config.rank, lora_alpha=config.lora_alpha, init_lora_weights="gaussian", target_modules=target_modules
    )


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step-*.pt"))


def _resume(learner: Learner, run_dir: Path) -> tuple[list[float], int]:
    """Back at the newest checkpoint of ``run_dir`` that can be used (the losses so far and the
    step), or at the start when it has none. One that cannot (a damaged copy) is passed over for
    the one before, and said; none usable: ``CheckpointError``."""
    existing = _checkpoints(run_dir)
    passed_over: list[tuple[Path, Text]] = []
    for checkpoint in reversed(existing):
        try:
            # Tensors and plain values only: a resume file swapped in cannot run code as it loads.
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except UNREADABLE_CHECKPOINT as exc:
            passed_over.append((checkpoint, Text("it cannot be read: {reason}", reason=first_line(exc))))
            continue
        try:
            losses, start = learner.resume(state)
        except UNFITTING_CHECKPOINT:
            why = Text("its LoRA does not fit this one: other options (--rank, --base, --train-text-encoder)")
            passed_over.append((checkpoint, why))
            continue
        for unused, why in passed_over:
            log.warning("%s: passed over (%s), resuming from %s", unused.name, why, checkpoint.name)
        log.info("resuming %s from step %d", run_dir.name, start)
        return losses, start
    if existing:
        newest, why = passed_over[0]
        raise CheckpointError(
            newest, "--resume", "cannot be used, nor can an earlier checkpoint of this run: {why}", why=why
        )
    return [], 0


def _validation_grid(pipeline: DiffusionPipeline, prompts: list[str], config: TrainingConfig, target: Path) -> None:
    """Pictures for fixed prompts (rows) and seeds (columns), saved as one grid."""
    tiles, seeds, resolution = [], config.validation_seeds, config.resolution
    for prompt in prompts:
        for seed in seeds:
            generator = torch.Generator().manual_seed(seed)
            arguments = sampling_arguments(pipeline, prompt, config.sample_steps)
            tiles.append(pipeline(height=resolution, width=resolution, generator=generator, **arguments).images[0])
    grid = Image.new("RGB", (resolution * len(seeds), resolution * len(prompts)))
    for index, tile in enumerate(tiles):
        grid.paste(tile, ((index % len(seeds)) * resolution, (index // len(seeds)) * resolution))
    write_with(target, lambda temporary: grid.save(temporary, format="PNG"))


def _frozen_pipeline(base_folder: Path, device: torch.device) -> DiffusionPipeline:
    """The base model, read as the renderer reads it (safetensors only, no safety checker, nothing
    fetched), every weight frozen: only the LoRAs added later learn."""
    pipeline = load_from_files(DiffusersFolderRef(path=str(base_folder)), torch.float32, "base")
    pipeline.set_progress_bar_config(disable=True)
    pipeline.to(device)
    for name in ("unet", "transformer", "vae", "text_encoder"):
        module = getattr(pipeline, name, None)
        if module is not None:
            module.requires_grad_(False)
    return pipeline


@dataclass
class Learner:
    """What a run updates, and how: the denoiser's LoRA (and the text encoder's, when it trains),
    their optimizer and learning-rate schedule, and the generator every random draw comes from."""

    accelerator: Accelerator
    config: TrainingConfig
    denoiser: torch.nn.Module
    text_encoder: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator

    @classmethod
    def start(
        cls, pipeline: DiffusionPipeline, objective: Objective, config: TrainingConfig, accelerator: Accelerator
    ) -> Learner:
        """LoRAs added (their initial weights drawn from the run's seed) and prepared; the
        objective and the pipeline then run the prepared modules."""
        denoiser, text_encoder = objective.module, pipeline.text_encoder
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            denoiser.add_adapter(_lora_config(config, objective.target_modules))
            if config.train_text_encoder:
                text_encoder.add_adapter(_lora_config(config, TEXT_ENCODER_TARGET_MODULES))
        if config.gradient_checkpointing:
            denoiser.enable_gradient_checkpointing()
        learning = [denoiser, text_encoder] if config.train_text_encoder else [denoiser]
        parameters = [parameter for module in learning for parameter in module.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
        schedule = get_scheduler(
            config.lr_schedule, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=config.steps
        )
        denoiser, text_encoder, optimizer = accelerator.prepare(denoiser, text_encoder, optimizer)
        objective.module = denoiser
        if config.train_text_encoder:
            objective.train_text_encoder = True
            pipeline.text_encoder = text_encoder
        generator = torch.Generator().manual_seed(config.seed)
        return cls(accelerator, config, denoiser, text_encoder, optimizer, schedule, generator)

    @property
    def trained(self) -> list[torch.nn.Module]:
        return [self.denoiser, self.text_encoder] if self.config.train_text_encoder else [self.denoiser]

    def set_training(self, training: bool) -> None:
        for module in self.trained:
            module.train(training)

    def step(self, objective: Objective) -> float:
        """One optimizer step over ``gradient_accumulation`` batches; their summed loss."""
        config, step_loss = self.config, 0.0
        for _ in range(config.gradient_accumulation):
            index = torch.randint(len(objective), (config.batch_size,), generator=self.generator)
            loss = objective.losses(index, self.generator, self.accelerator.autocast).mean()
            loss = loss / config.gradient_accumulation
            self.accelerator.backward(loss)
            step_loss += float(loss.detach())
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss

    def state(self, done: int, losses: list[float]) -> dict:
        """What a checkpoint keeps, tensors and plain values only."""
        unwrap = self.accelerator.unwrap_model
        return {
            "step": done,
            "lora": get_peft_model_state_dict(unwrap(self.denoiser)),
            "text_encoder_lora": (
                get_peft_model_state_dict(unwrap(self.text_encoder)) if self.config.train_text_encoder else None
            ),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "losses": losses,
        }

    def resume(self, state: dict) -> tuple[list[float], int]:
        """Back where a checkpoint's ``state`` was taken; its losses so far and its step."""
        set_peft_model_state_dict(self.accelerator.unwrap_model(self.denoiser), state["lora"])
        if self.config.train_text_encoder:
            set_peft_model_state_dict(self.accelerator.unwrap_model(self.text_encoder), state["text_encoder_lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        return state["losses"], state["step"]


def train_lora(
    base_folder: Path,
    dataset: TrainingSet,
    config: TrainingConfig,
    run_dir: Path,
    validation_prompts: list[str],
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[DiffusionPipeline, TrainingResult]:
    """Train (or resume, when ``run_dir`` holds checkpoints) and return the pipeline with its LoRA."""
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="bf16" if cuda else "no", cpu=not cuda, gradient_accumulation_steps=1)
    quiet_third_party_logs()  # no loading bars
    pipeline = _frozen_pipeline(base_folder, accelerator.device)
    family = pipeline_family(pipeline)
    # Cached once: the frozen VAE never runs in the loop, nor does a frozen text encoder.
    pixels = torch.from_numpy(dataset.pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(accelerator.device)
    objective = objective_for(family, pipeline, pixels, dataset.captions, config.min_snr_gamma)
    learner = Learner.start(pipeline, objective, config, accelerator)
    losses, start = _resume(learner, run_dir)
    learner.set_training(True)
    for step in range(start, config.steps):
        step_loss = learner.step(objective)
        if not math.isfinite(step_loss):  # every weight from here on is noise: stop before it is saved
            raise DivergedError(
                run_dir,
                "--learning-rate",
                "the loss became {loss} at step {step}: training diverged; start again with a lower learning"
                " rate than {rate}",
                loss=step_loss,
                step=step + 1,
                rate=config.learning_rate,
            )
        losses.append(step_loss)
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            state = learner.state(done, losses)
            learner.set_training(False)
            # The grid before its checkpoint: a run killed between the two resumes from the checkpoint
            # before and draws this grid again, the same pixels; never a checkpoint without its grid.
            _validation_grid(pipeline, validation_prompts, config, run_dir / "validation" / f"step-{done:06d}.png")
            learner.set_training(True)
            target_file = run_dir / "checkpoints" / f"step-{done:06d}.pt"
            write_with(target_file, lambda temporary, state=state: torch.save(state, temporary))
        if on_step is not None:
            on_step(done, step_loss)
    learner.set_training(False)
    unwrap = accelerator.unwrap_model
    setattr(pipeline, "unet" if family.denoiser == "unet" else "transformer", unwrap(learner.denoiser))
    pipeline.text_encoder = unwrap(learner.text_encoder)
    grids = sorted((run_dir / "validation").glob("step-*.png"))  # those drawn before a resume too
    return pipeline, TrainingResult(losses=losses, steps=config.steps, validation_grids=grids)
