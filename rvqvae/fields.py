"""Check plain data (TOML, JSON, keyword options) against a dataclass's field types.

>>> typed_fields(Scenario, {"epsilon": 0.2, "inlier_classes": [1, 7]}, where="mine.toml")
{'epsilon': 0.2, 'inlier_classes': (1, 7)}

Guarantees: every returned value has its field's annotated type (lists become tuples for
``tuple[...]`` fields, ints become floats for ``float`` fields); anything else raises one
:class:`~rvqvae.errors.UserError` naming the field, the expected type and the value, never
another exception. ``bool`` is not accepted for ``int`` or ``float`` fields (``train_size =
true`` is an error, not 1), and a string is not a sequence (``models = "vqvae"`` is an error,
not five letters).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from rvqvae.errors import UserError


def typed_fields(cls: type, values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``values`` checked and converted to the field types of dataclass ``cls`` (module doc).

    Unknown names are one error listing the known fields.
    """
    if not isinstance(values, Mapping):
        raise UserError(f"{where} must be a table of {cls.__name__} fields, "
                        f"got {describe(values)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                        f"{', '.join(sorted(known))}")
    return {name: coerce(value, hints[name], f"{where}: {name}") for name, value in values.items()}


def build(cls: type, values: Mapping[str, Any], *, where: str) -> Any:
    """``cls(**typed_fields(cls, values))``; a missing required field is a UserError too."""
    checked = typed_fields(cls, values, where=where)
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in checked
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**checked)


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as ``annotation`` (bool, int, float, str, X | None, tuple[...], dict, a class)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except UserError:
                continue
        raise _wrong(value, annotation, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(value, annotation, where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise _wrong(value, annotation, where)
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in
                     enumerate(zip(value, args, strict=True)))
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _wrong(value, annotation, where)
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise _wrong(value, annotation, where)
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(value, annotation, where)
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(value, annotation, where)
        if not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _wrong(value, annotation, where)
        return value
    if isinstance(annotation, type):
        if not isinstance(value, annotation):
            raise _wrong(value, annotation, where)
        return value
    return value  # an annotation this checker does not know: left to the class itself


def type_name(annotation: Any) -> str:
    """A reader's name of a type: ``int``, ``a list of int``, ``float or none``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list [{', '.join(type_name(a) for a in args)}]"
    if origin is dict or annotation is dict:
        return "a table"
    return getattr(annotation, "__name__", str(annotation))


def describe(value: Any) -> str:
    """A value as error messages show it: ``integer 5``, ``string 'vqvae'``, ``list [1, 2]``."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            tuple: "list", dict: "table"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def _wrong(value: Any, annotation: Any, where: str) -> UserError:
    return UserError(f"{where} must be {type_name(annotation)}, got {describe(value)}")
