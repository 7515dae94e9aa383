"""The designers' studio: a local web app to review runs by looking, retouch outputs and finalize
edited files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.studio.app import Studio, create_app
    from visuels.studio.reviews import ReviewBackend

__all__ = ["ReviewBackend", "Studio", "create_app"]
__getattr__ = lazy_attributes(
    __name__,
    {
        "app": ["Studio", "create_app"],
        "reviews": ["ReviewBackend"],
    },
)
