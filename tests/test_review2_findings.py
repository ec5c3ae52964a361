"""Review findings on ef4475c..HEAD."""

from __future__ import annotations

import copy
import pickle

import jmespath
import pytest

from engine.expressions.selection import Selection
from engine.pipeline.models import Pipeline


@pytest.mark.parametrize("source", ["event.type", 'a."b-c"', "a", "a[0]", "length(a)"])
def test_a_selection_pickles_and_copies_as_it_did(source: str) -> None:
    """The generated walker (a function made by exec) is not picklable: a Selection of a field path,
    and every model holding one, no longer pickled."""
    selection = Selection(source)
    data = {"a": [1], "event": {"type": "T"}}
    for copied in (pickle.loads(pickle.dumps(selection)), copy.copy(selection), copy.deepcopy(selection)):
        assert copied.source == source
        assert copied.search(data) == jmespath.search(source, data)


def test_a_pipeline_with_a_when_pickles() -> None:
    pipeline = Pipeline.model_validate(
        {"name": "p", "source": {"kind": "webhook", "path": "/p"}, "steps": [{"set": {"n": "1"}, "when": "event.a"}]}
    )
    again = pickle.loads(pickle.dumps(pipeline))
    assert again.steps[0].when.search({"event": {"a": 3}}) == 3
    assert again.model_dump() == pipeline.model_dump()
