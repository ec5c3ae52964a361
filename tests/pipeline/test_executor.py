"""The executor: steps in order, branching, fan-out, lookups, failures and the replies they produce."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.errors import BusinessError, TransientError, UncertainError
from engine.pipeline.executor import Executor
from engine.pipeline.models import Pipeline


@dataclass
class FakeResponse:
    result: Any
    verified: bool = False


@dataclass
class FakeRetry:
    deadline: float = 60.0


@dataclass
class FakeConfig:
    operations: dict[str, Any] = field(default_factory=dict)
    retry: FakeRetry = field(default_factory=FakeRetry)


class FakeConnector:
    """Answers each call from a script and records it."""

    def __init__(self, name: str, answers: list[Any]) -> None:
        self.name = name
        self.config = FakeConfig()
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def safe_to_repeat(self, method: str, idempotent: bool | None = None, key: str | None = None) -> bool:
        return idempotent if idempotent is not None else method in ("GET", "PUT", "DELETE")

    async def request(self, method: str, path: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"method": method, "path": path, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == "slow":
            await asyncio.sleep(5)
        if answer == "pause":
            await asyncio.sleep(0.1)
        return FakeResponse(answer)


def pipeline(steps: list[Any], **extra: Any) -> Pipeline:
    return Pipeline.model_validate(
        {"name": "p", "source": {"kind": "webhook", "path": "/p"}, "steps": steps, **extra}
    )


async def run(p: Pipeline, event: Any, answers: list[Any] | None = None, **kwargs: Any) -> Any:
    erp = FakeConnector("erp", list(answers or []))
    outcome = await Executor(p, {"erp": erp}, {"table": {"A": "1"}}).run(event, **kwargs)
    return outcome, erp


async def test_set_call_and_reply_keep_types() -> None:
    p = pipeline(
        [
            {"set": {"qty": "{{ event.qty }}", "code": "{{ event.code | lookup(vars.table) }}"}},
            {
                "name": "made",
                "call": "erp",
                "method": "POST",
                "path": "/x",
                "body": {"q": "{{ qty }}", "c": "{{ code }}"},
            },
        ],
        reply={"status": 201, "body": {"externalId": "{{ made.id | to_str }}"}},
    )
    outcome, erp = await run(p, {"qty": 2, "code": "A"}, [{"id": 77}])
    assert (outcome.status, outcome.body) == (201, {"externalId": "77"})
    assert erp.calls[0]["body"] == {"q": 2, "c": "1"}


@pytest.mark.parametrize(("kind", "path"), [("add", "/add"), ("remove", "/remove")])
async def test_switch_picks_the_case(kind: str, path: str) -> None:
    p = pipeline(
        [
            {
                "switch": "event.type",
                "cases": {
                    "add": [{"call": "erp", "method": "POST", "path": "/add"}],
                    "remove": [{"call": "erp", "method": "DELETE", "path": "/remove"}],
                },
            }
        ]
    )
    outcome, erp = await run(p, {"type": kind}, [{}])
    assert outcome.ok and erp.calls[0]["path"] == path


async def test_switch_without_matching_case_fails_clearly() -> None:
    p = pipeline([{"switch": "event.type", "cases": {"add": []}}])
    outcome, _ = await run(p, {"type": "update"})
    assert outcome.status == 422
    assert outcome.body == {"message": "no case for event.type = 'update' (cases: add)"}


async def test_for_each_fans_out_and_collects() -> None:
    p = pipeline(
        [
            {
                "name": "lines",
                "for_each": "event.items",
                "as": "line",
                "steps": [
                    {
                        "name": "r",
                        "call": "erp",
                        "method": "POST",
                        "path": "/line",
                        "body": {"sku": "{{ line.sku }}"},
                    }
                ],
                "collect": "{{ r.id }}",
            }
        ],
        reply={"body": {"ids": "{{ lines }}"}},
    )
    outcome, erp = await run(p, {"items": [{"sku": "a"}, {"sku": "b"}]}, [{"id": 1}, {"id": 2}])
    assert outcome.body == {"ids": [1, 2]}
    assert [c["body"]["sku"] for c in erp.calls] == ["a", "b"]


async def test_lookup_not_found_default_or_fail() -> None:
    fallback = pipeline(
        [{"name": "found", "call": "erp", "path": "/q", "result": "value[0]", "missing": {"default": None}}],
        reply={"body": {"found": "{{ found }}"}},
    )
    outcome, _ = await run(fallback, {}, [{"value": []}])
    assert outcome.body == {"found": None}
    refused = pipeline(
        [{"call": "erp", "path": "/q", "missing": {"fail": "serial {{ event.s }} not found", "status": 404}}]
    )
    outcome, _ = await run(refused, {"s": "SN1"}, [BusinessError("gone", connector="erp", http_status=404)])
    assert (outcome.status, outcome.body) == (404, {"message": "serial SN1 not found"})


async def test_fail_step_and_when_guard() -> None:
    p = pipeline(
        [{"fail": "no externalId for {{ event.sku }}", "status": 409, "when": "event.externalId == null"}]
    )
    refused, _ = await run(p, {"sku": "X", "externalId": None})
    assert (refused.status, refused.body) == (409, {"message": "no externalId for X"})
    passed, _ = await run(p, {"sku": "X", "externalId": "E1"})
    assert passed.ok


async def test_erp_message_reaches_the_caller_intact() -> None:
    hebrew = 'פק"ע WO-1 לא קיימת'
    p = pipeline([{"call": "erp", "method": "POST", "path": "/x"}])
    outcome, _ = await run(p, {}, [BusinessError(hebrew, connector="erp", http_status=400)])
    assert (outcome.status, outcome.body) == (422, {"message": hebrew})


async def test_unreachable_and_deadline_statuses() -> None:
    p = pipeline([{"call": "erp", "method": "POST", "path": "/x"}])
    down, _ = await run(p, {}, [TransientError("erp unreachable", connector="erp")])
    assert down.status == 502
    late = pipeline(
        [{"call": "erp", "method": "GET", "path": "/a"}, {"call": "erp", "method": "POST", "path": "/b"}]
    )
    stopped, erp = await run(late, {}, ["pause", {}], deadline=0.05)
    assert (
        stopped.status == 504
        and "no answer within 0.05 s; stopped before the next step" in stopped.body["message"]
    )
    assert [c["path"] for c in erp.calls] == ["/a"]


async def test_a_call_that_outlives_the_deadline_leaves_the_outcome_unknown() -> None:
    """A connector keeps each attempt within the deadline; one that does not is cut off as uncertain."""
    p = pipeline([{"call": "erp", "method": "POST", "path": "/x"}])
    slow, erp = await run(p, {}, ["slow"], deadline=0.05)
    assert slow.status == 502 and slow.error is not None and slow.error.kind == "uncertain"
    assert "no answer within 0.05 s, and a call may still have been in flight" in slow.body["message"]
    assert 0 < erp.calls[0]["deadline"] <= 0.05


async def test_on_error_shapes_the_reply() -> None:
    p = pipeline(
        [{"call": "erp", "method": "POST", "path": "/x"}],
        on_error={"status": 400, "body": {"message": "ERP: {{ error.message }}"}},
    )
    outcome, _ = await run(p, {}, [BusinessError("refused", connector="erp", http_status=400)])
    assert (outcome.status, outcome.body) == (400, {"message": "ERP: refused"})


async def test_missing_event_field_is_a_clear_error() -> None:
    p = pipeline([{"set": {"s": "{{ event.serial }}"}}])
    outcome, _ = await run(p, {})
    assert outcome.status == 422
    assert "'event' has no key 'serial'" in outcome.body["message"]


async def test_pipeline_condition_skips() -> None:
    p = pipeline([{"fail": "never"}], when="event.type == 'add'")
    outcome, _ = await run(p, {"type": "remove"})
    assert outcome.skipped and outcome.status == 200


async def test_now_reads_the_given_clock_everywhere_in_the_run() -> None:
    """Two runs given one clock render the same times: dry runs compare without volatile values."""
    p = pipeline(
        [
            {"set": {"at": "{{ now() }}"}},
            {
                "for_each": "event.lines",
                "steps": [
                    {
                        "call": "erp",
                        "method": "POST",
                        "path": "/x",
                        "body": {"at": "{{ now() | odata_date }}"},
                    }
                ],
            },
        ],
        reply={"body": {"at": "{{ at }}", "text": "done at {{ now() }}"}},
    )
    moment = datetime(2026, 11, 20, 10, 0, 0, 559000, tzinfo=UTC)
    erp = FakeConnector("erp", [{}])
    outcome = await Executor(p, {"erp": erp}, clock=lambda: moment).run({"lines": [1]})
    assert outcome.body == {"at": "2026-11-20T10:00:00.559Z", "text": "done at 2026-11-20T10:00:00.559Z"}
    assert erp.calls[0]["body"] == {"at": "2026-11-20T10:00:00+00:00"}
    system, _ = await run(pipeline([], reply={"body": {"at": "{{ now() }}"}}), {})
    read = datetime.fromisoformat(system.body["at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - read).total_seconds()) < 60


async def test_a_run_reads_one_instant_however_often_and_wherever_it_reads_the_time() -> None:
    """A clock that moves between reads: every `now()` of one run is the first one's time (so a date
    and a document number made of the time agree), the outcome says which it was, and the next run
    reads the clock again."""
    ticks = iter(datetime(2026, 11, 20, 10, 0, second, tzinfo=UTC) for second in range(60))
    p = pipeline(
        [
            {"set": {"at": "{{ now() }}"}},
            {
                "name": "sent",
                "call": "erp",
                "method": "POST",
                "path": "/docs/{{ now() | date('%H%M%S') }}",
                "body": {"at": "{{ now() }}"},
            },
        ],
        reply={"body": {"at": "{{ at }}", "again": "{{ now() }}"}},
    )
    erp = FakeConnector("erp", [{}, {}])
    executor = Executor(p, {"erp": erp}, clock=lambda: next(ticks))
    first = await executor.run({})
    assert first.body == {"at": "2026-11-20T10:00:00.000Z", "again": "2026-11-20T10:00:00.000Z"}
    assert erp.calls[0]["path"] == "/docs/100000" and erp.calls[0]["body"] == {"at": first.body["at"]}
    assert first.now == datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    second = await executor.run({})
    assert second.now == datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC) and second.body["again"].endswith(
        ":01.000Z"
    )


async def test_a_run_that_reads_no_time_keeps_none() -> None:
    """Only a pipeline whose templates call `now()` keeps an instant; the others read no clock."""
    reads: list[int] = []

    def clock() -> datetime:
        reads.append(1)
        return datetime(2026, 1, 1, tzinfo=UTC)

    outcome = await Executor(pipeline([{"set": {"n": "{{ event.n }}"}}]), {}, clock=clock).run({"n": 1})
    assert outcome.ok and outcome.now is None and "now" not in outcome.values and reads == []
    failed = await Executor(pipeline([{"fail": "late at {{ now() }}"}]), {}, clock=clock).run(
        {}
    )  # a failure's outcome says the time too
    assert failed.error is not None and failed.now == datetime(2026, 1, 1, tzinfo=UTC) and reads == [1]


async def test_a_run_lists_the_writes_it_applied_that_are_not_safe_to_repeat() -> None:
    """Reads, PUTs and writes declared idempotent may run again; the POST may not, and a failure after
    it says so (the queue then never reruns the event as a whole)."""
    p = pipeline(
        [
            {"name": "read", "call": "erp", "method": "GET", "path": "/a"},
            {"name": "put", "call": "erp", "method": "PUT", "path": "/b/{{ event.n }}"},
            {"name": "rpc", "call": "erp", "method": "POST", "path": "/rpc", "idempotent": True},
            {"name": "post", "call": "erp", "method": "POST", "path": "/c/{{ event.n }}"},
            {"fail": "refused later", "when": "event.fail"},
        ]
    )
    ok, _ = await run(p, {"n": 7}, [{}, {}, {}, {}])
    assert ok.ok and ok.applied == ["POST /c/7"]
    failed, _ = await run(p, {"n": 8, "fail": True}, [{}, {}, {}, {}])
    assert failed.applied == ["POST /c/8"]
    assert failed.body == {
        "message": "refused later (after POST /c/8 had been applied: sending the event again would apply it twice)"
    }
    before, _ = await run(p, {"n": 9}, [{}, TransientError("busy")])  # nothing applied: retried as is
    assert before.error is not None and before.applied == [] and before.body == {"message": "busy"}


async def test_a_write_not_safe_to_repeat_is_announced_with_its_budget() -> None:
    """The queue stretches the event's lease before such a write, so no second worker overlaps it."""
    p = pipeline(
        [
            {"name": "read", "call": "erp", "method": "GET", "path": "/a"},
            {"name": "put", "call": "erp", "method": "PUT", "path": "/b"},
            {"name": "made", "call": "erp", "method": "POST", "path": "/c"},
        ]
    )
    budgets: list[float] = []

    async def on_write(budget: float) -> None:
        budgets.append(budget)

    outcome, erp = await run(p, {}, [{}, {}, {}], deadline=10, on_write=on_write)
    assert outcome.ok and len(budgets) == 1 and 9 < budgets[0] <= 10
    assert [c["path"] for c in erp.calls] == ["/a", "/b", "/c"]


