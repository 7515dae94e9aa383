"""Where trained LoRAs live: ``lora/<charter>/<run>/``, a run being complete once renamed there."""

from __future__ import annotations

from pathlib import Path

from visuels.config import settings

WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
PARTIAL_SUFFIX = ".partial"  # a run's folder while it trains: ``.<run>.partial``, renamed ``<run>`` at its end


def lora_root() -> Path:
    """``$VISUELS_LORA_DIR``, else ``./lora``."""
    return settings().lora_dir


def latest_run(charter_slug: str, root: Path | None = None) -> Path | None:
    """The newest complete run folder of a charter (run names sort by time; partial runs start with a dot)."""
    folder = (root or lora_root()) / charter_slug
    runs = sorted(path for path in folder.glob("[!.]*") if (path / WEIGHTS_FILE).is_file())
    return runs[-1] if runs else None


def complete_runs(root: Path) -> list[Path]:
    """Every complete run folder under ``root``, of every charter, oldest first (by run name)."""
    runs = [path.parent for path in root.glob(f"[!.]*/[!.]*/{WEIGHTS_FILE}")] if root.is_dir() else []
    return sorted(runs, key=lambda run: (run.name, run.parent.name))


def interrupted_runs(root: Path) -> list[str]:
    """The names of the runs under ``root`` that did not end (``.<run>.partial``), oldest first:
    ``visuels train --resume RUN`` continues one."""
    folders = [path for path in root.glob(f"[!.]*/.*{PARTIAL_SUFFIX}") if path.is_dir()] if root.is_dir() else []
    return sorted(run for folder in folders if (run := run_of_partial(folder.name)))


def run_of_partial(name: str) -> str | None:
    """The run a folder named ``name`` trains, when it is a run's folder while it trains
    (``.<run>.partial``); else None."""
    if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
        return name[1 : -len(PARTIAL_SUFFIX)]
    return None
