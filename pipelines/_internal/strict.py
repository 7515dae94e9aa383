"""The base of the models read from a user's files and forms (charter, campaign, photos' credits,
model references, a run's selection): an unknown key is refused, so a misspelt one is an error and
not silently ignored, what was read cannot change afterwards, and a number is a finite one (YAML
reads ``.inf`` and ``.nan`` as numbers, pydantic the strings ``"inf"`` and ``"nan"``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
