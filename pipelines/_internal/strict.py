"""The base of the models read from a user's files and forms (charter, campaign, photos' credits,
model references, a run's selection): an unknown key is refused, so a misspelt one is an error and
not silently ignored, and what was read cannot change afterwards."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
