"""The simulator foundation: fault injection, the call log and the `/_admin/` routes.

A simulator is a `Simulator` subclass that supplies its routes, its state snapshot and the exact
answers its real system gives when it is down, failing or throttling. `Simulator.app` is a Starlette
app usable in-process (`httpx.ASGITransport`) or on a real port (`sandbox.serve`).

Faults are applied by an ASGI wrapper before a route runs, in this order: outage (`down` or a
window of `outages`), throttle, error rate, latency. Admin routes are never faulted nor logged.

Three faults act after the route instead, the way an ERP fails when it is hardest to recover from:
the request is handled normally (the record is saved, the call is logged with the route's status)
and then, whatever the route answered,

- `apply_then_error`: the reply is replaced by the system's own 500 (`error_response`);
- `apply_then_timeout`: no reply comes; the connection is held until the client gives up, and
  dropped after `timeout_hold` seconds or when the server stops;
- `reset_after_body`: the connection is reset at once, with no reply.

Each is a rate (0..1) drawn from the seeded RNG, one draw per eligible request; with `writes_only`
(the default) only writes are eligible (`Simulator.is_write`: POST, PUT, PATCH, DELETE, less a
system's sign-in). Dropping a connection needs the server's `sandbox.abort` ASGI extension, which
`sandbox.serve` provides; without it (`httpx.ASGITransport`, another server) the wrapper raises
ConnectionResetError instead, and the client sees what that transport makes of it.

Every simulator module exposes the same contract, which the `mesbridge sandbox` registry relies on::

    NAME: str
    DEFAULT_PORT: int
    CREDENTIALS: dict[str, str]
    def create_app(*, size: int, seed: int, faults: Faults | None) -> Starlette
    # app.state.simulator is the Simulator instance
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ABORT_EXTENSION", "ADMIN_PREFIX", "HARD_FAULTS", "WRITE_METHODS", "Faults", "Simulator", "seeded"]

ADMIN_PREFIX = "/_admin"
ABORT_EXTENSION = "sandbox.abort"
"""ASGI scope extension `{"abort": callable, "closing": asyncio.Event}`: `abort()` resets the
request's connection with no reply; `closing` is set when the server starts shutting down."""
HARD_FAULTS = ("apply_then_error", "apply_then_timeout", "reset_after_body")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_HEADERS = frozenset({"authorization", "cookie", "x-app-key", "x-api-key", "proxy-authorization"})
CALL_LOG_LIMIT = 10_000