async def test_an_interrupted_event_does_not_send_an_unprotected_write_again() -> None:
    p = pipeline(
        [{"call": "erp", "method": "GET", "path": "/a"}, {"call": "erp", "method": "POST", "path": "/b"}]
    )
    outcome, erp = await run(p, {}, [{}], refuse_unprotected=True)
    assert outcome.status == 502 and outcome.error is not None and outcome.error.kind == "uncertain"
    assert "an earlier delivery of this event stopped mid-run" in outcome.body["message"]
    assert [c["path"] for c in erp.calls] == ["/a"]


def refused(status: int, message: str) -> BusinessError:
    return BusinessError(message, connector="erp", http_status=status)


@pytest.mark.parametrize(
    ("handler", "failure", "expected"),
    [
        pytest.param(
            {"if": "error.http_status == `404`", "value": "{{ {'gone': true} }}"},
            refused(404, "no such record"),
            (200, {"removed": {"gone": True}}),
            id="value",
        ),
        pytest.param(
            {"if": "contains(error.message, 'deja anulat')", "skip": True},
            refused(200, "Documentul BC-1 este deja anulat."),
            (200, {"removed": None}),
            id="skip",
        ),
        pytest.param(
            {
                "if": "error.kind == 'business'",
                "fail": "NextUp refused {{ event.id }}: {{ error.message }}",
                "status": 409,
            },
            refused(400, "Stoc insuficient"),
            (409, {"message": "NextUp refused D-1: Stoc insuficient"}),
            id="fail",
        ),
        pytest.param(
            {"if": "error.http_status == `404`", "value": "gone"},
            refused(400, "bad request"),
            (422, {"message": "bad request"}),
            id="no-match-is-the-failure",
        ),
        pytest.param(
            {"if": "`true`", "value": "fine"},
            UncertainError("outcome unknown after DELETE /x", connector="erp"),
            (502, {"message": "outcome unknown after DELETE /x (step removed: erp)"}),
            id="uncertain-is-never-handled",
        ),
    ],
)
async def test_a_step_handles_its_own_errors(
    handler: dict[str, Any], failure: Exception, expected: Any
) -> None:
    p = pipeline(
        [{"name": "removed", "call": "erp", "method": "POST", "path": "/invalidate", "on_error": [handler]}],
        reply={"body": {"removed": "{{ removed }}"}},
    )
    outcome, _ = await run(p, {"id": "D-1"}, [failure])
    assert (outcome.status, outcome.body) == expected


def test_event_ids_never_repeat_within_a_process_or_in_a_forked_child() -> None:
    from engine.pipeline.executor import new_event_id

    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports its first id; it must not continue a copy of the parent's ids
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    from_child = os.read(read, 64).decode()
    os.close(read)
    assert len(from_child) == 32 and from_child not in ids
    assert from_child[:16] != new_event_id()[:16]
