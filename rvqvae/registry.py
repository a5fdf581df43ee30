"""A small name -> object registry, the one pattern used for scenarios, models, metrics and
kernel backends (modelled on torch-fidelity's ``registry.py``).

Registration is validated: names are unique and well formed, and objects derive from the
registry's base class when one is given. Lookup of an unknown name raises
:class:`~rvqvae.errors.UserError` listing the known names. Every entry records where it was
defined (``Entry.source``, as timm records a model's module): the module of a registered
class or function, else the module that called ``register`` (``register_*`` helpers skipped),
or what the caller passes as ``source=`` (e.g. the TOML file a scenario came from).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rvqvae.errors import UserError

T = TypeVar("T")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.+@-]*$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its human description and free-form metadata."""

    name: str
    obj: T
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # a module name (``rvqvae.models.vqvae``) or a file path


class Registry(Generic[T]):
    """Maps names to objects of one kind (``kind`` is used in messages, e.g. ``"model"``)."""

    def __init__(self, kind: str, base: type | None = None):
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, obj: T | None = None, *, description: str = "", replace: bool = False,
        source: str = "", **info: Any,
    ) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` this is a decorator.

        Raises ``ValueError`` for a malformed or duplicate name (unless ``replace``) and
        ``TypeError`` when ``obj`` is a class not derived from the registry's base.
        """
        if obj is None:
            def decorator(target: T) -> T:
                self.register(name, target, description=description, replace=replace,
                              source=source, **info)
                return target
            return decorator
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ValueError(
                f"{self.kind} name {name!r} is malformed: use lowercase letters, digits and "
                f"'_.+@-', starting with a letter or digit"
            )
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if self.base is not None and isinstance(obj, type) and not issubclass(obj, self.base):
            raise TypeError(f"{self.kind} {name!r} must derive from {self.base.__name__}")
        if not description:  # the object's own description field, else its docstring
            own = getattr(obj, "description", "")
            description = own if isinstance(own, str) and own else \
                _first_line(getattr(obj, "__doc__", None) or "")
        self._entries[name] = Entry(name, obj, description, dict(info),
                                    source or _defined_in(obj))
        return obj

    def get(self, name: str) -> T:
        """The object registered as ``name``; a :class:`UserError` listing known names if none."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UserError(f"{self.kind} {name!r} is unknown; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _defined_in(obj: Any) -> str:
    """The module that defines ``obj`` (a class or function), else the module registering it."""
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__code__"):
        module = getattr(obj, "__module__", "")
        if module and module != "__main__" and not obj.__name__.startswith("<lambda"):
            return module
    frame = sys._getframe(1)
    while frame is not None and (frame.f_globals.get("__name__") == __name__
                                 or frame.f_code.co_name.startswith("register")):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""

