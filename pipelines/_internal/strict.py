"""The base of the models read from a user's files and forms (charter, campaign, photos' credits,
model references, a run's selection): an unknown key is refused, so a misspelt one is an error and
not silently ignored, what was read cannot change afterwards, and a number is a finite one (YAML
reads ``.inf`` and ``.nan`` as numbers, pydantic the strings ``"inf"`` and ``"nan"``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from visuels.errors import InvalidValueError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise InvalidValueError("empty: give it a value")
    return text


# Words that must say something (a name, a credit, a label): spaces alone are empty. Kept as
# written, never stripped: a prompt's spaces are in the job keys already made from it.
Filled = Annotated[str, AfterValidator(_not_blank)]
