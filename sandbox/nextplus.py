"""Next Plus MES simulator: LoopBack 3 login and access tokens, the Workorders REST model, and the
Integration Builder (an `IntegrationBuilder` that posts operator events to the ERP side).

Routes (LoopBack 3 style, see ERP-FACTS "Next Plus"):

    POST  {login_path}                 default /api/Users/login, {username|email, password}
    POST  /api/Workorders/             create (seed 000 payload), 422 ValidationError
    GET   /api/Workorders?filter=      LoopBack filter: where (eq, inq, nin, gt/gte/lt/lte, neq,
                                       between, like, and/or), order, limit, skip
    GET   /api/Workorders/count?where= {"count": n}
    GET   /api/Workorders/{id}         404 MODEL_NOT_FOUND
    PATCH /api/Workorders/{id}         partial update, validated as a whole
    PUT   /_admin/integration          {"source", "urls": {"device", "item_attach", "operation"}}
    POST  /_admin/shift                {"seed", "extra": [actions]}: script and play an operator shift
                                       (then the extra actions), returns the summary
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.base import ADMIN_PREFIX, Faults, Simulator, seeded
from sandbox.emitter import IntegrationBuilder
from sandbox.loopback import (
    FilterError,
    ValidationFailure,
    apply_filter,
    error_response,
    match_where,
    parse_filter,
)
from sandbox.nextplus_schema import SERVER_KEYS, validate_workorder
from sandbox.shift import Action, play_shift, script_shift

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "NextPlusSimulator", "create_app"]

NAME = "nextplus"
DEFAULT_PORT = 8601
CREDENTIALS = {"username": "api", "password": "api-secret"}
LOGIN_PATH = "/api/Users/login"
DEFAULT_TTL = 1209600  # LoopBack 3 default, also named by the vendor's JS SDK
SOURCE = "ERP"  # the work-order source the seeded ERP work orders carry
MODEL = "Workorder"

_TOKEN_CHARS = string.ascii_letters + string.digits


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _uuid(rng: Any) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class NextPlusSimulator(Simulator):
    """Users, access tokens and work orders of one Next Plus instance, plus its Integration Builder."""

    name = NAME

    def __init__(
        self,
        *,
        size: int = 6,
        seed: int = 0,
        faults: Faults | None = None,
        login_path: str = LOGIN_PATH,
        token_ttl: int = DEFAULT_TTL,
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed = size, seed
        self.login_path = login_path
        self.token_ttl = token_ttl
        self.integration: IntegrationBuilder | None = None
        self.shifts: list[dict[str, Any]] = []
        self._load()

    # -- data -----------------------------------------------------------------------------------
    def _load(self) -> None:
        rng = seeded(self.seed, NAME, "ids")
        # ASSUMPTION: only users with the "API" checkbox may call the REST API (seed 000); the
        # operator can log in but is refused with 403 ACCESS_DENIED.
        self.users: dict[str, dict[str, Any]] = {}
        for username, password, api in (
            (CREDENTIALS["username"], CREDENTIALS["password"], True),
            ("supervisor", "supervisor-secret", True),
            ("operator", "operator-secret", False),
        ):
            uid = _uuid(rng)
            self.users[uid] = {
                "id": uid,
                "username": username,
                "email": f"{username}@sandbox.nextplus.local",
                "password": password,
                "api": api,
            }
        self.tokens: dict[str, dict[str, Any]] = {}
        self.workorders: dict[str, dict[str, Any]] = {}
        # workorderNumber -> ids, and each id's creation position: number lookups (the engine's
        # find-by-number and the uniqueness check) without scanning every work order.
        self._by_number: dict[Any, dict[str, None]] = {}
        self._position: dict[str, int] = {}
        self._ids = rng
        for record in seed_workorders(self.size, self.seed):
            self._store(record)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        now = _now_iso()
        # ASSUMPTION: ids are UUIDs (the Integration Builder's `workorderId` is one) and records
        # carry createdAt/updatedAt, which ERP-side polling can filter on.
        record = {**body, "id": _uuid(self._ids), "createdAt": now, "updatedAt": now}
        self.workorders[record["id"]] = record
        self._position[record["id"]] = len(self._position)
        self._index(record["id"], None, record.get("workorderNumber"))
        return record

    def _index(self, wid: str, old: Any, new: Any) -> None:
        """Move `wid` from number `old` to number `new` in the number index."""
        if old == new and old is not None:
            return
        if old is not None and isinstance(old, str):
            ids = self._by_number.get(old, {})
            ids.pop(wid, None)
            if not ids:
                self._by_number.pop(old, None)
        if isinstance(new, str):
            self._by_number.setdefault(new, {})[wid] = None

    def _numbered(self, number: str) -> list[dict[str, Any]]:
        """The work orders with this number, in creation order."""
        ids = sorted(self._by_number.get(number, ()), key=self._position.__getitem__)
        return [self.workorders[wid] for wid in ids]

    def reset(self) -> None:
        super().reset()
        self.integration = None
        self.shifts = []
        self._load()

    def state(self, request: Request) -> dict[str, Any]:
        return {
            "users": [{k: v for k, v in u.items() if k != "password"} for u in self.users.values()],
            "tokens": len(self.tokens),
            "workorders": list(self.workorders.values()),
            "integration": self.integration.snapshot() if self.integration else None,
            "shifts": self.shifts,
        }

    # -- auth -----------------------------------------------------------------------------------
    def ttl(self) -> int:
        return int(self.faults.token_ttl) if self.faults.token_ttl is not None else self.token_ttl

    def _token_of(self, request: Request) -> str | None:
        token = request.query_params.get("access_token") or request.headers.get("x-access-token")
        if not token:
            token = request.headers.get("authorization")
            # ~ LoopBack 3 strips an OAuth-style "Bearer " prefix; unverified for Next Plus, so the
            # raw token and "Bearer <token>" are both accepted.
            if token and token.startswith("Bearer "):
                token = token[7:]
        return token or None

    def authorize(self, request: Request) -> Response | None:
        """None when the request carries a live token of an API user, else LoopBack's error reply."""
        token_id = self._token_of(request)
        token = self.tokens.get(token_id) if token_id else None
        if token is None:
            # An unknown token is treated as no token at all (LoopBack 3).
            return error_response(401, "Authorization Required", "AUTHORIZATION_REQUIRED")
        if self.clock() - token["issued"] >= token["ttl"]:
            # ~ LoopBack 3 deletes an expired token when it meets it: the next call with it gets
            # AUTHORIZATION_REQUIRED instead of INVALID_TOKEN.
            self.tokens.pop(str(token_id), None)
            return error_response(401, "Invalid Access Token", "INVALID_TOKEN")
        if not self.users[token["userId"]]["api"]:
            return error_response(403, "Access Denied", "ACCESS_DENIED")
        return None

    async def login(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        name, email, password = body.get("username"), body.get("email"), body.get("password")
        if not name and not email:
            return error_response(400, "username or email is required", "USERNAME_EMAIL_REQUIRED")
        for user in self.users.values():
            if (name and user["username"] == name) or (email and user["email"] == email):
                if user["password"] == password:
                    break
        else:
            return error_response(401, "login failed", "LOGIN_FAILED")
        token_id = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(64))
        ttl = self.ttl()
        self.tokens[token_id] = {"userId": user["id"], "issued": self.clock(), "ttl": ttl}
        return JSONResponse({"id": token_id, "ttl": ttl, "created": _now_iso(), "userId": user["id"]})

    # -- work orders ----------------------------------------------------------------------------
    def _unique(self, body: dict[str, Any], errors: ValidationFailure, own_id: str | None = None) -> None:
        # ASSUMPTION: a second work order with the same number is refused like LoopBack's
        # validatesUniquenessOf: 422 ValidationError, code "uniqueness", "is not unique".
        number = body.get("workorderNumber")
        if isinstance(number, str) and any(wid != own_id for wid in self._by_number.get(number, ())):
            errors.add("workorderNumber", "is not unique", "uniqueness", number)

    async def _json_body(self, request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            return _BAD_JSON

    async def create(self, request: Request) -> Response:
        if denied := self.authorize(request):
            return denied
        body = await self._json_body(request)
        if body is _BAD_JSON:
            return error_response(400, "Unexpected token in JSON", "INVALID_JSON", name="SyntaxError")
        errors = ValidationFailure(MODEL)
        validate_workorder(body, errors)
        if not errors:
            self._unique(body, errors)
        if errors:
            return errors.response()
        clean = {k: v for k, v in body.items() if k not in SERVER_KEYS}
        return JSONResponse(self._store(clean))

    async def find(self, request: Request) -> Response:
        if denied := self.authorize(request):
            return denied
        try:
            flt = parse_filter(request.query_params.get("filter"))
            where = flt.get("where")
            number = where.get("workorderNumber") if isinstance(where, dict) else None
            # An equality on workorderNumber narrows the rows through the index; the full filter
            # still applies to them, so the answer is the same as scanning every work order.
            records = self._numbered(number) if isinstance(number, str) else list(self.workorders.values())
            rows = apply_filter(records, flt)
        except FilterError as exc:
            return error_response(400, str(exc), "INVALID_FILTER")
        return JSONResponse(rows)

    async def count(self, request: Request) -> Response:
        if denied := self.authorize(request):
            return denied
        try:
            where = parse_filter(request.query_params.get("where"))
        except FilterError as exc:
            return error_response(400, str(exc), "INVALID_FILTER")
        return JSONResponse({"count": sum(match_where(w, where) for w in self.workorders.values())})

    def _missing(self, wid: str) -> Response:
        return error_response(404, f'Unknown "{MODEL}" id "{wid}".', "MODEL_NOT_FOUND")

    async def find_by_id(self, request: Request) -> Response:
        if denied := self.authorize(request):
            return denied
        wid = request.path_params["id"]
        record = self.workorders.get(wid)
        return JSONResponse(record) if record else self._missing(wid)

    async def patch(self, request: Request) -> Response:
        if denied := self.authorize(request):
            return denied
        wid = request.path_params["id"]
        record = self.workorders.get(wid)
        if record is None:
            return self._missing(wid)
        body = await self._json_body(request)
        if body is _BAD_JSON or not isinstance(body, dict):
            return error_response(400, "Unexpected token in JSON", "INVALID_JSON", name="SyntaxError")
        merged = {**record, **{k: v for k, v in body.items() if k not in SERVER_KEYS}}
        errors = ValidationFailure(MODEL)
        validate_workorder(merged, errors)
        if not errors:
            self._unique(merged, errors, own_id=wid)
        if errors:
            return errors.response()
        merged["updatedAt"] = _now_iso()
        self.workorders[wid] = merged
        self._index(wid, record.get("workorderNumber"), merged.get("workorderNumber"))
        return JSONResponse(merged)

    # -- integration builder admin ----------------------------------------------------------------
    async def put_integration(self, request: Request) -> Response:
        data = await request.json()
        self.integration = IntegrationBuilder(
            source=data["source"],
            urls=data.get("urls", {}),
            seed=self.seed,
            timeout=float(data.get("timeout", 10.0)),
        )
        return JSONResponse(self.integration.snapshot())

    async def post_shift(self, request: Request) -> Response:
        if self.integration is None:
            return JSONResponse({"error": "configure PUT /_admin/integration first"}, status_code=409)
        data = await request.json() if await request.body() else {}
        workorders = list(self.workorders.values())
        actions = script_shift(workorders, seed=int(data.get("seed", self.seed)))
        try:
            actions += [Action.from_dict(extra) for extra in data.get("extra") or []]
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"invalid extra action: {exc}"}, status_code=422)
        summary = await play_shift(self.integration, workorders, actions)
        self.shifts.append(summary.to_dict())
        return JSONResponse(summary.to_dict())

    def admin_routes(self) -> list[BaseRoute]:
        return [
            *super().admin_routes(),
            Route(f"{ADMIN_PREFIX}/integration", self.put_integration, methods=["PUT"]),
            Route(f"{ADMIN_PREFIX}/shift", self.post_shift, methods=["POST"]),
        ]

    def routes(self) -> list[BaseRoute]:
        return [
            Route(self.login_path, self.login, methods=["POST"]),
            Route("/api/Workorders", self.create, methods=["POST"]),
            Route("/api/Workorders/", self.create, methods=["POST"]),
            Route("/api/Workorders", self.find, methods=["GET"]),
            Route("/api/Workorders/count", self.count, methods=["GET"]),
            Route("/api/Workorders/{id}", self.find_by_id, methods=["GET"]),
            Route("/api/Workorders/{id}", self.patch, methods=["PATCH"]),
        ]

    def is_write(self, scope: Scope, body: bytes) -> bool:
        return super().is_write(scope, body) and scope["path"] != self.login_path

    def error_response(self, request: Request) -> Response:
        return error_response(500, "Internal Server Error", "INTERNAL_ERROR")


