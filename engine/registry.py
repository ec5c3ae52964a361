"""Registries of kinds: each extension point (auth kinds, paginators, step types, source kinds, caller
auth kinds, store backends) keeps one, and every kind registers next to its own code.

The config models are built from the registry: `union()` is the pydantic discriminated union of the
registered models, so the loader, `mesbridge check`, the JSON Schema and the runtime know exactly the
same kinds. A kind whose `register` call is missing is simply not in the union: a config that names it
gets a located "unknown kind ... expected one of ..." error, never a traceback.

`load(package)` imports every module of a package, so adding a kind is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import Field

__all__ = ["Registry", "kind_of"]

T = TypeVar("T")


def kind_of(model: Any, field: str = "kind") -> str:
    """The kind a config model declares: the single value of its `kind: Literal[...]` field."""
    info = model.model_fields.get(field)
    annotation = info.annotation if info is not None else None
    if typing.get_origin(annotation) is not Literal or len(typing.get_args(annotation)) != 1:
        raise TypeError(f"{model.__name__}.{field} must be a Literal of one value to be registered")
    return str(typing.get_args(annotation)[0])


class Registry(Generic[T]):
    """Implementations by kind, each with the config model that selects it."""

    def __init__(self, what: str, *, field: str = "kind") -> None:
        self.what = what
        self.field = field
        self._entries: dict[str, tuple[Any, type[T]]] = {}

    def register(self, model: Any = None, *, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Class decorator: file the class under its kind, with `model` (the class itself by default)."""

        def decorate(cls: type[T]) -> type[T]:
            chosen = cls if model is None else model
            kind = name if name is not None else kind_of(chosen, self.field)
            if kind in self._entries and self._entries[kind][1] is not cls:
                raise ValueError(f"{self.what} kind {kind!r} is registered twice")
            cls.kind = kind  # type: ignore[attr-defined]
            self._entries[kind] = (chosen, cls)
            return cls

        return decorate

    def __contains__(self, kind: object) -> bool:
        return kind in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def kinds(self) -> list[str]:
        """The registered kinds, sorted."""
        return sorted(self._entries)

    def model(self, kind: str) -> Any:
        """The config model of a kind."""
        return self._entries[kind][0]

    def implementation(self, kind: str) -> type[T]:
        """The class registered for a kind; an unknown kind is a ValueError naming the valid ones."""
        try:
            return self._entries[kind][1]
        except KeyError:
            raise ValueError(f"unknown {self.what} kind {kind!r}; valid: {', '.join(self.kinds)}") from None

    def models(self) -> list[Any]:
        """Every registered config model, in registration order."""
        return [model for model, _ in self._entries.values()]

    def union(self) -> Any:
        """The discriminated union of the registered models (by `field`), for pydantic fields."""
        models = self.models()
        if not models:
            raise RuntimeError(f"no {self.what} kind is registered")
        if len(models) == 1:
            return models[0]
        return Annotated[typing.Union[tuple(models)], Field(discriminator=self.field)]  # noqa: UP007

    def build(self, config: Any, *args: Any) -> T:
        """An instance of the class registered for `config`'s kind, given the config and `args`."""
        return self.implementation(getattr(config, self.field))(config, *args)  # type: ignore[call-arg]

    @staticmethod
    def load(package: str) -> None:
        """Import every module of `package` (each registers its kinds)."""
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")
