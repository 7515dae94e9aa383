"""A run's progress as an artifact that the UI draws as a bar, updated in place."""

from __future__ import annotations

import time

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from visuels._internal.i18n import Words
from visuels.flows.artifacts.progress_view import progress_markdown


class RunProgress:
    """One markdown artifact of the current run, rewritten at each step (not one version per step)."""

    def __init__(self, title: str, total: int, unit: str, t: Words) -> None:
        """``unit``: a plural ("pictures"), in the language of ``t``."""
        self.title, self.total, self.unit, self.t = title, total, unit, t
        self.started = time.monotonic()
        description = t("{title}: progress", title=title)
        self.artifact_id = create_markdown_artifact(markdown=self._markdown(0), description=description)

    def _markdown(self, done: int) -> str:
        elapsed = time.monotonic() - self.started
        return progress_markdown(self.title, done, self.total, self.unit, elapsed, self.t)

    def update(self, done: int) -> None:
        with get_client(sync_client=True) as client:
            client.update_artifact(self.artifact_id, ArtifactUpdate(data=self._markdown(done)))
