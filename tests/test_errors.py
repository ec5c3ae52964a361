"""The exception tree drawn in engine/errors.py's docstring is the real class hierarchy."""

from __future__ import annotations

import inspect

from engine import errors


def drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's tree, with its parent (None for the root)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        words = line.replace("├──", "   ").replace("└──", "   ").replace("│", " ").split()
        if not words or not words[0].isidentifier() or not hasattr(errors, words[0]):
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[words[0]] = stack[-1][1] if stack else None
        stack.append((depth, words[0]))
    return parents


def test_the_drawn_tree_is_the_class_hierarchy() -> None:
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls)
        and issubclass(cls, errors.MesbridgeError)
        and cls.__module__ == errors.__name__
    }
    tree = drawn_tree()
    assert set(tree) == set(defined)
    for name, parent in tree.items():
        expected = defined[name].__bases__[0].__name__ if parent is not None else None
        assert parent == expected, f"{name}: drawn under {parent}, defined under {expected}"
