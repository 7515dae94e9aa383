"""Where visuels finds its project folder and keeps its caches (the built demo model, file hashes)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$VISUELS_CACHE_DIR``, else ``$XDG_CACHE_HOME/visuels``, else ``~/.cache/visuels``."""
    explicit = os.environ.get("VISUELS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "visuels"


DEMO_VERSION = 3  # bump when the demo model (pipelines/demo_model.py) changes; 3: v-prediction


def demo_model_dir() -> Path:
    """Where the demo model is built once, in diffusers format."""
    return cache_dir() / f"demo-model-v{DEMO_VERSION}"


def project_dir() -> Path:
    """The project folder: ``$VISUELS_HOME`` (where `make serve` runs the flows), else this checkout."""
    explicit = os.environ.get("VISUELS_HOME")
    return Path(explicit) if explicit else Path(__file__).resolve().parents[1]


def campaigns_dir() -> Path:
    """The project's campaigns, which the run form offers and the nightly renders."""
    return project_dir() / "campaigns"
