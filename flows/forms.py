"""How flow parameters show in Prefect's run form: plain labels, and groups of plain fields."""

from __future__ import annotations

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.fields import FieldInfo


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
