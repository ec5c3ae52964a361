"""Selections, and the config models holding them, pickle and copy as their source compiled again."""

from __future__ import annotations

import copy
import pickle

import jmespath
import pytest

from engine.expressions.selection import Selection
from engine.pipeline.sources.webhook import WebhookSource


@pytest.mark.parametrize("source", ["event.type", 'a."b-c"', "a", "a[0]", "length(a)"])
def test_a_selection_pickles_and_copies_as_it_did(source: str) -> None:
    """The generated walker (a function made by exec) is not picklable: a Selection of a field path,
    and every model holding one, no longer pickled."""
    selection = Selection(source)
    data = {"a": [1], "event": {"type": "T"}}
    for copied in (pickle.loads(pickle.dumps(selection)), copy.copy(selection), copy.deepcopy(selection)):
        assert copied.source == source
        assert copied.search(data) == jmespath.search(source, data)


def test_a_source_holding_selections_pickles_as_it_did() -> None:
    """A config model whose expressions are all selections pickled before the generated walker (a whole
    pipeline does not: its templates hold the environment)."""
    source = WebhookSource.model_validate({"kind": "webhook", "path": "/p", "order_key": "event.line"})
    again = pickle.loads(pickle.dumps(source))
    assert again.order_key is not None and again.order_key.search({"event": {"line": 7}}) == 7
    assert again.model_dump() == source.model_dump()