_BAD_JSON = object()


def seed_workorders(size: int, seed: int) -> list[dict[str, Any]]:
    """`size` ERP work orders: even ones finished goods (serial-managed) whose kit holds the next,
    odd one's sub-assembly; every fifth has another source, which the Integration Builder ignores."""
    rng = seeded(seed, NAME, "workorders")
    routing = [("ASSY", "Asamblare", "WC-10"), ("TEST", "Testare", "WC-20"), ("PACK", "Ambalare", "WC-30")]
    out: list[dict[str, Any]] = []
    for i in range(size):
        number = f"WO-{1000 + i}"
        finished = i % 2 == 0
        sku = f"FG-{100 + i}" if finished else f"SA-{100 + i}"
        quantity = rng.randint(1, 3)
        kit: list[dict[str, Any]] = [
            {
                "sku": f"RM-{rng.randint(1, 9):03d}",
                "quantity": rng.randint(2, 8),
                "unit": "pcs",
                "act": "ASSY",
                "issuedToKit": False,
                "manualIssue": False,
                "issuedQuantity": 0,
                "serials": [],
                "lotNumbers": [{"sku": "", "lotNumber": f"LOT-{rng.randint(100, 999)}", "quantity": 10}],
            },
            {
                "sku": f"SC-{rng.randint(1, 9):03d}",
                "quantity": 1,
                "unit": "pcs",
                "act": "ASSY",
                "issuedToKit": False,
                "manualIssue": False,
                "issuedQuantity": 0,
                "serials": [{"sku": "", "serial": f"SC-SN-{rng.randint(10000, 99999)}"}],
                "lotNumbers": [],
            },
        ]
        if finished and i + 1 < size:
            kit.append(
                {
                    "sku": f"SA-{101 + i}",
                    "quantity": 1,
                    "unit": "pcs",
                    "act": "ASSY",
                    "issuedToKit": False,
                    "manualIssue": False,
                    "issuedQuantity": 0,
                    "serials": [],
                    "lotNumbers": [],
                }
            )
        steps = routing if finished else routing[:2]
        out.append(
            {
                "sku": sku,
                "quantity": quantity,
                "workorderNumber": number,
                "source": SOURCE if i % 5 != 4 else "MANUAL",
                "name": number,
                "partDesc": f"Produs {sku}",
                "kitItems": kit,
                "generatedSerials": [
                    {"serial": f"SN-{1000 + i}-{n + 1}", "otherId": ""} for n in range(quantity)
                ]
                if finished
                else [],
                "releasedAt": "2025-02-18T06:00:00.000Z",
                "expectedDate": "2025-02-20T14:00:00.000Z",
                "erpStatus": "Released",
                "erpClosed": False,
                "priority": rng.randint(0, 3),
                "customer": {
                    "accountNumber": f"C{rng.randint(100, 999)}",
                    "accountName": "Client Sandbox SRL",
                },
                "project": {"description": "", "projectNumber": ""},
                "externalId": f"ERP-WO-{1000 + i}" if i % 3 != 2 else "",
                "_actions": [
                    {
                        "actCode": code,
                        "actDesc": desc,
                        "workCenter": wc,
                        "workCenterCode": wc,
                        "position": 10 * (n + 1),
                        "otherId": 500 + 10 * i + n,
                    }
                    for n, (code, desc, wc) in enumerate(steps)
                ],
            }
        )
    return out


def create_app(*, size: int = 6, seed: int = 0, faults: Faults | None = None) -> Starlette:
    """The Next Plus simulator app; `app.state.simulator` is the `NextPlusSimulator`."""
    return NextPlusSimulator(size=size, seed=seed, faults=faults).app
