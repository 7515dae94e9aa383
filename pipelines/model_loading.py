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

from pipelines.errors import ModelError
from pipelines.model_reference import DemoModelRef, DiffusersFolderRef, HubRef, ModelRef, SingleFileRef, model_folder

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: tuple[tuple, DiffusionPipeline] | None = None


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


def load_pipeline(ref: ModelRef, device: torch.device, dtype: torch.dtype, source: str = "model") -> DiffusionPipeline:
    """The pipeline for ``ref`` on ``device``; loaded on first use, then reused."""
    global _loaded
    cache_key = (ref.model_dump_json(), str(device), str(dtype))
    with _lock:
        if _loaded is not None and _loaded[0] == cache_key:
            return _loaded[1]
        _loaded = None  # release the previous model before loading the next one
        log.info("loading model %s on %s (%s)", ref.kind, device, dtype)
        try:
            pipeline = _from_files(ref, dtype, source)
        except ModelError:
            raise
        except (OSError, ValueError) as exc:
            raise ModelError(source, "model", f"cannot load model: {str(exc).splitlines()[0]}") from None
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        _loaded = (cache_key, pipeline)
        return pipeline


def loaded_model_count() -> int:
    """How many models this process holds (0 or 1); lets tests check nothing was loaded."""
    return 0 if _loaded is None else 1