@dataclass
class Faults:
    """Fault settings of one simulator; all off by default.

    `outages` are (start, end) windows in seconds since the app started; `down` is an outage
    switch. `error_rate` draws from `random.Random(seed)`, so a run is reproducible. `throttle` is
    a request limit per client per `throttle_window` seconds (60: Priority Cloud's per-minute
    limit). `token_ttl` is read by simulators that issue tokens (None: the system's own default).

    `apply_then_error`, `apply_then_timeout` and `reset_after_body` are rates of requests that are
    applied and then answered with a 500, never answered (for at most `timeout_hold` seconds), or
    reset; together at most 1. With `writes_only` they hit only writes.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    outages: list[tuple[float, float]] = field(default_factory=list)
    down: bool = False
    token_ttl: float | None = None
    throttle: int | None = None
    throttle_window: float = 60.0
    apply_then_error: float = 0.0
    apply_then_timeout: float = 0.0
    reset_after_body: float = 0.0
    writes_only: bool = True
    timeout_hold: float = 120.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.outages = [(float(a), float(b)) for a, b in self.outages]
        for name in ("error_rate", *HARD_FAULTS):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {rate}")
        if sum(self.hard_rates()) > 1.0:
            raise ValueError(f"{' + '.join(HARD_FAULTS)} must be at most 1, got {sum(self.hard_rates()):g}")
        if self.timeout_hold < 0:
            raise ValueError(f"timeout_hold must be >= 0 seconds, got {self.timeout_hold}")
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency}")
        if self.throttle is not None and self.throttle < 1:
            raise ValueError(f"throttle must be >= 1 request per window, got {self.throttle}")
        if self.throttle_window <= 0:
            raise ValueError(f"throttle_window must be > 0 seconds, got {self.throttle_window}")

    def hard_rates(self) -> tuple[float, float, float]:
        """The rates of `HARD_FAULTS`, in that order."""
        return self.apply_then_error, self.apply_then_timeout, self.reset_after_body

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Parse `latency=0.2,error_rate=0.1,down=1,throttle=100,token_ttl=5,outage=10-20`, also
        `apply_then_error=0.2,apply_then_timeout=0.1,reset_after_body=0.1,writes_only=0,timeout_hold=30`.

        `outage=START-END` may repeat; `outages=10-20;30-40` gives several at once.
        """
        values: dict[str, Any] = {}
        outages: list[tuple[float, float]] = []
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep:
                raise ValueError(f"fault {item!r} is not NAME=VALUE")
            if key in ("outage", "outages"):
                outages.extend(_window(w) for w in raw.split(";") if w.strip())
            else:
                values[key] = raw
        return cls.from_dict({**values, "outages": outages} if outages else values)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Faults | None = None) -> Faults:
        """Faults from a JSON-like dict, merged over `base` (keys not given keep their value)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        current = asdict(base) if base else {}
        for key, raw in data.items():
            current[key] = _coerce(key, raw)
        return cls(**current)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outages"] = [list(w) for w in self.outages]
        return data


def _window(text: str) -> tuple[float, float]:
    start, sep, end = text.strip().partition("-")
    if not sep:
        raise ValueError(f"outage window {text!r} is not START-END (seconds)")
    return float(start), float(end)


def _coerce(key: str, raw: Any) -> Any:
    if key == "outages":
        if isinstance(raw, str):
            return [_window(w) for w in raw.split(";") if w.strip()]
        return [tuple(w) for w in raw]
    if key in ("down", "writes_only"):
        if isinstance(raw, str):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return bool(raw)
    if key in ("token_ttl", "throttle"):
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "0", "off")):
            return None
        return float(raw) if key == "token_ttl" else int(raw)
    if key == "seed":
        return int(raw)
    return float(raw)


def seeded(seed: int, *salt: object) -> random.Random:
    """A `random.Random` derived from `seed` and a salt, so each data set is independent."""
    return random.Random(f"{seed}:" + ":".join(map(str, salt)))


class Simulator:
    """Base of every simulator: subclasses define `routes()`, `state()` and the fault answers."""

    name = "simulator"

    def __init__(self, *, faults: Faults | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.calls: deque[dict[str, Any]] = deque(maxlen=CALL_LOG_LIMIT)
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self.faults = faults or Faults()
        self._app: Starlette | None = None

    # -- faults ---------------------------------------------------------------------------------
    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._faults = value
        self._rng = random.Random(value.seed)
        self._hits.clear()

    def is_down(self) -> bool:
        """True while `down` is set or the clock is inside an outage window."""
        if self.faults.down:
            return True
        elapsed = self.clock() - self.started
        return any(start <= elapsed < end for start, end in self.faults.outages)

    def throttle_wait(self, client: str) -> int | None:
        """Seconds the client must wait when over the limit; else counts the request and returns None."""
        limit = self.faults.throttle
        if limit is None:
            return None
        now = self.clock()
        window = self.faults.throttle_window
        hits = self._hits[client]
        while hits and now - hits[0] >= window:
            hits.popleft()
        if len(hits) >= limit:
            return max(1, math.ceil(window - (now - hits[0])))
        hits.append(now)
        return None

    def draws_error(self) -> bool:
        rate = self.faults.error_rate
        return rate > 0 and self._rng.random() < rate

    def draws_hard_fault(self, scope: Scope, body: bytes) -> str | None:
        """Which of `HARD_FAULTS` this request meets after it is applied, if any (one seeded draw)."""
        rates = self.faults.hard_rates()
        if not any(rates) or (self.faults.writes_only and not self.is_write(scope, body)):
            return None
        draw = self._rng.random()
        for kind, rate in zip(HARD_FAULTS, rates, strict=True):
            if draw < rate:
                return kind
            draw -= rate
        return None

    def is_write(self, scope: Scope, body: bytes) -> bool:
        """True for a request that may change records; a system's sign-in is not one (it only
        issues a token, and failing it would keep a client from reaching any write)."""
        return scope["method"] in WRITE_METHODS

    # -- hooks a simulator overrides ------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """The system's own routes."""
        return []

    def state(self, request: Request) -> dict[str, Any]:
        """A snapshot of the records, for tests and demos (`GET /_admin/state`)."""
        return {}

    def reset(self) -> None:
        """Forget calls and throttle counters; subclasses also restore their seeded data."""
        self.calls.clear()
        self._hits.clear()
        self._rng = random.Random(self.faults.seed)
        self.started = self.clock()

    def client_id(self, scope: Scope) -> str:
        """Whom the throttle counts: the Authorization header, else the client address."""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                return value.decode("latin-1")
        client = scope.get("client")
        return str(client[0]) if client else "-"

    def outage_response(self, request: Request) -> Response:
        return Response("Service Unavailable", status_code=503, media_type="text/plain")

    def error_response(self, request: Request) -> Response:
        return JSONResponse({"error": "Internal Server Error"}, status_code=500)

    def throttle_response(self, request: Request, retry_after: int) -> Response:
        return Response(
            "Too Many Requests",
            status_code=429,
            media_type="text/plain",
            headers={"Retry-After": str(retry_after)},
        )

    # -- app -----------------------------------------------------------------------------------
    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = self.build_app()
        return self._app

    def build_app(self) -> Starlette:
        app = Starlette(routes=[*self.admin_routes(), *self.routes()])
        app.state.simulator = self
        app.add_middleware(_FaultMiddleware, simulator=self)
        return app

    def admin_routes(self) -> list[BaseRoute]:
        return [
            Route(f"{ADMIN_PREFIX}/faults", self._get_faults, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/faults", self._put_faults, methods=["PUT", "PATCH"]),
            Route(f"{ADMIN_PREFIX}/calls", self._get_calls, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/calls", self._delete_calls, methods=["DELETE"]),
            Route(f"{ADMIN_PREFIX}/state", self._get_state, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/reset", self._post_reset, methods=["POST"]),
        ]

    async def _get_faults(self, request: Request) -> Response:
        return JSONResponse(self.faults.to_dict())

    async def _put_faults(self, request: Request) -> Response:
        """PUT replaces the settings (missing keys reset to off); PATCH merges into the current ones."""
        try:
            data = await request.json()
            base = self.faults if request.method == "PATCH" else None
            self.faults = Faults.from_dict(data, base=base)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.faults.to_dict())

    async def _get_calls(self, request: Request) -> Response:
        return JSONResponse(list(self.calls))

    async def _delete_calls(self, request: Request) -> Response:
        self.calls.clear()
        return Response(status_code=204)

    async def _get_state(self, request: Request) -> Response:
        return JSONResponse(self.state(request))

    async def _post_reset(self, request: Request) -> Response:
        self.reset()
        return Response(status_code=204)

    def record(self, scope: Scope, body: bytes, status: int, fault: str | None = None) -> None:
        """Log a call; `status` is the route's own, `fault` the kind that replaced its reply."""
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k.decode("latin-1").lower() not in SECRET_HEADERS
        }
        call = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "body": _decode_body(body),
            "status": status,
            "time": round(self.clock() - self.started, 6),
        }
        if fault is not None:
            call["fault"] = fault
        self.calls.append(call)


