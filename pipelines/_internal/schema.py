"""How an optional value shows in a JSON-schema form (Prefect's run form): one plain field.

Plain pydantic, no Prefect import: the parameter models live in the library; ``visuels.flows.forms``
gives flow parameters their labels and groups.
"""

from __future__ import annotations


def blank_when_unset(schema: dict) -> None:
    """Show an optional value as one plain field, left empty when unset.

    Pydantic writes ``X | None`` as "anyOf X or null", which Prefect's form draws as a type switch
    ("Property is type None"), and a value out of range then fails as "not valid under any of the
    given schemas" without saying the range. With the null branch gone, an empty field is simply
    not sent, and the default (None) applies.
    """
    branches = [branch for branch in schema.pop("anyOf", []) if branch.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    if "default" in schema and schema["default"] is None:
        del schema["default"]
