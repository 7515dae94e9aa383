"""The public detector service: an upload page, an API answering signed results, a page on the
marks, and a form to report a wrong label (``visuels detector serve``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.detector.app import DetectorService, Limits, create_app

__all__ = ["DetectorService", "Limits", "create_app"]
__getattr__ = lazy_attributes(__name__, {"app": ["DetectorService", "Limits", "create_app"]})
