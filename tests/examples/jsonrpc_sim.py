"""A JSON-RPC 2.0 service in the style of Odoo's external API, for `examples/jsonrpc/`.

    POST /jsonrpc   {"jsonrpc": "2.0", "method": "call", "params": {"service", "method", "args"}, "id"}

Services, as Odoo's "External API" documentation describes them:

    common.version()                                -> {"server_version": "17.0", ...}
    common.login(db, login, password)               -> the user's id (a number), or false
    common.authenticate(db, login, password, env)   -> the same
    object.execute_kw(db, uid, password, model, method, args, kwargs)   -> the method's result

The models and ORM methods are `tests.examples.jsonrpc_orm`'s. Every answer is HTTP 200 with
`{"jsonrpc": "2.0", "id": <the request's id>}` and either `result` or `error`:

    {"code": 200, "message": "Odoo Server Error",
     "data": {"name": "odoo.exceptions.AccessDenied", "message": "Access Denied", "arguments": [...],
              "context": {}, "debug": "Traceback (most recent call last): ..."}}

A body that is not JSON is HTTP 400 (werkzeug's Bad Request page).

ASSUMPTION (simulator only): a login opens a grant that ends after `session_requests` execute_kw
calls or `session_seconds` seconds (`PUT /_admin/session`); execute_kw then answers AccessDenied until
the client logs in again. Odoo itself checks the password on every call and keeps no session at
/jsonrpc; the grant stands for credentials the server stops accepting mid-run, so a client's
re-login is exercised.

Admin routes (besides `sandbox.base`'s): `PUT /_admin/session {"requests", "seconds"}`,
`PUT /_admin/paging {"ignore_offset": true}` (every offset answers the first page), and
`POST /_admin/write {"model", "ids", "values"}` (a change made in the ERP, which moves `write_date`).

Run it on its own: `python -m tests.examples.jsonrpc_sim [--port 8621] [--size 40]`.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.base import ADMIN_PREFIX, Faults, Simulator, seeded
from tests.examples.jsonrpc_orm import Database, OdooError

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "JsonRpcSimulator", "create_app"]

NAME = "jsonrpc"
DEFAULT_PORT = 8621
CREDENTIALS = {"db": "mesbridge", "login": "admin", "password": "sandbox-admin-pw"}
VERSION = {
    "server_version": "17.0",
    "server_version_info": [17, 0, 0, "final", 0, ""],
    "server_serie": "17.0",
    "protocol_version": 1,
}
FIRST_WRITE = datetime(2026, 11, 20, 6, 0, 0)
PRODUCTS = [
    ("FG-100", "Control cabinet"),
    ("FG-200", "Pump assembly"),
    ("FG-300", "Sensor head"),
    ("SA-110", "Wiring harness"),
    ("SA-120", "Front panel"),
]
WORKCENTERS = [("ASSY", "Assembly line"), ("TEST", "Test bench"), ("PACK", "Packing")]
OPEN_STATES = ("confirmed", "progress", "to_close")


def _error(request_id: Any, name: str, message: str) -> JSONResponse:
    debug = f"Traceback (most recent call last):\n  ...\n{name}: {message}"
    data = {"name": name, "debug": debug, "message": message, "arguments": [message], "context": {}}
    error = {"code": 200, "message": "Odoo Server Error", "data": data}
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error})


class JsonRpcSimulator(Simulator):
    """One database: its users, login grants and manufacturing records."""

    name = NAME

    def __init__(
        self,
        *,
        size: int = 40,
        seed: int = 0,
        faults: Faults | None = None,
        session_requests: int | None = None,
        session_seconds: float | None = None,
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed = size, seed
        self.session_requests, self.session_seconds = session_requests, session_seconds
        self.users = {CREDENTIALS["login"]: {"uid": 2, "password": CREDENTIALS["password"]}}
        self.logins = 0
        self.rejected = 0
        self._load()

    def _load(self) -> None:
        self.db = seed_database(self.size, self.seed)
        self.grants: dict[int, dict[str, float]] = {}

    def reset(self) -> None:
        super().reset()
        self.logins = self.rejected = 0
        self._load()

    def state(self, request: Request) -> dict[str, Any]:
        return {
            "logins": self.logins,
            "rejected": self.rejected,
            "productions": len(self.db.records["mrp.production"]),
            "time_logs": list(self.db.records["mrp.workcenter.productivity"].values()),
        }

    # -- authentication -----------------------------------------------------------------------
    def _login(self, args: list[Any]) -> Any:
        if len(args) < 3:
            raise OdooError(
                "builtins.TypeError", f"login() takes 3 positional arguments but {len(args)} were given"
            )
        db, login, password = args[:3]
        if db != CREDENTIALS["db"]:
            raise OdooError("psycopg2.OperationalError", f'FATAL:  database "{db}" does not exist')
        user = self.users.get(login)
        if user is None or user["password"] != password:
            return False
        self.logins += 1
        self.grants[user["uid"]] = {"issued": self.clock(), "calls": 0}
        return user["uid"]

    def _check(self, db: Any, uid: Any, password: Any) -> None:
        """Odoo's per-call credential check, plus the simulated end of a login's grant."""
        user = next((u for u in self.users.values() if u["uid"] == uid), None)
        grant = self.grants.get(uid) if isinstance(uid, int) and not isinstance(uid, bool) else None
        if db != CREDENTIALS["db"] or user is None or user["password"] != password or grant is None:
            raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")
        grant["calls"] += 1
        seconds = self.session_seconds if self.session_seconds is not None else self.faults.token_ttl
        over_calls = self.session_requests is not None and grant["calls"] > self.session_requests
        over_time = seconds is not None and self.clock() - grant["issued"] >= seconds
        if over_calls or over_time:
            del self.grants[uid]
            self.rejected += 1
            raise OdooError("odoo.exceptions.AccessDenied", "Access Denied")

    # -- the endpoint -------------------------------------------------------------------------
    def _dispatch(self, params: Any) -> Any:
        if not isinstance(params, dict):
            raise OdooError("builtins.TypeError", "params must be an object")
        service, method, args = params.get("service"), params.get("method"), params.get("args", [])
        if not isinstance(args, list):
            raise OdooError("builtins.TypeError", "args must be a list")
        if service == "common":
            if method == "version":
                return VERSION
            if method in ("login", "authenticate"):
                return self._login(args)
            raise OdooError(
                "builtins.AttributeError", f"module 'odoo.service.common' has no attribute 'exp_{method}'"
            )
        if service == "object":
            if method != "execute_kw":
                raise OdooError("builtins.NameError", f"Method not available {method}")
            if len(args) < 6:
                raise OdooError(
                    "builtins.TypeError",
                    f"execute_kw() takes at least 6 positional arguments ({len(args)} given)",
                )
            db, uid, password, model, name, margs = args[:6]
            kwargs = args[6] if len(args) > 6 else {}
            self._check(db, uid, password)
            if not isinstance(margs, list) or not isinstance(kwargs, dict):
                raise OdooError("builtins.TypeError", "execute_kw() args must be a list and kwargs an object")
            return self.db.call(model, name, margs, kwargs, uid)
        raise OdooError("builtins.KeyError", repr(service))

    async def endpoint(self, request: Request) -> Response:
        raw = await request.body()
        try:
            envelope = json.loads(raw)
        except ValueError:
            return Response(
                "<!doctype html>\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n"
                "<p>Invalid JSON data</p>\n",
                status_code=400,
                media_type="text/html",
            )
        request_id = envelope.get("id") if isinstance(envelope, dict) else None
        try:
            if not isinstance(envelope, dict):
                raise OdooError("werkzeug.exceptions.BadRequest", "Invalid JSON-RPC data")
            result = self._dispatch(envelope.get("params"))
        except OdooError as exc:
            return _error(request_id, exc.name, exc.message)
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})

    # -- admin --------------------------------------------------------------------------------
    async def put_session(self, request: Request) -> Response:
        data = await request.json()
        self.session_requests = data.get("requests")
        self.session_seconds = data.get("seconds")
        return JSONResponse({"requests": self.session_requests, "seconds": self.session_seconds})

    async def put_paging(self, request: Request) -> Response:
        data = await request.json()
        self.db.ignore_offset = bool(data.get("ignore_offset"))
        return JSONResponse({"ignore_offset": self.db.ignore_offset})

    async def post_write(self, request: Request) -> Response:
        data = await request.json()
        try:
            self.db.write(data["model"], data["ids"], data["values"])
        except OdooError as exc:
            return JSONResponse({"error": exc.message}, status_code=422)
        return JSONResponse(self.db.read(data["model"], data["ids"]))

    def admin_routes(self) -> list[BaseRoute]:
        return [
            *super().admin_routes(),
            Route(f"{ADMIN_PREFIX}/session", self.put_session, methods=["PUT"]),
            Route(f"{ADMIN_PREFIX}/paging", self.put_paging, methods=["PUT"]),
            Route(f"{ADMIN_PREFIX}/write", self.post_write, methods=["POST"]),
        ]

    def routes(self) -> list[BaseRoute]:
        return [Route("/jsonrpc", self.endpoint, methods=["POST"])]

    def is_write(self, scope: Scope, body: bytes) -> bool:
        """Only ORM writes: every call is a POST, and a login or a read changes nothing."""
        try:
            params = json.loads(body).get("params", {})
            method = params["args"][4]
        except (ValueError, AttributeError, KeyError, IndexError, TypeError):
            return False
        return params.get("service") == "object" and method in ("create", "write", "unlink")

    def error_response(self, request: Request) -> Response:
        # Outside the JSON-RPC dispatch (a crashed worker) the server answers werkzeug's 500 page.
        return Response(
            "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n",
            status_code=500,
            media_type="text/html",
        )


def seed_database(size: int, seed: int) -> Database:
    """Products, work centres, a productive loss type, and `size` manufacturing orders that are not
    drafts (confirmed, in progress, to close or done) plus two drafts, each with its work orders.
    `write_date` rises with the order number, two orders sharing each second."""
    rng = seeded(seed, NAME, "productions")
    db = Database()
    products = [
        db.add("product.product", {"name": n, "default_code": c, "type": "product"}) for c, n in PRODUCTS
    ]
    centres = [db.add("mrp.workcenter", {"name": n, "code": c}) for c, n in WORKCENTERS]
    db.add("mrp.workcenter.productivity.loss", {"name": "Reduced speed", "loss_type": "performance"})
    db.add("mrp.workcenter.productivity.loss", {"name": "Productive", "loss_type": "productive"})
    for i in range(size + 2):
        stamp = (FIRST_WRITE + timedelta(seconds=i // 2)).strftime("%Y-%m-%d %H:%M:%S")
        state = "draft" if i >= size else rng.choice([*OPEN_STATES, "confirmed", "done"])
        product = rng.choice(products)
        production = db.add(
            "mrp.production",
            {
                "name": f"WH/MO/{i + 1:05d}",
                "product_id": product["id"],
                "product_qty": float(rng.randint(1, 20)),
                "state": state,
                "date_start": (FIRST_WRITE + timedelta(days=rng.randint(0, 9))).strftime("%Y-%m-%d 07:00:00"),
                "origin": f"S{rng.randint(10000, 99999)}" if rng.random() < 0.5 else False,
            },
            when=stamp,
        )
        steps = centres if product["default_code"].startswith("FG") else centres[:2]
        for centre in steps:
            db.add(
                "mrp.workorder",
                {
                    "name": {"ASSY": "Assembly", "TEST": "Testing", "PACK": "Packing"}[centre["code"]],
                    "production_id": production["id"],
                    "workcenter_id": centre["id"],
                    "state": "done" if state == "done" else "ready",
                    "qty_production": production["product_qty"],
                    "qty_produced": production["product_qty"] if state == "done" else 0.0,
                    "duration_expected": 30.0,
                },
                when=stamp,
            )
    db._link("mrp.workorder", {})
    return db


def create_app(*, size: int = 40, seed: int = 0, faults: Faults | None = None, **session: Any) -> Starlette:
    """The simulator app; `app.state.simulator` is the `JsonRpcSimulator`."""
    return JsonRpcSimulator(size=size, seed=seed, faults=faults, **session).app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--size", type=int, default=40, help="manufacturing orders that are not drafts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--session-requests", type=int, default=None, help="calls a login's grant lasts")
    args = parser.parse_args()
    app = create_app(size=args.size, seed=args.seed, session_requests=args.session_requests)
    print(f"jsonrpc simulator on http://127.0.0.1:{args.port}/jsonrpc  ({json.dumps(CREDENTIALS)})")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
