"""The train-charter-lora flow: a LoRA from a charter's reference images, with progress and artifacts."""

from __future__ import annotations

import base64
import io
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

from PIL import Image
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import deployment
from prefect.states import Failed, State
from visuels._internal.i18n import user_language, words
from visuels._internal.logs import quiet_third_party_logs
from visuels.errors import VisuelsError
from visuels.flows.failures import log_known_failures_in_one_line
from visuels.flows.forms import form_group, form_parameter
from visuels.flows.names import GPU_LIMIT, SLOTS_PER_GPU
from visuels.flows.progress import RunProgress
from visuels.inputs.model_refs import parse_model_option
from visuels.training.run import TrainingSummary, run_training
from visuels.training.trainer import TrainingConfig

PROGRESS_UPDATES = 50  # artifact updates per run, whatever the number of steps
LOG_LINES = 10  # progress lines in the run's log (and `visuels train`'s terminal) per run
DEFAULT_TRAINING = TrainingConfig()  # frozen: safe as a shared default


def _inline_png(path: Path, width: int = 480) -> str:
    """A small copy of a picture as a data URI, so the artifact shows it without a file server."""
    with Image.open(path) as image:
        copy = image.convert("RGB")
    copy.thumbnail((width, width))
    buffer = io.BytesIO()
    copy.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@task(name="train-lora", cache_policy=NO_CACHE)
def train_task(
    charter: str, base: str, config: TrainingConfig, resume: str | None, lora_dir: str | None
) -> TrainingSummary | State:
    t = words(user_language())
    progress = RunProgress(t("LoRA training"), config.steps, t("steps"), t)
    every = max(1, config.steps // PROGRESS_UPDATES)
    said_every = max(1, config.steps // LOG_LINES)
    logger = get_run_logger()

    def on_step(step: int, loss: float) -> None:
        if step % every == 0 or step == config.steps:
            progress.update(step)
        if step % said_every == 0 or step == config.steps:
            logger.info(t("step {step} of {total}, loss {loss:.4f}", step=step, total=config.steps, loss=loss))

    root = Path(lora_dir) if lora_dir else None
    # A deployed run takes a whole GPU's slots of the pool's limit: rendering and training share
    # the GPUs, each waiting for the other (the CLI's temporary server has no such limit).
    limit = concurrency(GPU_LIMIT, occupy=SLOTS_PER_GPU, strict=False) if deployment.id else nullcontext()
    try:
        with limit:
            return run_training(Path(charter), parse_model_option(base), config, resume, root, on_step)
    except VisuelsError as exc:  # bad input, a diverged loss: its one line, no traceback in the log
        return Failed(message=str(exc), data=exc)


@flow(name="train-charter-lora")
def train_charter_lora(
    charter: Annotated[str, form_parameter("Charter")],
    base: Annotated[str, form_parameter("Base model")] = "demo",
    config: Annotated[TrainingConfig, *form_group("Training options", DEFAULT_TRAINING)] = DEFAULT_TRAINING,
    resume: Annotated[str, form_parameter("Resume run")] = "",
    lora_dir: Annotated[str, form_parameter("LoRA folder")] = "",
) -> TrainingSummary | State:
    """Train the charter's style LoRA on its reference images.

    Args:
        charter: Charter folder (or its charter.yaml).
        base: Base model: demo, or a diffusers folder.
        config: Training options (rank, steps, learning rate, resolution...).
        resume: Name of an interrupted run to continue from its last checkpoint. Empty: a new run.
        lora_dir: Root of the LoRA folders. Empty: ./lora.
    """
    quiet_third_party_logs()
    log_known_failures_in_one_line()
    trained = train_task(charter, base, config, resume or None, lora_dir or None, return_state=True)
    if trained.is_failed():  # the run ends failed with the input error's one line
        return Failed(message=trained.message, data=trained.result(raise_on_failure=False))
    summary = trained.result()
    grids = "\n".join(f"![{grid.name}]({_inline_png(grid)})" for grid in summary.validation_grids[-2:])
    create_markdown_artifact(
        key="lora-training",
        markdown=(
            f"# LoRA {summary.run}\n\n{summary.steps} steps; loss {summary.first_loss:.4f} -> {summary.last_loss:.4f}"
            f" ({summary.loss_drop:.1%} lower). Colour distance to the references (CIELAB):"
            f" {summary.colour_distance_without_lora:.1f} without the LoRA, {summary.colour_distance_with_lora:.1f}"
            f" with it. Weights: `{summary.diffusers_file}`\n\n"
            f"![loss curve]({_inline_png(summary.loss_curve, 800)})\n\n## Validation\n\n{grids}\n"
        ),
    )
    return summary
