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

:func:`strict_scalar` is the one rule for scalar values both schemas share (a bool is not a
number, a number is finite and within what double precision computes safely, text is not a
number); the schemas' base classes apply it to every field.

Depends on pydantic and :mod:`sim.files` (the core layer).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo

from sim.files import short, short_text

M = TypeVar("M", bound=BaseModel)

#: How many validation errors one message spells out (the rest are counted).
MAX_ERRORS_SHOWN = 4
#: Largest magnitude of an integer (numpy's int64, which the model computes in).
INT_MAX = 2**63 - 1
#: Largest magnitude of a real number. No parameter of the model means anything beyond it, and
#: products of a few such numbers stay finite in double precision (no overflow to inf).
FLOAT_MAX = 1e12
#: Smallest magnitude of a non-zero real number: divisors (hours per visit, speeds, days)
#: below it would make counts overflow.
FLOAT_MIN = 1e-12


# --------------------------------------------------------------------------- scalar values
def _scalar_types(annotation: Any) -> set[type]:
    """The scalar types among ``bool``, ``int``, ``float``, ``str`` a field annotation
    accepts (``int | None`` -> {int}); empty for sections, lists, literals and the rest."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else (annotation,)
    return {a for a in args if a in (bool, int, float, str)}


def strict_scalar(annotation: Any, value: Any) -> Any:
    """Check a value for a scalar field before pydantic converts it (a ``mode="before"``
    validator): no bool where a number is expected (``count: true`` is not 1), no number or
    text where a bool is, no text where a number is (``"176"``), and numbers finite and within
    :data:`INT_MAX` / :data:`FLOAT_MAX` (non-zero reals at least :data:`FLOAT_MIN`).

    Returns:
        ``value`` unchanged; range and type conversion stay with pydantic.

    Raises:
        ValueError: with what is expected, for the caller's validation error.
    """
    kinds = _scalar_types(annotation)
    if not kinds or value is None or str in kinds:
        return value
    numeric = kinds & {int, float}
    if bool in kinds and not numeric:
        if not isinstance(value, bool):
            # ValueError, not TypeError: pydantic turns ValueError into a validation error
            raise ValueError("Input should be true or false (a bool)")
        return value
    if not numeric:
        return value
    what = "a valid integer" if float not in kinds else "a valid number"
    if isinstance(value, (bool, str)):
        given = "true/false (a bool is not a number)" if isinstance(value, bool) else (
            "text (write numbers without quotes)")
        # ValueError, not TypeError: pydantic reports a ValueError as a validation error
        raise ValueError(f"Input should be {what}, not {given}")  # noqa: TRY004
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Input should be a finite number (.inf and .nan are not allowed)")
    if isinstance(value, (int, float)):
        if float not in kinds:
            if abs(value) > INT_MAX:
                raise ValueError(f"Input should be at most {INT_MAX:.3g} in magnitude")
        elif abs(value) > FLOAT_MAX or 0 < abs(value) < FLOAT_MIN:
            raise ValueError(f"Input should be 0 or between {FLOAT_MIN:g} and {FLOAT_MAX:g} in"
                             " magnitude")
    return value


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
    key = short_text(".".join(str(p) for p in loc) or "(top level)", 120)
    value = err.get("input")
    kind = err.get("type")
    if kind == "extra_forbidden":
        valid = ", ".join(valid_keys(root, loc[:-1]))
        return f"key '{key}': unknown key (value {short(value, 60)}); valid keys here are: {valid}", key
    # the field's description says the unit and what the key means: worth repeating here
    field_help = ""
    parent = model_at(root, loc[:-1])
    if parent is not None and loc and loc[-1] in parent.model_fields:
        desc = parent.model_fields[loc[-1]].description
        if desc:
            field_help = f" ({desc})"
    if kind == "missing":
        return f"key '{key}': required key is missing{field_help}", key
    msg = short_text(err.get("msg", "invalid value").removeprefix("Value error, "), 400)
    if isinstance(value, dict):  # a section's own check: its message names the keys
        return f"key '{key}': {msg}{field_help}", key
    return f"key '{key}': value {short(value)} is not allowed: {msg}{field_help}", key


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


class StrictSpec(BaseModel):
    """Base of the input files' schemas other than the scenario (experiment and calibration
    files): unknown keys refused, frozen, no NaN or infinity, and the scenario's rule for
    scalars (:func:`strict_scalar`: no bool as a number, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        return strict_scalar(cls.model_fields[info.field_name].annotation, value)


def validate(model: type[M], data: Any, error: type[Exception], source: str) -> M:
    """``model.model_validate(data)``, a failure raised as ``error`` naming the file, every key,
    value and what is allowed (:func:`format_validation_error`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, key = format_validation_error(exc, model)
        raise error(message, file=source, key=key) from None
