"""NextX Open Platform simulator (seed 003; ERP-FACTS "NextX").

    POST /api/auth/token            {"grant_type": "client_credentials", client_id, client_secret,
                                     "scope": "public.api"}; also GET with query parameters (seed)
    GET  /api/branch/branch
    GET  /api/product/product       page (from 0), pageLimit (default 15, max 100), branch_id required
    POST /api/product/product       name and branch_id required; code/sku generated when blank
    GET  /api/product/product-detail?variation_id=&branch_id=
    GET|POST /api/customer/customer, GET /api/customer/customer/{id}
    GET|POST /api/purchase/purchase, GET /api/purchase/purchase-by-code/{code},
         PUT /api/purchase/update-shipping/{id}
    GET|POST /api/sell/sell, GET /api/sell/sell/{id}
    GET|POST /api/sell-return/sell-return

Replies as seed 003 prints them: a list is a bare JSON array (line 1264) and a record a bare object
(product detail line 1585, sell detail line 3673, purchase by code line 3204); a sell answers
`{"status_code": 200, "message"}` (line 3635), a purchase `{"message", "data": <the order sent>}`
(line 3109), neither with an id; a sell return echoes the return (line 3981); update-shipping echoes
`{comment, shipping_status}` (line 3340). The product detail names its product `product_name`.
Errors use the `{"meta": {"message", "status_code"}, "data": []}` envelope the seed shows for 401:
no token: 401 `{"message": "Unauthenticated."}`; expired or unknown token: 401 meta "Token expired".

Accepted or answered beyond the seed (ASSUMPTION, each):

- the token's successful reply `{"meta", "data": {"access_token", "token_type", "expires_in"}}`;
- validation errors: 422 `{"meta": {"message", "status_code": 422}, "data": {"errors"}}` (Laravel
  style); an unknown record: 404 meta "<record> not found"; a 500: meta "Server Error";
- a product detail's composition is the list `computations` with a `quantity` per part;
- list filters as the seed names them (customer_id, from_date, to_date, strSearch); strSearch matches
  what the seed says it does, the name, code or SKU of a line's product, and not an invoice number;
- a sell needs stock; a purchase adds stock when created; update-shipping to `cancelled` takes it back;
- a sell return names its sell in `transaction_id` and returns at most what was sold;
- `invoice_no` is unique per kind, generated (HD, PN, TH + number) when blank;
- the internal customer 7 and supplier 8 (production consumption and finished goods) are seeded.
"""

from __future__ import annotations

import secrets
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


def meta(message: str, status: int, data: Any = None) -> JSONResponse:
    """The `{meta, data}` envelope of the seed's error replies."""
    body = {"meta": {"message": message, "status_code": status}, "data": [] if data is None else data}
    return JSONResponse(body, status_code=status)


def invalid(exc: Invalid) -> JSONResponse:
    # ASSUMPTION: the seed shows no validation error; Laravel-style 422 inside the envelope.
    return meta(exc.message, 422, {"errors": exc.errors})


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
        data = {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)}
        return JSONResponse({"meta": {"message": "Success", "status_code": 200}, "data": data})

    def denied(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return JSONResponse({"message": "Unauthenticated."}, status_code=401)
        token = header[7:].strip()
        expiry = self.tokens.get(token)
        if expiry is None or self.clock() >= expiry:
            # The seed: "If the token is expired or invalid ... 401 ... Token expired".
            return meta("Token expired", 401)
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
        return JSONResponse(rows[page * limit : (page + 1) * limit])

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
                return meta(f"{exc.args[0]} not found", 404)

        return endpoint

    # -- resources ------------------------------------------------------------------------------
    async def branches(self, request: Request, body: Any) -> Response:
        return JSONResponse(list(self.store.branches.values()))

    async def products(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            return JSONResponse(self.store.add_product(body))
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        q = request.query_params
        return self._page(request, self.store.product_rows(branch, q.get("strSearch"), q.getlist("type[]")))

    async def product_detail(self, request: Request, body: Any) -> Response:
        q = request.query_params
        branch = self.store.branch_param(q.get("branch_id"))
        return JSONResponse(self.store.product_detail(q.get("variation_id"), branch))

    async def customers(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            self.store.add_customer(body)
            return JSONResponse({"status_code": 200, "message": "Customer created successfully"})
        term = (request.query_params.get("sttsearch") or "").strip().lower()
        rows = [
            c
            for c in self.store.customers.values()
            if not term or term in f"{c['name']} {c['code']} {c['mobile']}".lower()
        ]
        return self._page(request, rows)

    async def customer(self, request: Request, body: Any) -> Response:
        return JSONResponse(self.store.customer_detail(request.path_params["id"]))

    async def purchases(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            self.store.add_purchase(body)
            return JSONResponse({"message": "Purchase order created successfully", "data": body})
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        rows = [p for p in self.store.purchases.values() if p["branch_id"] == branch]
        return self._page(request, rows)

    async def purchase_by_code(self, request: Request, body: Any) -> Response:
        return JSONResponse(self.store.purchase_by_code(request.path_params["code"]))

    async def update_shipping(self, request: Request, body: Any) -> Response:
        return JSONResponse(self.store.update_shipping(request.path_params["id"], body))

    async def sells(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            self.store.add_sell(body)
            return JSONResponse({"status_code": 200, "message": "Sale order created successfully"})
        branch = self.store.branch_param(request.query_params.get("branch_id"))
        return self._page(request, self.store.sell_rows(branch, request.query_params))

    async def sell(self, request: Request, body: Any) -> Response:
        return JSONResponse(self.store.sell_detail(request.path_params["id"]))

    async def sell_returns(self, request: Request, body: Any) -> Response:
        if request.method == "POST":
            record = self.store.add_return(body)
            echo = {k: v for k, v in record.items() if k not in ("id", "sell_id")}
            return JSONResponse(echo)
        return self._page(request, self.store.return_rows(request.query_params))

    def is_write(self, scope: Scope, body: bytes) -> bool:
        return super().is_write(scope, body) and scope["path"] != TOKEN_PATH

    def error_response(self, request: Request) -> Response:
        # ASSUMPTION: Laravel's answer to an unhandled exception ("Server Error"), in the envelope.
        return meta("Server Error", 500)

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
            Route("/api/purchase/update-shipping/{id}", h(self.update_shipping), methods=["PUT"]),
            Route("/api/sell/sell", h(self.sells), methods=["GET", "POST"]),
            Route("/api/sell/sell/{id}", h(self.sell), methods=["GET"]),
            Route("/api/sell-return/sell-return", h(self.sell_returns), methods=["GET", "POST"]),
        ]


def create_app(*, size: int = 20, seed: int = 0, faults: Faults | None = None) -> Starlette:
    """The NextX simulator app; `app.state.simulator` is the `NextXSimulator`."""
    return NextXSimulator(size=size, seed=seed, faults=faults).app
