"""The one walker over pydantic schemas: fields at a key path, valid keys, leaf parameters, and
validation errors in words a user can act on.

Scenario files (:class:`sim.scenario.Scenario`) and experiment files
(:class:`sim.batch.spec.ExperimentSpec`) are both nested pydantic models. Everything that needs
to look inside one (error messages that list the valid keys, the check that a factor names a
real scenario key, ``--set`` overrides, the generated parameter tables of ``docs/MODEL.md``)
goes through the functions here, so they agree on what a key path means:

* a *dotted key* (``grids.count``, ``incidents.hazard.base_rate``) names a field through
  nested sections only, as written in ``--set`` and experiment factors;
* an *error location* (pydantic's ``loc``, e.g. ``("city", "centres", 0, "x")``) may also pass
  through list and tuple elements (integer parts) and optional sections.

Depends on pydantic only (the core layer; no :mod:`sim` module is imported).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

#: How many validation errors one message spells out (the rest are counted).
MAX_ERRORS_SHOWN = 4


# --------------------------------------------------------------------------- types
def section_class(annotation: Any) -> type[BaseModel] | None:
    """The model class of a nested section field, or None for any other field."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def element_class(annotation: Any) -> type[BaseModel] | None:
    """The element model of a ``tuple[Section, ...]`` or ``list[Section]`` field, or None."""
    if typing.get_origin(annotation) in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            return section_class(args[0])
    return None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model an error location continues into: the section itself, the element of a list
    or tuple of sections, or the section of an optional (``Section | None``)."""
    direct = section_class(annotation)
    if direct is not None:
        return direct
    for arg in typing.get_args(annotation):
        found = section_class(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- walking
def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class at an error location (integer parts, list indices, are skipped).

    Args:
        root: the top-level model class.
        loc: a pydantic error location or the parts of a dotted key; ``()`` is ``root``.

    Returns:
        The model class whose fields live at ``loc``, or None if ``loc`` leaves the schema or
        ends on a scalar field.
    """
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def valid_keys(root: type[BaseModel], loc: Sequence[str | int] = ()) -> list[str]:
    """Sorted field names at an error location (empty if it is not a section)."""
    model = model_at(root, loc)
    return sorted(model.model_fields) if model is not None else []


def field_at(root: type[BaseModel], key: str | Sequence[str]) -> FieldInfo | None:
    """The pydantic field behind a dotted key (``"grids.count"``), or None.

    Only nested sections are walked through: a dotted key cannot address one element of a
    list (``city.centres.x`` is not a key), just as ``--set`` cannot.
    """
    parts = key.split(".") if isinstance(key, str) else list(key)
    model: type[BaseModel] | None = root
    info = None
    for part in parts:
        if model is None or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = section_class(info.annotation)
    return info


# --------------------------------------------------------------------------- leaf parameters
@dataclass(frozen=True)
class ParamInfo:
    """One leaf parameter of a schema.

    Attributes:
        key: dotted key as used in scenario files and ``--set`` (``city.centres[].x`` for the
            fields of a tuple element).
        field: the pydantic field (metadata, annotation, description).
        default: the default value in a default-constructed model (for tuple elements: the
            value in the first default element, or None if the tuple is empty).
    """

    key: str
    field: FieldInfo
    default: Any

    @property
    def description(self) -> str:
        return (self.field.description or "").strip()


def iter_parameters(model: type[BaseModel], instance: BaseModel | None = None,
                    prefix: str = "") -> Iterator[ParamInfo]:
    """Every leaf parameter of a schema, depth first in declaration order.

    Args:
        model: the section class to walk.
        instance: the instance of ``model`` whose values are the defaults (default:
            ``model()``).
        prefix: dotted prefix of ``model`` (empty for the top level).

    Yields:
        One :class:`ParamInfo` per scalar field; the fields of ``tuple[Section, ...]``
        elements as ``prefix.name[].field``.
    """
    if instance is None:
        instance = model()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(instance, name)
        sub = section_class(field.annotation)
        if sub is not None:
            yield from iter_parameters(sub, value, key + ".")
            continue
        yield ParamInfo(key, field, value)
        elem = element_class(field.annotation)
        if elem is not None:
            first = value[0] if value else None
            for ename, efield in elem.model_fields.items():
                yield ParamInfo(f"{key}[].{ename}", efield,
                                getattr(first, ename) if first is not None else None)


# --------------------------------------------------------------------------- errors
def _describe(root: type[BaseModel], err: Any) -> tuple[str, str]:
    """One pydantic error (a dict of ``ValidationError.errors()``) as (message, key)."""
    loc = tuple(err.get("loc", ()))
    key = ".".join(str(p) for p in loc) or "(top level)"
    value = err.get("input")
    kind = err.get("type")
    if kind == "extra_forbidden":
        valid = ", ".join(valid_keys(root, loc[:-1]))
        return f"key '{key}': unknown key (value {value!r}); valid keys here are: {valid}", key
    # the field's description says the unit and what the key means: worth repeating here
    field_help = ""
    parent = model_at(root, loc[:-1])
    if parent is not None and loc and loc[-1] in parent.model_fields:
        desc = parent.model_fields[loc[-1]].description
        if desc:
            field_help = f" ({desc})"
    if kind == "missing":
        return f"key '{key}': required key is missing{field_help}", key
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    shown = value if not isinstance(value, dict) else "{...}"
    return f"key '{key}': value {shown!r} is not allowed: {msg}{field_help}", key


def format_validation_error(err: ValidationError, root: type[BaseModel]) -> tuple[str, str]:
    """A pydantic ``ValidationError`` as one message naming each key, value and what is allowed.

    Unknown keys list the valid keys at their place; other errors repeat the field's
    description. The first :data:`MAX_ERRORS_SHOWN` errors are spelled out, the rest counted.
    The caller adds the file name (``ScenarioError(message, file=..., key=key)``).

    Args:
        err: the exception raised by ``root.model_validate``.
        root: the model class that was validated (where error locations start).

    Returns:
        ``(message, key)``: the message, and the dotted key of the first error.
    """
    described = [_describe(root, e) for e in err.errors()]
    message, key = described[0]
    if len(described) > 1:
        rest = "; ".join(m for m, _ in described[1:MAX_ERRORS_SHOWN])
        more = len(described) - MAX_ERRORS_SHOWN
        message += f"; also: {rest}" + (f" (and {more} more)" if more > 0 else "")
    return message, key
