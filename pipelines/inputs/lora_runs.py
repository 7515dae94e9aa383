"""Where trained LoRAs live: ``lora/<charter>/<run>/``, a run being complete once renamed there."""

from __future__ import annotations

from pathlib import Path

from visuels.config import settings

WEIGHTS_FILE = "pytorch_lora_weights.safetensors"


def lora_root() -> Path:
    """``$VISUELS_LORA_DIR``, else ``./lora``."""
    return settings().lora_dir


def latest_run(charter_slug: str, root: Path | None = None) -> Path | None:
    """The newest complete run folder of a charter (run names sort by time; partial runs start with a dot)."""
    folder = (root or lora_root()) / charter_slug
    runs = sorted(path for path in folder.glob("[!.]*") if (path / WEIGHTS_FILE).is_file())
    return runs[-1] if runs else None
