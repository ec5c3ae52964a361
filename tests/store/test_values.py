"""Every JSON value a store is given comes back as the same value, on both backends: with NUL
characters and lone surrogates in its strings (an ERP's JSON may hold them), floats that PostgreSQL's
jsonb would give back otherwise (`1e+16`, `-0.0`), and values shaped like the wrapper that keeps them.
Text columns (keys, errors) hold no NUL on PostgreSQL: there it is U+FFFD."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.store import StoredTrace, open_store

from .conftest import FakeClock

TEXT = st.text(st.characters(codec=None, blacklist_categories=()), max_size=6)
"""Any code point, surrogates and NUL included."""
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)


def same(stored: Any, read: Any) -> bool:
    """The same JSON value, types included (1 is not 1.0 nor True, -0.0 is not 0.0); objects unordered."""
    return json.dumps(stored, sort_keys=True) == json.dumps(read, sort_keys=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON)
@example(value="a\x00b")
@example(value={"$json": "[1]"})
@example(value={"$json": {"$json": "x"}})
@example(value=[1e16, -0.0, 2.5, 10**20, "\ud800", "\U0001f600"])
@example(value={"event": {"note": "\x00", "qty": 1e300}, "fingerprint": "f"})
def test_a_json_value_comes_back_as_it_was(backend: str, value: Any) -> None:
    async def round_trips() -> None:
        store = open_store(backend, clock=FakeClock())
        try:
            await store.migrate()
            event_id = uuid.uuid4().hex
            payload = {"event": value}
            await store.enqueue("p", event_id, payload, event_id=event_id)
            [job] = await store.claim("w")
            assert same(payload, job.payload), (payload, job.payload)
            await store.dead_letter(job, "refused", "business")
            dead = await store.get_dead(event_id)
            assert dead is not None and same(payload, dead.payload)
            assert await store.replay_dead(event_id, verify_first=True)
            [again] = await store.claim("w")
            assert same({**payload, "verify_first": True, "replayed": True}, again.payload), again.payload
            await store.complete(again, value)
            stored = await store.put_reply("p", event_id, {"body": value})
            assert same({"body": value}, stored)
            assert same({"body": value}, await store.get_reply("p", event_id))
        finally:
            await store.close()

    asyncio.run(round_trips())


async def test_nul_characters_in_text_columns_are_stored(make_store: Any, clock: FakeClock) -> None:
    store = make_store()
    await store.migrate()
    await store.enqueue("p", "key\x00", {"event": 1}, event_id="e\x001")
    [job] = await store.claim("w")
    assert job.key.replace("\x00", "\ufffd") == "key\ufffd"
    await store.retry(job, "the ERP said \x00", 0)
    [job] = await store.claim("w")
    await store.dead_letter(job, "still \x00 here", "business")
    [dead] = await store.list_dead("p")
    assert dead.error.replace("\x00", "\ufffd") == "still \ufffd here"
    assert [a.error.replace("\x00", "\ufffd") for a in dead.attempts][-2:] == [
        "the ERP said \ufffd",
        "still \ufffd here",
    ]
    document = {"id": "t1", "event": {"note": "\x00\ud800"}, "duration": 1e16}
    await store.add_traces(
        [
            StoredTrace(
                id="t1",
                received=clock(),
                pipeline="p",
                event_id="e\x001",
                source="webhook",
                outcome="ok",
                status=200,
                duration=0.5,
                version="v\x00",
                search="note \x00",
                document=json.dumps(document),
            )
        ]
    )
    assert same(document, await store.get_trace("t1"))
