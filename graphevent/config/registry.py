"""A named table of one kind of extension (task types, reader formats): no torch here."""

from __future__ import annotations

from typing import Generic, TypeVar

from graphevent.errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Entries by name; an unknown name fails with the list of known ones.

    Args:
        kind: what an entry is, for messages (``task type``).
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, entry: T, name: str | None = None) -> T:
        """Register ``entry`` as ``name`` (default: ``entry.name``); a name registered twice is an error."""
        name = name if name is not None else getattr(entry, "name")
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str, where: str) -> T:
        """The entry ``name``.

        Raises:
            ConfigError: ``<where>: invalid value 'x'; expected one of 'a', 'b'``.
        """
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ConfigError(f"{where}: invalid value {name!r}; expected one of {', '.join(map(repr, self))}") from None
