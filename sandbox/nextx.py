"""NextX Open Platform simulator (seed 003; ERP-FACTS "NextX").

    POST /api/auth/token            {"grant_type": "client_credentials", client_id, client_secret,
                                     "scope": "public.api"}; also GET with query parameters (seed)
    GET  /api/branch/branch
    GET  /api/product/product       page (from 0), pageLimit (default 15, max 100), branch_id required
    POST /api/product/product       name and branch_id required; code/sku generated when blank
    GET  /api/product/product-detail?variation_id=&branch_id=
    GET|POST /api/customer/customer, GET /api/customer/customer/{id}
    GET|POST /api/purchase/purchase, GET /api/purchase/purchase-by-code/{code}   (receipt: stock +)
    GET|POST /api/sell/sell, GET /api/sell/sell/{id}                              (sale: stock -)

Manufacturing: seed 003 documents no production API. Receipts through purchases would book produced
goods as bought from a supplier, so the simulator adds, in the same REST style (ASSUMPTION, all):

    GET  /api/production/order?page&pageLimit&branch_id&updated_from   orders to poll
         [{id, code, product_id, variation_id, product_code, quantity, produced_qty, rejected_qty,
           status, branch_id, customer_id, start_date, end_date, updated_at,
           components [{product_id, product_code, quantity}],
           operations [{code, name, work_center, position}]}]
    POST /api/production/report {order_code, quantity, rejected_quantity?, operation_code?, serial?}
         the last operation adds finished stock; over-reporting is refused (422)
    POST /api/production/consumption {order_code, branch_id, products [{product_id, quantity, serial?}]}
    DELETE /api/production/report/{id}, DELETE /api/production/consumption/{id}
         withdraw a report or consumption (stock effects reversed; kept with "reversed": true); 404
         when unknown, 422 when already reversed

Envelope `{"meta": {"message", "status_code"}, "data": ...}`. No token: 401 `{"message":
"Unauthenticated."}` (seed); expired or unknown token: 401 meta "Token expired" (seed). A 500
(faults `error_rate`, `apply_then_error`): meta "Server Error", status_code 500 (ASSUMPTION).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.base import Faults, Simulator, seeded
from sandbox.nextx_data import Invalid, NextXStore, seed_store

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "NextXSimulator", "create_app"]

NAME = "nextx"
DEFAULT_PORT = 8604
CREDENTIALS = {"client_id": "mesbridge-demo", "client_secret": "nextx-demo-secret"}
DEFAULT_TTL = 3600
MAX_PAGE_LIMIT = 100
TOKEN_PATH = "/api/auth/token"


def envelope(data: Any, message: str = "Success", status: int = 200) -> JSONResponse:
    # ASSUMPTION: success replies carry meta.status_code 200 (the sell reply shows 200).
    body = {"meta": {"message": message, "status_code": status}, "data": data}
    return JSONResponse(body, status_code=status)


def invalid(exc: Invalid) -> JSONResponse:
    # ASSUMPTION: the seed shows no validation error; Laravel-style 422 inside the envelope.
    return JSONResponse(
        {"meta": {"message": exc.message, "status_code": 422}, "data": {"errors": exc.errors}},
        status_code=422,
    )


class NextXSimulator(Simulator):
    """One NextX tenant: OAuth client-credentials tokens and its store."""

    name = NAME

    def __init__(
        self, *, size: int = 20, seed: int = 0, faults: Faults | None = None, token_ttl: float = DEFAULT_TTL
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed, self.token_ttl = size, seed, token_ttl
        self._load()

    def _load(self) -> None:
        self.store: NextXStore = seed_store(self.size, self.seed)
        self.tokens: dict[str, float] = {}
        self._rng = seeded(self.seed, NAME, "tokens")

    def reset(self) -> None:
        super().reset()
        self._load()

    def state(self, request: Request) -> dict[str, Any]:
        return {**self.store.snapshot(), "tokens": len(self.tokens)}

    def ttl(self) -> float:
        return self.faults.token_ttl if self.faults.token_ttl is not None else self.token_ttl

    async def token(self, request: Request) -> Response:
        if request.method == "GET":
            body: Any = dict(request.query_params)
        else:
            try:
                body = await request.json()
            except ValueError:
                body = {}
        body = body if isinstance(body, dict) else {}
        ok = (
            body.get("grant_type") == "client_credentials"
            and body.get("scope") == "public.api"
            and body.get("client_id") == CREDENTIALS["client_id"]
            and body.get("client_secret") == CREDENTIALS["client_secret"]
        )
        if not ok:
            # The seed's reply: meta.status_code 1. ASSUMPTION: on HTTP 401.
            return JSONResponse(
                {"meta": {"message": "Incorrect credentials", "status_code": 1}, "data": []}, status_code=401
            )
        token = secrets.token_hex(20)
        ttl = self.ttl()
        self.tokens[token] = self.clock() + ttl
        # ASSUMPTION: the seed shows no successful reply; OAuth fields inside the usual envelope.
        return envelope({"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)})

    def denied(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return JSONResponse({"message": "Unauthenticated."}, status_code=401)
        token = header[7:].strip()
        expiry = self.tokens.get(token)
        if expiry is None or self.clock() >= expiry:
            # The seed: "If the token is expired or invalid ... 401 ... Token expired".
            return JSONResponse(
                {"meta": {"message": "Token expired", "status_code": 401}, "data": []}, status_code=401
            )
        return None

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def paging(request: Request) -> tuple[int, int]:
        q = request.query_params
        try:
            page = int(q.get("page", 0) or 0)
            limit = int(q.get("pageLimit", 15) or 15)
        except ValueError:
            raise Invalid("The page and pageLimit must be integers.", "pageLimit") from None
        if page < 0 or limit < 1:
            raise Invalid("The page must be at least 0 and pageLimit at least 1.", "pageLimit")
        # ASSUMPTION: a pageLimit over the documented max of 100 is clamped to 100, not refused.
        return page, min(limit, MAX_PAGE_LIMIT)

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> JSONResponse:
        page, limit = self.paging(request)
        return envelope(rows[page * limit : (page + 1) * limit])

    def handler(self, fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if denied := self.denied(request):
                return denied
            try:
                body = await request.json() if request.method in ("POST", "PUT") else {}
            except ValueError:
                return invalid(Invalid("The request body is not valid JSON.", "body"))
            try:
                return await fn(request, body if isinstance(body, dict) else {})
            except Invalid as exc:
                return invalid(exc)
            except KeyError as exc:
                return envelope([], f"{exc.args[0]} not found", 404)

        return endpoint

    # -- resources ------------------------------------------------------------------------------
    async def branches(self, request: Request, body: Any) -> Response:
        return envelope(list(self.store.branches.values()))

    async def products(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            return envelope(self.store.add_product(body), "Product created successfully")
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        return self._page(
            request,
            self.store.product_rows(
                branch, request.query_params.get("strSearch"), request.query_params.getlist("type[]")
            ),
        )

    async def product_detail(self, request: Request, body: Any) -> Response:
        q = request.query_params
        branch = self.store.branch_param(q.get("branch_id"))
        return envelope(self.store.product_detail(q.get("variation_id"), branch))

    async def customers(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            self.store.add_customer(body)
            return envelope(self.store.customers[max(self.store.customers)], "Customer created successfully")
        term = (request.query_params.get("sttsearch") or "").strip().lower()
        rows = [
            c
            for c in self.store.customers.values()
            if not term or term in f"{c['name']} {c['code']} {c['mobile']}".lower()
        ]
        return self._page(request, rows)

    async def customer(self, request: Request, body: Any) -> Response:
        return envelope(self.store.get("customers", request.path_params["id"]))

    async def purchases(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            return envelope(self.store.add_order("purchase", body), "Purchase order created successfully")
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        return self._page(request, [p for p in self.store.purchases.values() if p["branch_id"] == branch])

    async def purchase_by_code(self, request: Request, body: Any) -> Response:
        code = request.path_params["code"]
        found = next((p for p in self.store.purchases.values() if p["invoice_no"] == code), None)
        if found is None:
            raise KeyError("Purchase order")
        return envelope(found)

    async def sells(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            return envelope(self.store.add_order("sell", body), "Sale order created successfully")
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        return self._page(request, [s for s in self.store.sells.values() if s["branch_id"] == branch])

    async def sell(self, request: Request, body: Any) -> Response:
        return envelope(self.store.get("sells", request.path_params["id"]))

    async def production_orders(self, request: Request, body: Any) -> Response:
        since = request.query_params.get("updated_from")
        branch = request.query_params.get("branch_id")
        rows = sorted(self.store.orders.values(), key=lambda o: (o["updated_at"], o["id"]))
        rows = [
            o
            for o in rows
            if (not since or o["updated_at"] > since) and (not branch or str(o["branch_id"]) == branch)
        ]
        return self._page(request, rows)

    async def production_report(self, request: Request, body: Any) -> Response:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return envelope(self.store.report(body, stamp), "Production report created successfully")

    async def consumption(self, request: Request, body: Any) -> Response:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return envelope(self.store.consume(body, stamp), "Consumption created successfully")

    async def production_report_delete(self, request: Request, body: Any) -> Response:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return envelope(
            self.store.reverse_report(request.path_params["id"], stamp),
            "Production report reversed successfully",
        )

    async def consumption_delete(self, request: Request, body: Any) -> Response:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        return envelope(
            self.store.reverse_consumption(request.path_params["id"], stamp),
            "Consumption reversed successfully",
        )

    def is_write(self, scope: Scope, body: bytes) -> bool:
        return super().is_write(scope, body) and scope["path"] != TOKEN_PATH

    def error_response(self, request: Request) -> Response:
        # ASSUMPTION: Laravel's answer to an unhandled exception ("Server Error"), in the envelope.
        return envelope([], "Server Error", 500)

    def routes(self) -> list[BaseRoute]:
        h = self.handler
        return [
            Route(TOKEN_PATH, self.token, methods=["POST", "GET"]),
            Route("/api/branch/branch", h(self.branches), methods=["GET"]),
            Route("/api/product/product", h(self.products), methods=["GET", "POST"]),
            Route("/api/product/product-detail", h(self.product_detail), methods=["GET"]),
            Route("/api/customer/customer", h(self.customers), methods=["GET", "POST"]),
            Route("/api/customer/customer/{id}", h(self.customer), methods=["GET"]),
            Route("/api/purchase/purchase", h(self.purchases), methods=["GET", "POST"]),
            Route("/api/purchase/purchase-by-code/{code}", h(self.purchase_by_code), methods=["GET"]),
            Route("/api/sell/sell", h(self.sells), methods=["GET", "POST"]),
            Route("/api/sell/sell/{id}", h(self.sell), methods=["GET"]),
            Route("/api/production/order", h(self.production_orders), methods=["GET"]),
            Route("/api/production/report", h(self.production_report), methods=["POST"]),
            Route("/api/production/consumption", h(self.consumption), methods=["POST"]),
            Route("/api/production/report/{id}", h(self.production_report_delete), methods=["DELETE"]),
            Route("/api/production/consumption/{id}", h(self.consumption_delete), methods=["DELETE"]),
        ]


def create_app(*, size: int = 20, seed: int = 0, faults: Faults | None = None) -> Starlette:
    """The NextX simulator app; `app.state.simulator` is the `NextXSimulator`."""
    return NextXSimulator(size=size, seed=seed, faults=faults).app
