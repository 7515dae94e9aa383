"""Load a diffusers pipeline for a model reference, once per process.

A worker keeps the loaded model between batches (and between flow runs in the same process);
asking for another model, device or dtype replaces it, so only one sits in memory.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import diffusers
import torch
from diffusers import DiffusionPipeline
from pydantic import BaseModel, ConfigDict

from pipelines.errors import ModelError
from pipelines.model_reference import DemoModelRef, DiffusersFolderRef, HubRef, ModelRef, SingleFileRef, model_folder

log = logging.getLogger(__name__)

LORA_ADAPTER = "charter"

_lock = threading.Lock()
_loaded: tuple[tuple, DiffusionPipeline] | None = None
_active_lora: LoraWeights | None = None


class LoraWeights(BaseModel):
    """A LoRA file (diffusers or kohya format) and the scale to apply it at."""

    model_config = ConfigDict(frozen=True)

    path: str
    scale: float


def _pipeline_class(folder: Path, source: str) -> type[DiffusionPipeline]:
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    class_name = index.get("_class_name", "")
    pipeline_class = getattr(diffusers, class_name, None)
    if pipeline_class is None:
        raise ModelError(source, "model", f"unsupported pipeline class '{class_name}' in {folder}")
    return pipeline_class


def _from_files(ref: ModelRef, dtype: torch.dtype, source: str) -> DiffusionPipeline:
    folder = model_folder(ref)
    if isinstance(ref, (DemoModelRef, DiffusersFolderRef)):
        assert folder is not None
        pipeline_class = _pipeline_class(folder, source)
        extra = (
            {"safety_checker": None}
            if "safety_checker" in json.loads((folder / "model_index.json").read_text())
            else {}
        )
        return pipeline_class.from_pretrained(folder, dtype=dtype, local_files_only=True, **extra)
    if isinstance(ref, SingleFileRef):
        assert folder is not None
        # Without a local config, from_single_file fetches one from the hub: never at run time.
        return _pipeline_class(folder, source).from_single_file(
            ref.path, config=str(folder), local_files_only=True, dtype=dtype
        )
    assert isinstance(ref, HubRef)
    return DiffusionPipeline.from_pretrained(ref.id, revision=ref.revision, dtype=dtype)


def _use_lora(pipeline: DiffusionPipeline, lora: LoraWeights | None) -> None:
    """Make ``lora`` (or none) the pipeline's only active LoRA."""
    global _active_lora
    if lora == _active_lora:
        return
    if _active_lora is not None:
        pipeline.unload_lora_weights()
        _active_lora = None
    if lora is not None:
        try:
            pipeline.load_lora_weights(lora.path, adapter_name=LORA_ADAPTER)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(lora.path, "lora", f"cannot load LoRA weights: {str(exc).splitlines()[0]}") from None
        pipeline.set_adapters([LORA_ADAPTER], adapter_weights=[lora.scale])
        _active_lora = lora


def load_pipeline(
    ref: ModelRef, device: torch.device, dtype: torch.dtype, lora: LoraWeights | None = None, source: str = "model"
) -> DiffusionPipeline:
    """The pipeline for ``ref`` on ``device`` with ``lora`` applied; loaded on first use, then reused."""
    global _loaded, _active_lora
    cache_key = (ref.model_dump_json(), str(device), str(dtype))
    with _lock:
        if _loaded is not None and _loaded[0] == cache_key:
            _use_lora(_loaded[1], lora)
            return _loaded[1]
        _loaded = None  # release the previous model before loading the next one
        _active_lora = None
        log.info("loading model %s on %s (%s)", ref.kind, device, dtype)
        try:
            pipeline = _from_files(ref, dtype, source)
        except ModelError:
            raise
        except (OSError, ValueError) as exc:
            raise ModelError(source, "model", f"cannot load model: {str(exc).splitlines()[0]}") from None
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        _use_lora(pipeline, lora)
        _loaded = (cache_key, pipeline)
        return pipeline
