"""One exception type per domain, each naming the file and the field at fault, and what it means.

The CLI turns any :class:`VisuelsError` into a one-line message and its exit code, which say
one thing each (README, "Exit codes"):

- 0: done, nothing to report;
- 1: a finding (``check``, ``verify``, ``finalize``, ``ledger verify``: a file is not as it should be);
- 2: bad input (a file, a field, an option): fix it and run again;
- 3: the environment failed (a full disk, the database unreachable, a worker lost, a GPU too
  small): nothing was wrong with the input, someone must look at the machine.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class VisuelsError(Exception):
    """Bad input: carries the file and the field so the message can point at them."""

    exit_code = EXIT_BAD_INPUT

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


class OperationalError(VisuelsError):
    """The environment failed (disk, database, a worker, the device), not the input: exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class CharterError(VisuelsError):
    """A brand charter (charter.yaml and its assets) is invalid."""


class CommunesError(VisuelsError):
    """A communes CSV file is invalid."""


class CampaignError(VisuelsError):
    """A campaign file is invalid or names something that does not exist."""


class ModelError(VisuelsError):
    """A model reference cannot be resolved or loaded."""


class ExportError(OperationalError):
    """An output cannot be written or recorded (a full disk, a CPU worker that died)."""


class WorkerLostError(OperationalError):
    """A process doing part of the work stopped (a render worker, a lost claim on its jobs)."""


class ReviewError(VisuelsError):
    """A review decision that cannot be applied (unknown file, missing comment...)."""
