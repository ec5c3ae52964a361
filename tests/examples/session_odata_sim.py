"""A session-cookie OData service in the style of SAP Business One's Service Layer (`b1s/v1`), for
`examples/session-odata/`.

    POST /b1s/v1/Login {CompanyDB, UserName, Password}
         -> 200 {"odata.metadata", "SessionId", "Version", "SessionTimeout" (minutes)}
            Set-Cookie: B1SESSION=<SessionId>; HttpOnly   and   Set-Cookie: ROUTEID=.node<n>; path=/b1s
    POST /b1s/v1/Logout                                      -> 204
    GET  /b1s/v1/ProductionOrders[?$filter,$select,$orderby,$top,$skip]   server-driven paging
    GET  /b1s/v1/ProductionOrders(<AbsoluteEntry>)
    POST /b1s/v1/InventoryGenEntries                         a receipt from production -> 201, the document
    GET  /b1s/v1/InventoryGenEntries(<DocEntry>)
    POST /b1s/v1/InventoryGenEntries(<DocEntry>)/Cancel      -> 204

Every other request carries the cookies `B1SESSION` (and `ROUTEID`, which picks the node that holds
the session). A missing, unknown or expired session is HTTP 401
`{"error": {"code": 301, "message": {"lang": "en-us", "value": "Invalid session."}}}`; every error has
that shape (OData v3 JSON, as `b1s/v1` answers).

Paging: a listing answers at most `odata.maxpagesize` records (the `Prefer` header; 20 by default, 0 for
all), echoed in `Preference-Applied`, and names the rest with `"odata.nextLink": "ProductionOrders?...
&$skip=20"`, relative to the service root and keeping the request's other options.

A receipt from production is `{"DocumentLines": [{"BaseType": 202, "BaseEntry": <AbsoluteEntry>,
"Quantity": q, "TransactionType": "botrntComplete" | "botrntReject"}], ...}`; it adds to the order's
CompletedQuantity or RejectedQuantity. Cancelling it marks it `Cancelled: "tYES"` (CancelStatus
csCancelled), adds the cancellation document (csCancellation) and takes the quantities back.

ASSUMPTIONS (marked in the code too): the texts and codes of errors other than "Invalid session." and
"No matching records found (ODBC -2028)"; `UpdateDate` on ProductionOrders; the field names of
`ProductionOrdersStages`; the sessions' end after `session_requests` requests or `session_seconds`
seconds (`PUT /_admin/session`) rather than after the idle `SessionTimeout`.

Run it on its own: `python -m tests.examples.session_odata_sim [--port 8611] [--size 45]`.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from datetime import date, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.base import ADMIN_PREFIX, Faults, Simulator, seeded
from sandbox.odata import ODataError, apply_query, parse_key, parse_query

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "SessionODataSimulator", "create_app"]

NAME = "session_odata"
DEFAULT_PORT = 8611
BASE = "/b1s/v1"
CREDENTIALS = {"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "sandbox-b1-pw"}
VERSION = "1000190"
SESSION_TIMEOUT = 30  # minutes, the Service Layer default
DEFAULT_PAGE_SIZE = 20
RECEIPT_FROM_PRODUCTION = 202  # BaseType: the production order object
ORDER_FIELDS = (
    "AbsoluteEntry",
    "DocumentNumber",
    "Series",
    "ItemNo",
    "ProductDescription",
    "ProductionOrderStatus",
    "ProductionOrderType",
    "PlannedQuantity",
    "CompletedQuantity",
    "RejectedQuantity",
    "PostingDate",
    "DueDate",
    "StartDate",
    "Warehouse",
    "Remarks",
    "ProductionOrderOriginNumber",
    "UpdateDate",  # ASSUMPTION: the order's last-change date (OWOR.UpdateDate) is exposed
    "ProductionOrderLines",
    "ProductionOrdersStages",
)
RECEIPT_FIELDS = (
    "DocEntry",
    "DocNum",
    "DocDate",
    "Comments",
    "JournalMemo",
    "Cancelled",
    "CancelStatus",
    "DocumentStatus",
    "DocumentLines",
)
ITEMS = [
    ("P10001", "Control cabinet", True),
    ("P10002", "Pump assembly", True),
    ("S20001", "Wiring harness", False),
]
COMPONENTS = ["C30001", "C30002", "C30003", "C30004", "C30005"]
STAGES = ["Assembly", "Testing", "Packing"]
_ROUTE = re.compile(r"^\.node\d+$")


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": {"lang": "en-us", "value": message}}}, status)


def invalid_session() -> JSONResponse:
    return _error(401, 301, "Invalid session.")


def not_found() -> JSONResponse:
    return _error(404, -2028, "No matching records found (ODBC -2028)")


class _Schema:
    def __init__(self, fields: dict[str, tuple[str, ...]]) -> None:
        self._fields = fields

    def fields(self, form: str) -> tuple[str, ...]:
        return self._fields[form]

    def subforms(self, form: str) -> tuple[str, ...]:
        return ()


SCHEMA = _Schema({"ProductionOrders": ORDER_FIELDS, "InventoryGenEntries": RECEIPT_FIELDS})


def _odata_error(exc: ODataError, entity: str) -> JSONResponse:
    """The parser's refusal in the Service Layer's words (ASSUMPTION: code -1000 and the wording)."""
    unknown = re.match(r"Could not find a property named '([^']+)'", exc.message)
    if unknown:
        return _error(400, -1000, f"Property '{unknown.group(1)}' of '{entity}' is invalid")
    return _error(400, -1000, exc.message.replace("Priority.OData.", ""))


class SessionODataSimulator(Simulator):
    """One company database: sessions, production orders and receipts from production."""

    name = NAME

    def __init__(
        self,
        *,
        size: int = 45,
        seed: int = 0,
        faults: Faults | None = None,
        session_requests: int | None = None,
        session_seconds: float | None = None,
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed = size, seed
        self.session_requests, self.session_seconds = session_requests, session_seconds
        self.logins = 0
        self.expired = 0
        self._load()

    def _load(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.orders = {o["AbsoluteEntry"]: o for o in seed_orders(self.size, self.seed)}
        self.receipts: dict[int, dict[str, Any]] = {}
        self._next_doc = 1
        self._routes = 0

    def reset(self) -> None:
        super().reset()
        self.logins = self.expired = 0
        self._load()

    def state(self, request: Request) -> dict[str, Any]:
        return {
            "logins": self.logins,
            "expired": self.expired,
            "orders": len(self.orders),
            "receipts": list(self.receipts.values()),
        }

    # -- sessions -----------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, -1000, "Invalid request body")  # ASSUMPTION: wording
        if body.get("CompanyDB") != CREDENTIALS["CompanyDB"]:
            # ASSUMPTION: the code and wording of an unknown company database.
            return _error(401, -304, "Fail to get DB Credentials from SLD")
        if body.get("UserName") != CREDENTIALS["UserName"] or body.get("Password") != CREDENTIALS["Password"]:
            return _error(401, 100000027, "Login failed")  # ASSUMPTION: code and wording
        session_id = str(uuid.uuid4())
        self._routes += 1
        route = f".node{self._routes % 2 + 1}"
        self.sessions[session_id] = {"issued": self.clock(), "requests": 0, "route": route}
        self.logins += 1
        reply = JSONResponse(
            {
                "odata.metadata": f"{request.base_url}b1s/v1/$metadata#B1Sessions/@Element",
                "SessionId": session_id,
                "Version": VERSION,
                "SessionTimeout": SESSION_TIMEOUT,
            }
        )
        reply.raw_headers.append((b"set-cookie", f"B1SESSION={session_id}; HttpOnly;".encode()))
        reply.raw_headers.append((b"set-cookie", f"ROUTEID={route}; path=/b1s".encode()))
        return reply

    def _session(self, request: Request) -> str | None:
        """The live session the request's cookies name, counted; None when it is missing or over."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(request.headers.get("cookie", ""))
        except CookieError:
            return None
        session_id = jar["B1SESSION"].value if "B1SESSION" in jar else None
        session = self.sessions.get(session_id or "")
        if session is None:
            return None
        # ASSUMPTION: behind the load balancer, a request without its ROUTEID reaches a node that does
        # not hold the session.
        route = jar["ROUTEID"].value if "ROUTEID" in jar else None
        if route != session["route"] or not _ROUTE.match(route or ""):
            return None
        session["requests"] += 1
        seconds = self.session_seconds if self.session_seconds is not None else self.faults.token_ttl
        over_requests = self.session_requests is not None and session["requests"] > self.session_requests
        over_time = seconds is not None and self.clock() - session["issued"] >= seconds
        if over_requests or over_time:
            del self.sessions[str(session_id)]
            self.expired += 1
            return None
        return session_id

    async def logout(self, request: Request) -> Response:
        session_id = self._session(request)
        if session_id is None:
            return invalid_session()
        del self.sessions[session_id]
        return Response(status_code=204)

    # -- production orders --------------------------------------------------------------------
    def _page_size(self, request: Request) -> int | None:
        prefer = request.headers.get("prefer", "")
        match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
        if match is None:
            return DEFAULT_PAGE_SIZE
        size = int(match.group(1))
        return None if size == 0 else size

    async def list_orders(self, request: Request) -> Response:
        if self._session(request) is None:
            return invalid_session()
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        try:
            query = parse_query(params, "ProductionOrders", SCHEMA)
        except ODataError as exc:
            return _odata_error(exc, "ProductionOrder")
        rows, _ = apply_query(sorted(self.orders.values(), key=lambda o: o["AbsoluteEntry"]), query)
        # `$skip` is applied by apply_query; the page size cuts what is left and names the next page.
        size = self._page_size(request)
        page = rows if size is None else rows[:size]
        body: dict[str, Any] = {
            "odata.metadata": f"{request.base_url}b1s/v1/$metadata#ProductionOrders",
            "value": [_select(o, query.select) for o in page],
        }
        if size is not None and len(rows) > size:
            kept = [
                f"{quote(k, safe='$')}={quote(v, safe=_QUERY_SAFE)}"
                for k, v in params.items()
                if k != "$skip"
            ]
            body["odata.nextLink"] = "ProductionOrders?" + "&".join([*kept, f"$skip={query.skip + size}"])
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if "prefer" in request.headers else {}
        return JSONResponse(body, headers=headers)

    def _key(self, request: Request) -> int | None:
        try:
            (key,) = parse_key(request.path_params["key"], ["DocEntry"])
        except ODataError:
            return None
        return key if isinstance(key, int) else None

    async def get_order(self, request: Request) -> Response:
        if self._session(request) is None:
            return invalid_session()
        order = self.orders.get(self._key(request) or -1)
        return JSONResponse(order) if order else not_found()

    # -- receipts from production --------------------------------------------------------------
    async def add_receipt(self, request: Request) -> Response:
        if self._session(request) is None:
            return invalid_session()
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(400, -1000, "Invalid request body")
        lines = body.get("DocumentLines") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not lines:
            return _error(400, -5002, "Document must have at least one row")  # ASSUMPTION: wording
        effects: list[tuple[dict[str, Any], str, float]] = []
        for index, line in enumerate(lines):
            if not isinstance(line, dict) or line.get("BaseType") != RECEIPT_FROM_PRODUCTION:
                return _error(400, -5002, f"Line {index + 1}: a receipt from production names BaseType 202")
            order = self.orders.get(line.get("BaseEntry"))  # type: ignore[arg-type]
            if order is None:
                return not_found()
            if order["ProductionOrderStatus"] != "boposReleased":
                # ASSUMPTION: the code and wording of a receipt against an order that is not released.
                return _error(400, -5002, f"Production order {order['DocumentNumber']} is not released")
            quantity = line.get("Quantity")
            kind = line.get("TransactionType", "botrntComplete")
            if not isinstance(quantity, int | float) or isinstance(quantity, bool) or quantity <= 0:
                return _error(400, -5002, f"Line {index + 1}: enter a positive quantity")  # ASSUMPTION
            if kind not in ("botrntComplete", "botrntReject"):
                return _error(400, -1000, f"Line {index + 1}: invalid TransactionType '{kind}'")
            effects.append((order, kind, float(quantity)))
        for order, kind, quantity in effects:
            order["CompletedQuantity" if kind == "botrntComplete" else "RejectedQuantity"] += quantity
            order["UpdateDate"] = date.today().isoformat()
        document = self._document(body, [dict(line) for line in lines], effects, "csNo")
        return JSONResponse(
            {
                "odata.metadata": f"{request.base_url}b1s/v1/$metadata#InventoryGenEntries/@Element",
                **document,
            },
            status_code=201,
        )

    def _document(
        self, body: dict[str, Any], lines: list[dict[str, Any]], effects: list[Any], status: str
    ) -> dict[str, Any]:
        entry = self._next_doc
        self._next_doc += 1
        document_lines = [
            {
                "LineNum": n,
                "ItemCode": order["ItemNo"],
                "Quantity": quantity,
                "BaseType": RECEIPT_FROM_PRODUCTION,
                "BaseEntry": order["AbsoluteEntry"],
                "BaseLine": None,
                "TransactionType": kind,
                "WarehouseCode": line.get("WarehouseCode") or order["Warehouse"],
            }
            for n, (line, (order, kind, quantity)) in enumerate(zip(lines, effects, strict=True))
        ]
        document = {
            "DocEntry": entry,
            "DocNum": 1000 + entry,
            "DocDate": body.get("DocDate") or date.today().isoformat(),
            "Comments": body.get("Comments"),
            "JournalMemo": "Receipt from Production",
            "Cancelled": "tNO",
            "CancelStatus": status,
            "DocumentStatus": "bost_Close",
            "DocumentLines": document_lines,
        }
        self.receipts[entry] = document
        return document

    async def get_receipt(self, request: Request) -> Response:
        if self._session(request) is None:
            return invalid_session()
        document = self.receipts.get(self._key(request) or -1)
        if document is None:
            return not_found()
        params = dict(parse_qsl(request.url.query))
        try:
            query = parse_query(params, "InventoryGenEntries", SCHEMA)
        except ODataError as exc:
            return _odata_error(exc, "Document")
        return JSONResponse(_select(document, query.select))

    async def cancel_receipt(self, request: Request) -> Response:
        if self._session(request) is None:
            return invalid_session()
        document = self.receipts.get(self._key(request) or -1)
        if document is None:
            return not_found()
        if document["Cancelled"] == "tYES" or document["CancelStatus"] == "csCancellation":
            # ASSUMPTION: the code and wording of cancelling a cancelled document.
            return _error(400, -5002, "Document is already cancelled")
        effects = []
        for line in document["DocumentLines"]:
            order = self.orders[line["BaseEntry"]]
            field = "CompletedQuantity" if line["TransactionType"] == "botrntComplete" else "RejectedQuantity"
            order[field] -= line["Quantity"]
            order["UpdateDate"] = date.today().isoformat()
            effects.append((order, line["TransactionType"], line["Quantity"]))
        document["Cancelled"], document["CancelStatus"] = "tYES", "csCancelled"
        self._document(
            {"Comments": f"Cancellation of {document['DocNum']}"},
            [{}] * len(effects),
            effects,
            "csCancellation",
        )
        return Response(status_code=204)

    # -- admin and wiring ---------------------------------------------------------------------
    async def put_session(self, request: Request) -> Response:
        data = await request.json()
        self.session_requests = data.get("requests")
        self.session_seconds = data.get("seconds")
        return JSONResponse({"requests": self.session_requests, "seconds": self.session_seconds})

    def admin_routes(self) -> list[BaseRoute]:
        return [*super().admin_routes(), Route(f"{ADMIN_PREFIX}/session", self.put_session, methods=["PUT"])]

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{BASE}/Login", self.login, methods=["POST"]),
            Route(f"{BASE}/Logout", self.logout, methods=["POST"]),
            Route(f"{BASE}/ProductionOrders", self.list_orders, methods=["GET"]),
            Route(BASE + "/ProductionOrders({key})", self.get_order, methods=["GET"]),
            Route(f"{BASE}/InventoryGenEntries", self.add_receipt, methods=["POST"]),
            Route(BASE + "/InventoryGenEntries({key})", self.get_receipt, methods=["GET"]),
            Route(BASE + "/InventoryGenEntries({key})/Cancel", self.cancel_receipt, methods=["POST"]),
        ]

    def is_write(self, scope: Scope, body: bytes) -> bool:
        return super().is_write(scope, body) and not scope["path"].endswith(("/Login", "/Logout"))

    def error_response(self, request: Request) -> Response:
        # ASSUMPTION: an internal failure in the Service Layer's own error shape.
        return _error(500, -1, "Internal error")


