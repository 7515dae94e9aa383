"""What one generation needs, as the model layer sees a job: its prompts, seed, size, steps,
guidance and scheduler, a photo to start from, a high-resolution pass. Planning's jobs carry
these fields (``visuels.planning.jobs.RenderJob``); the model layer reads them through
``GenerationJob`` and knows nothing else of campaigns."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict


class HiresPass(BaseModel):
    """Redraw a first pass at larger sizes, each an img2img pass from the one before (print formats)."""

    model_config = ConfigDict(frozen=True)

    sizes: tuple[tuple[int, int], ...]  # (width, height) of each pass, growing
    strength: float


class PhotoSource(BaseModel):
    """The commune photo a job renders from, how, and its credit (``visuels.inputs.photos``)."""

    model_config = ConfigDict(frozen=True)

    path: str  # where this machine reads it: not part of the key, its hash is
    sha256: str
    credit: str  # "Author (licence, date)", as metadata and the report show it
    strength: float | None  # img2img strength; None: the ControlNet alone
    controlnet_path: str | None  # not part of the key, its hash is
    controlnet_hash: str | None
    controlnet_scale: float | None
    canny_low: int
    canny_high: int

    def shaping(self) -> dict:
        return self.model_dump(mode="json", exclude={"path", "controlnet_path"})

    @property
    def mode(self) -> tuple:
        """What a batch's jobs must share to go through one pipeline call."""
        return (self.strength, self.controlnet_path, self.controlnet_scale)


class KeyVisual(BaseModel):
    """How a job's picture comes from its commune's key visual (a campaign in key_visual mode): the
    job generates the key visual (its generation fields are the key visual's), then declines it."""

    model_config = ConfigDict(frozen=True)

    format: str  # the format the key visual is generated for
    method: Literal["crop", "outpaint"]  # crop: post-processing crops it; outpaint: the model extends it
    width: int  # the declined picture, before post-processing: the key visual's size for a crop,
    height: int  # the format's aspect ratio at the model's native size for an outpaint
    master_job: str  # the key of the key visual format's job in the same language: its ledger parent


class GenerationJob(Protocol):
    """The fields of a job that generation reads."""

    @property
    def prompt(self) -> str: ...
    @property
    def negative_prompt(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def generation_width(self) -> int: ...
    @property
    def generation_height(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def guidance(self) -> float: ...
    @property
    def scheduler(self) -> str: ...
    @property
    def guidance_cutoff(self) -> float | None: ...
    @property
    def deep_cache(self) -> int | None: ...
    @property
    def first_block_cache(self) -> float | None: ...
    @property
    def noise_mark(self) -> str | None: ...  # the starting-noise mark's version; None: ordinary noise
    @property
    def generation_key(self) -> str: ...  # its first 64 bits: the starting noise's payload
    @property
    def photo(self) -> PhotoSource | None: ...
    @property
    def hires(self) -> HiresPass | None: ...
    @property
    def photo_mode(self) -> tuple | None: ...
    @property
    def key_visual(self) -> KeyVisual | None: ...
    @property
    def relative_path(self) -> str: ...  # to name it in messages


# What must be equal for jobs to share one model call (the model, LoRA and precision are the
# plan's). Prompts, negative prompts and seeds may differ: each job has its own generator.
BATCH_FIELDS = (
    "generation_width",
    "generation_height",
    "hires",
    "steps",
    "guidance",
    "scheduler",
    "guidance_cutoff",
    "deep_cache",
    "first_block_cache",
    "photo_mode",
)


def batch_signature(job: GenerationJob) -> tuple:
    return tuple(getattr(job, name) for name in BATCH_FIELDS)


def generation_identity(job: GenerationJob) -> tuple:
    """What tells two jobs of one batch signature apart for the model: the same identity, the same
    pixels (a picture repeated in several languages, a key visual's formats: generated once)."""
    return (job.prompt, job.negative_prompt, job.seed, job.photo)
