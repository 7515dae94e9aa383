"""One exception type per domain, each naming the file and the field at fault.

The CLI turns any :class:`VisuelsError` into a one-line message and exit code 2.
"""

from __future__ import annotations

from pathlib import Path


class VisuelsError(Exception):
    """Bad input: carries the file and the field so the message can point at them."""

    def __init__(self, file: str | Path, field: str | None, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"

    def __reduce__(self) -> tuple:
        # Rebuilt from its parts when it crosses a process boundary (a CPU worker's error).
        return (type(self), (self.file, self.field, self.message))


class CharterError(VisuelsError):
    """A brand charter (charter.yaml and its assets) is invalid."""


class CommunesError(VisuelsError):
    """A communes CSV file is invalid."""


class CampaignError(VisuelsError):
    """A campaign file is invalid or names something that does not exist."""


class ModelError(VisuelsError):
    """A model reference cannot be resolved or loaded."""


class ExportError(VisuelsError):
    """An output cannot be written."""


class ReviewError(VisuelsError):
    """A review decision that cannot be applied (unknown file, missing comment...)."""