_QUERY_SAFE = "$'(),:/*@!"


def _select(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return dict(record) if fields is None else {name: record[name] for name in fields}


def seed_orders(size: int, seed: int) -> list[dict[str, Any]]:
    """`size` production orders: most released, some planned or closed, each with component lines and
    routing stages; `UpdateDate` spread over the days before 2026-11-20."""
    rng = seeded(seed, NAME, "orders")
    orders = []
    for i in range(size):
        item, description, finished = ITEMS[i % len(ITEMS)]
        entry = 100 + i
        quantity = float(rng.randint(1, 12))
        status = "boposReleased" if i % 6 else rng.choice(["boposPlanned", "boposClosed"])
        stages = STAGES if finished else STAGES[:2]
        lines = [
            {
                "DocumentAbsoluteEntry": entry,
                "LineNumber": n,
                "ItemNo": component,
                "ItemType": "pit_Item",
                "BaseQuantity": float(rng.randint(1, 4)),
                "PlannedQuantity": 0.0,
                "IssuedQuantity": 0.0,
                "ProductionOrderIssueType": rng.choice(["im_Manual", "im_Backflush"]),
                "Warehouse": "01",
                "StageID": 1,
            }
            for n, component in enumerate(rng.sample(COMPONENTS, 2))
        ]
        for line in lines:
            line["PlannedQuantity"] = line["BaseQuantity"] * quantity
        orders.append(
            {
                "AbsoluteEntry": entry,
                "DocumentNumber": 5000 + i,
                "Series": 23,
                "ItemNo": item,
                "ProductDescription": description,
                "ProductionOrderStatus": status,
                "ProductionOrderType": "bopotStandard",
                "PlannedQuantity": quantity,
                "CompletedQuantity": 0.0,
                "RejectedQuantity": 0.0,
                "PostingDate": "2026-11-02",
                "DueDate": (date(2026, 11, 20) + timedelta(days=rng.randint(1, 20))).isoformat(),
                "StartDate": "2026-11-18",
                "Warehouse": "01",
                "Remarks": None,
                "ProductionOrderOriginNumber": 700 + i if i % 3 == 0 else None,
                "UpdateDate": (date(2026, 11, 20) - timedelta(days=(size - i) // 10)).isoformat(),
                "ProductionOrderLines": lines,
                # ASSUMPTION: the field names of the routing stages.
                "ProductionOrdersStages": [
                    {"DocEntry": entry, "StageID": n + 1, "SequenceNumber": n + 1, "Name": name}
                    for n, name in enumerate(stages)
                ],
            }
        )
    return orders


def create_app(*, size: int = 45, seed: int = 0, faults: Faults | None = None, **session: Any) -> Starlette:
    """The simulator app; `app.state.simulator` is the `SessionODataSimulator`."""
    return SessionODataSimulator(size=size, seed=seed, faults=faults, **session).app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--size", type=int, default=45, help="production orders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--session-requests", type=int, default=None, help="requests a session lasts")
    args = parser.parse_args()
    app = create_app(size=args.size, seed=args.seed, session_requests=args.session_requests)
    print(f"session-odata simulator on http://127.0.0.1:{args.port}{BASE}  ({json.dumps(CREDENTIALS)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
