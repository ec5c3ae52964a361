""" "Did you mean": the one place that picks the candidate a misspelt name was meant to be."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["closest", "did_you_mean"]


def closest(word: Any, candidates: Iterable[Any]) -> str | None:
    """The candidate most like `word` (a case-insensitive match first), or None when none is close.

    `word` itself is never suggested: a hint names something other than what was written.
    """
    names = [str(c) for c in candidates]
    text = str(word)
    lowered = {n.lower(): n for n in names}
    if text.lower() in lowered and lowered[text.lower()] != text:
        return lowered[text.lower()]
    matches = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    if not matches:
        matches = difflib.get_close_matches(text.lower(), list(lowered), n=1, cutoff=0.6)
        matches = [lowered[m] for m in matches]
    return matches[0] if matches and matches[0] != text else None


def did_you_mean(word: Any, candidates: Iterable[Any]) -> str | None:
    """``"did you mean 'method'?"`` for the closest candidate to `word`, or None."""
    match = closest(word, candidates)
    return f"did you mean '{match}'?" if match is not None else None