def _decode_body(body: bytes) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class _FaultMiddleware:
    """Reads the body once, applies faults, runs the route, records the call (as its reply starts, so
    a caller that read the reply finds the call logged), then fails it if drawn."""

    def __init__(self, app: ASGIApp, simulator: Simulator) -> None:
        self.app = app
        self.sim = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        sim = self.sim
        status = 500
        replayed = False
        recorded = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
                sim.record(scope, body, status)  # before the caller can read the reply (and act on it)
                recorded = True
            await send(message)

        async def withhold(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        fault = self._fault(scope, replay)
        if fault is not None:
            await fault(scope, replay, capture)
            if not recorded:  # a fault that answers nothing
                sim.record(scope, body, status)
            return
        hard = sim.draws_hard_fault(scope, body)
        if sim.faults.latency > 0:
            await asyncio.sleep(sim.faults.latency)
        if hard is None:
            await self.app(scope, replay, capture)
            if not recorded:
                sim.record(scope, body, status)
            return
        await self.app(scope, replay, withhold)
        sim.record(scope, body, status, fault=hard)
        await self._fail_applied(hard, scope, receive, send)

    async def _fail_applied(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        """After the route ran: a 500 of the system's own, or no reply at all."""
        if kind == "apply_then_error":
            await self.sim.error_response(Request(scope, receive))(scope, receive, send)
            return
        server = scope.get("extensions", {}).get(ABORT_EXTENSION)
        if kind == "apply_then_timeout":
            closing = server["closing"] if server is not None else None
            if await _hold(receive, closing, self.sim.faults.timeout_hold):
                return  # the client gave up first
        if server is None:
            raise ConnectionResetError(f"{kind}: the server has no {ABORT_EXTENSION} to drop the connection")
        server["abort"]()
        # The server learns of the closed connection on its next loop turn; returning before then
        # would have it log an app that "returned without starting response".
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_disconnected(receive), 1.0)

    def _fault(self, scope: Scope, receive: Receive) -> Response | None:
        sim = self.sim
        request = Request(scope, receive)
        if sim.is_down():
            return sim.outage_response(request)
        wait = sim.throttle_wait(sim.client_id(scope))
        if wait is not None:
            return sim.throttle_response(request, wait)
        if sim.draws_error():
            return sim.error_response(request)
        return None


async def _hold(receive: Receive, closing: asyncio.Event | None, seconds: float) -> bool:
    """Hold a request unanswered: True when the client disconnects first, False when the server
    starts closing or `seconds` pass."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(_disconnected(receive))]
    if closing is not None:
        waits.append(asyncio.ensure_future(closing.wait()))
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return waits[0] in done


async def _disconnected(receive: Receive) -> None:
    """Wait until the client has closed the connection."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
