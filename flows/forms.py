"""How flow parameters show in Prefect's run form: plain labels, groups of plain fields, and the
labels and explanations in the served language."""

from __future__ import annotations

from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.fields import FieldInfo
from visuels._internal.i18n import Words


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


def plain(text: str) -> str:
    """A label or explanation on one line, as the catalogue holds it (docstrings wrap theirs)."""
    return " ".join(text.split())


def form_texts(schema: object) -> set[str]:
    """Every label and explanation (``title``, ``description``) a parameter schema shows."""
    if isinstance(schema, dict):
        found = {
            plain(value) for key, value in schema.items() if key in ("title", "description") and isinstance(value, str)
        }
        return found.union(*(form_texts(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(form_texts(value) for value in schema))
    return set()


def form_in_words(schema: object, t: Words) -> object:
    """The schema with its labels and explanations in the words of ``t``; the values the form
    sends (choices, defaults) are the flow's, in any language."""
    if isinstance(schema, dict):
        return {
            key: t(plain(value))
            if key in ("title", "description") and isinstance(value, str)
            else form_in_words(value, t)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [form_in_words(value, t) for value in schema]
    return schema
