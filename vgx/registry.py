"""Named choices: the single source of truth for validation, `vgx list`, docs and tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from vgx.errors import ConfigError

T = TypeVar("T")
D = TypeVar("D")


class Registry(Mapping[str, T], Generic[T]):
    """A name -> object mapping whose failed lookups say what the valid names are."""

    def __init__(self, key: str, help: str = "") -> None:
        self.key = key
        self.help = help
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add `obj` under `name` (names are unique)."""

        def add(obj: T) -> T:
            self.add(name, obj)
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.key} '{name}' is registered twice")
        self._items[name] = obj

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:  # Mapping's default would raise ConfigError
        return name in self._items

    # Mapping.get calls __getitem__ and catches KeyError, which ConfigError is not: look up here.
    @overload
    def get(self, name: str, /) -> T | None: ...
    @overload
    def get(self, name: str, default: T, /) -> T: ...
    @overload
    def get(self, name: str, default: D, /) -> T | D: ...
    def get(self, name: str, default: T | D | None = None, /) -> T | D | None:
        return self._items.get(name, default)

    def unknown(self, value: object) -> str:
        """The one-line message for a value that is not a registered name."""
        return f"{self.key}={value} is not a valid choice; valid: {', '.join(self._items)}"

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
