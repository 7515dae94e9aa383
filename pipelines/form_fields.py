"""How flow parameters show in Prefect's run form: plain labels, and optional values as plain fields.

Plain pydantic, no Prefect import: the parameter models live in ``pipelines``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.fields import FieldInfo


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


def form_parameter(title: str) -> FieldInfo:
    """A flow parameter's label in the run form, where Prefect would show its Python name."""
    return Field(json_schema_extra={"title": title})


def form_group(title: str, default: BaseModel) -> tuple[WithJsonSchema, FieldInfo]:
    """A flow parameter that is a group of fields, as ``Annotated[Model, *form_group(...)]``.

    Written out in place rather than as a reference to a definition, whose label the form would
    take from the parameter's Python name; its default leaves out unset (None) values, which the
    form would show as type switches.
    """
    schema = type(default).model_json_schema()
    assert "$defs" not in schema, "a form group holds plain fields only"
    inline = {key: value for key, value in schema.items() if key not in ("title", "description")}
    default_shown = default.model_dump(mode="json", exclude_none=True)
    return WithJsonSchema(inline), Field(json_schema_extra={"title": title, "default": default_shown})
