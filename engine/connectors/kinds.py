"""A registry of implementations by `kind`: each auth kind and paginator registers next to its code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Kinds(Generic[T]):
    """Classes by kind; an unknown kind is an error that names the valid ones."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.classes: dict[str, type[T]] = {}

    def register(self, kind: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: file the class under `kind` and tell it its kind."""

        def decorate(cls: type[T]) -> type[T]:
            cls.kind = kind  # type: ignore[attr-defined]
            self.classes[kind] = cls
            return cls

        return decorate

    def build(self, config: Any, *args: Any) -> T:
        """An instance of the class registered for `config.kind`, given the config and `args`."""
        try:
            cls = self.classes[config.kind]
        except KeyError:
            valid = ", ".join(sorted(self.classes))
            raise ValueError(f"unknown {self.what} kind {config.kind!r}; valid: {valid}") from None
        return cls(config, *args)  # type: ignore[call-arg]
