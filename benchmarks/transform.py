"""Per-event transform cost: the engine's compiled mapping against the same mapping written in Python.

    .venv/bin/python benchmarks/transform.py [--number 500] [--repeat 201]

The mapping is the Operation "add" -> Priority production report (ALINE_ONE) body of seed 001, as the
benchmark config root (benchmarks/config/mappings/priority/operation.yaml) writes it. Three contenders,
timed timeit-style (best of `repeat` runs of `number` events each, the contenders taking turns run
by run, no HTTP anywhere). Many short runs: on a shared machine the best of each contender is the
run least disturbed, and a busy second spoils a few runs of each rather than the one run of one.

- template: the engine's compiled `Template` rendering the request body;
- executor: the whole `Executor.run` (switch, body, call to an in-memory connector, reply);
- python:   the same body and reply written by hand.

Prints microseconds per event and the ratios engine / hand-written (targets: the template within 2x,
the whole `Executor.run` under 4x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import timeit
from pathlib import Path
from typing import Any

from engine.config.root import load_project
from engine.errors import ExpressionError
from engine.pipeline.executor import Executor
from engine.pipeline.steps.call import CallStep
from engine.pipeline.steps.switch import SwitchStep

ROOT = Path(__file__).resolve().parent / "config"
PIPELINE = "bench.operation"

EVENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "config" / "operation-add.json").read_text(encoding="utf-8")
)
"""The seed 001 Operation "add" event every contender maps (shared by the benchmarks)."""


def handwritten(event: dict[str, Any], variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The production-report body and the reply, written directly in Python."""
    if event["type"] != "add":
        raise ValueError(f"Unknown Operation event type {event['type']}")
    centre = event["workCenterCode"]
    centres = variables["work_centres"]
    if centre not in centres:
        raise ExpressionError(f"no entry {centre!r} in the lookup table")
    invalid = event.get("invalidQty")
    body = {
        "SERIALNAME": event["workorderNumber"],
        "PARTNAME": event["sku"],
        "ACTNAME": event["actCode"],
        "WORKCNAME": centres[centre],
        "QUANT": event["validQty"],
        "SQUANT": invalid if invalid else 0,
        "SERNUM": event.get("serial"),
        "DETAILS": f"Next Plus {event['workorderNumber']}/{event['actCode']} pos {event['position']}",
    }
    report = {"FORM": 12, "KLINE": 1, **body}
    return body, {"externalId": str(report["FORM"])}


class _Response:
    __slots__ = ("result", "verified")

    def __init__(self, result: Any) -> None:
        self.result = result
        self.verified = False


class _MemoryConnector:
    """Answers every request at once with a Priority-like record; no HTTP. It has what a call step
    reads of a connector: its name, operations, retry deadline, `safe_to_repeat` and `request`."""

    name = "priority"

    class config:  # noqa: N801 - mimics the connector's `config` attribute
        operations: dict[str, Any] = {}

        class retry:  # noqa: N801
            deadline = 30.0

    def safe_to_repeat(self, method: str, idempotent: bool | None = None, key: str | None = None) -> bool:
        return idempotent if idempotent is not None else method.upper() in {"GET", "HEAD", "PUT", "DELETE"}

    async def request(  # the signature of `Connector.request`
        self,
        method: str,
        path: str,
        *,
        query: Any = None,
        headers: Any = None,
        body: Any = None,
        paginate: bool = False,
        deadline: float | None = None,
        idempotent: bool | None = None,
        verify: Any = None,
        idempotency_key: str | None = None,
    ) -> _Response:
        return _Response({"FORM": 12, "KLINE": 1, **(body or {})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500, help="events per timed run")
    parser.add_argument("--repeat", type=int, default=201, help="timed runs; the best counts")
    args = parser.parse_args()

    project = load_project(ROOT)
    if not project.ok:
        raise SystemExit("\n".join(str(d) for d in project.diagnostics))
    pipeline = project.pipelines[PIPELINE].pipeline
    variables = project.variables_for(PIPELINE)
    switch = pipeline.steps[0]
    assert isinstance(switch, SwitchStep)
    call = switch.cases["add"][0]
    assert isinstance(call, CallStep) and call.body is not None
    body_template = call.body
    reply_template = pipeline.reply.body
    assert reply_template is not None

    context = {"event": EVENT, "vars": variables}
    expected_body, expected_reply = handwritten(EVENT, variables)
    assert body_template.render(context) == expected_body, body_template.render(context)

    executor = Executor(pipeline, {"priority": _MemoryConnector()}, variables)  # type: ignore[dict-item]
    loop = asyncio.new_event_loop()
    outcome = loop.run_until_complete(executor.run(EVENT))
    assert outcome.ok and outcome.body == expected_reply, outcome

    def engine_template() -> None:
        ctx = {"event": EVENT, "vars": variables}
        body = body_template.render(ctx)
        ctx["report"] = {"FORM": 12, "KLINE": 1, **body}
        reply_template.render(ctx)

    async def executor_batch(n: int) -> None:
        for _ in range(n):
            await executor.run(EVENT)

    def python() -> None:
        handwritten(EVENT, variables)

    def engine_executor() -> None:
        loop.run_until_complete(executor_batch(args.number))

    # the contenders take turns, run by run, so a busy moment of the shared machine hits all of them
    runs: dict[str, list[float]] = {"template": [], "executor": [], "python": []}
    for _ in range(args.repeat):
        runs["template"].append(timeit.timeit(engine_template, number=args.number))
        runs["executor"].append(timeit.timeit(engine_executor, number=1))
        runs["python"].append(timeit.timeit(python, number=args.number))
    per_template, per_executor, per_python = (min(runs[name]) / args.number for name in runs)
    loop.close()

    rows = [
        ("engine Template (body + reply)", per_template),
        ("engine Executor.run (no HTTP)", per_executor),
        ("hand-written Python", per_python),
    ]
    print(f"transform: Operation add -> ALINE_ONE body, {args.number} events x best of {args.repeat}")
    print(f"{'contender':<34} {'us/event':>10} {'events/s':>12}")
    for name, seconds in rows:
        print(f"{name:<34} {seconds * 1e6:>10.2f} {1 / seconds:>12,.0f}")
    print(f"ratio Template / hand-written:  {per_template / per_python:.2f}x  (target <= 2x)")
    print(f"ratio Executor / hand-written:  {per_executor / per_python:.2f}x  (target < 4x)")


if __name__ == "__main__":
    main()
