"""NextUp ERP simulator: the JSON-RPC `DoAction` web services (seed 002, ERP-FACTS "NextUp").

    POST /NextUpServices/Services/POST/     Content-Type text/plain only; any other: 200, empty body
    GET  /NextUpServices/Services/GET/{json}  the same call, URL-encoded in the path

Body `{"AuthenticationToken", "Method", "Params"}`; reply `{"Result", "Error"}`, business errors on
HTTP 200 as `{"Result": false, "Error": "..."}` (seed 002 lines 32-36). Tokens expire one hour after
login (seed 002 line 29). Documented operations (names: ERP-FACTS "Operations seen"; the shapes of the
sale documents: ERP-FACTS; every other parameter shape is the simulator's, marked):

    GetAuthenticationToken {UserName, Password, Database} -> "<32 lowercase hex>"   Logout {} -> true
    GetAllArticles {} / GetArticleByCode {Code}
    AddArticle {Code?, Name, BarCode?, CategoryId?, UnitOfMeasure?, VATRateId?, Price?} -> {Id, Code}
    UpdateArticle {Code, ...fields} -> true                                     (shape: ASSUMPTION)
    GetAllStocksForArticles {WarehouseId?} -> [{ArticleCode, WarehouseId, Quantity}]   (ASSUMPTION)
    GetStocksForArticleByCode {Code} -> [{WarehouseId, WarehouseName, Quantity}]       (ASSUMPTION)
    GetAllPartners {} / AddPartner {Name, FiscalCode?, ...} -> {Id, Code}
    AddOrUpdatePartner {FiscalCode, Name, ...} -> {Id, Code}
    AddSaleOrder / AddSaleInvoice / AddDeliveryNote {PartnerId, Date, Currency, WarehouseId,
        Lines: [{ArticleCode, Quantity, UnitPrice, VATRateId, WarehouseId}]} -> {Id, Number}
    AddDepositTransferNote {Date, SourceWarehouseId, DestinationWarehouseId,
        Lines: [{ArticleCode, Quantity}]} -> {Id, Number}          (shape: ASSUMPTION)
    InvalidateDocument {Id} -> true (reverses the stock effect; a second time: "... este deja anulat.")
    GetExchangeRate {Currency, Date?} -> {Currency, Date, Rate}

Accepted beyond the seed and ERP-FACTS (ASSUMPTION, each):

- `GetAllWarehouses {} -> [{Id, Name}]` (the name is not documented);
- a document line keeps any extra field it is sent, such as the `Serial` of a consumed component;
- the invented production operations of `nextup_production` (GetProductionOrders, AddProductionReport);
- the sandbox company's internal partner Id 1 ("Consum intern producție"), the consumption partner;
- every error text not quoted in ERP-FACTS; an unknown method answers HTTP 200
  `{"Result": false, "Error": "Metoda \"X\" nu exista."}`, as every business error.

Series: COM orders, FCT invoices, AVZ delivery notes, TRF transfers, RP production reports.

Faults (`sandbox.base`): a 500 (`error_rate`, `apply_then_error`) is HTTP 500 with an ASP.NET error
page (ASSUMPTION), not the HTTP 200 error envelope; only methods other than `Get...` and `Logout` are
writes for the apply-then faults.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from sandbox.base import Faults, Simulator
from sandbox.nextup_data import DATABASE, Company, NextUpError, seed_company
from sandbox.nextup_production import OPERATIONS as PRODUCTION
from sandbox.nextup_production import number_param, require, reverse_production

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "NextUpSimulator", "create_app"]

NAME = "nextup"
DEFAULT_PORT = 8603
CREDENTIALS = {"UserName": "demo_user", "Password": "Demo1234", "Database": DATABASE}
DEFAULT_TTL = 3600
TOKEN_ERROR = "AuthenticationToken lipseste, este invalid sau a expirat."
LOGIN_ERROR = "Invalid credentials."
BASE = "/NextUpServices/Services"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SERVER_ERROR_PAGE = (
    "<html><head><title>Runtime Error</title></head><body>"
    "<h1>Server Error in '/NextUpServices' Application.</h1><h2><i>Runtime Error</i></h2></body></html>"
)

Handler = Callable[[Company, dict[str, Any]], Any]


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"Result": result, "Error": None})


def _fail(message: str) -> JSONResponse:
    return JSONResponse({"Result": False, "Error": message})


# -- articles, partners, stock ---------------------------------------------------------------------
def add_article(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Name")
    code = p.get("Code") or ""
    if not code:
        # Code auto-generated when absent (ERP-FACTS); the ART- pattern is an ASSUMPTION.
        code = f"ART-{co.new_id():06d}"
    if code in co.articles:
        # ASSUMPTION: wording of the duplicate-code error.
        raise NextUpError(f'Exista deja un articol cu codul "{code}".')
    article = {
        "Id": co.new_id(),
        "Code": code,
        "Name": p["Name"],
        "BarCode": p.get("BarCode") or "",
        "CategoryId": p.get("CategoryId"),
        "UnitOfMeasure": p.get("UnitOfMeasure") or "buc",
        "VATRateId": p.get("VATRateId", 1),
        "Price": p.get("Price", 0),
        "Active": True,
    }
    co.articles[code] = article
    return {"Id": article["Id"], "Code": code}


def update_article(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Code")
    article = co.article(p["Code"])
    article.update({k: v for k, v in p.items() if k in article and k not in ("Id", "Code")})
    return True


def stocks_by_code(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Code")
    co.article(p["Code"])
    return [
        {"WarehouseId": w, "WarehouseName": co.warehouses[w]["Name"], "Quantity": q}
        for (c, w), q in sorted(co.stock.items())
        if c == p["Code"]
    ]


def all_stocks(co: Company, p: dict[str, Any]) -> Any:
    wid = p.get("WarehouseId")
    return [
        {"ArticleCode": c, "WarehouseId": w, "Quantity": q}
        for (c, w), q in sorted(co.stock.items())
        if wid in (None, w)
    ]


def _partner_record(co: Company, p: dict[str, Any], pid: int, code: str) -> dict[str, Any]:
    return {
        "Id": pid,
        "Code": code,
        "Name": p["Name"],
        "FiscalCode": p.get("FiscalCode") or "",
        "City": p.get("City") or "",
        "Country": p.get("Country") or "RO",
        "IsClient": p.get("IsClient", True),
        "IsSupplier": p.get("IsSupplier", False),
    }


def add_partner(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Name")
    fiscal = p.get("FiscalCode")
    if fiscal and any(x["FiscalCode"] == fiscal for x in co.partners.values()):
        # ASSUMPTION: wording of the duplicate-partner error.
        raise NextUpError(f'Exista deja un partener cu codul fiscal "{fiscal}".')
    pid = co.new_id()
    co.partners[pid] = _partner_record(co, p, pid, f"P{len(co.partners) + 1:04d}")
    return {"Id": pid, "Code": co.partners[pid]["Code"]}


def add_or_update_partner(co: Company, p: dict[str, Any]) -> Any:
    require(p, "FiscalCode", "Name")
    found = next((x for x in co.partners.values() if x["FiscalCode"] == p["FiscalCode"]), None)
    if found is None:
        return add_partner(co, p)
    found.update(_partner_record(co, {**found, **p}, found["Id"], found["Code"]))
    return {"Id": found["Id"], "Code": found["Code"]}


# -- documents -------------------------------------------------------------------------------------
def _date(p: dict[str, Any]) -> None:
    require(p, "Date")
    if not isinstance(p["Date"], str) or not DATE.match(p["Date"]):
        raise NextUpError('Parametrul "Date" nu are formatul YYYY-MM-DD.')


def _lines(co: Company, p: dict[str, Any], default_wid: Any) -> list[dict[str, Any]]:
    require(p, "Lines")
    if not isinstance(p["Lines"], list) or not p["Lines"]:
        raise NextUpError('Parametrul "Lines" este obligatoriu.')
    out = []
    for line in p["Lines"]:
        if not isinstance(line, dict):
            raise NextUpError('Parametrul "Lines" nu este valid.')
        require(line, "ArticleCode", "Quantity")
        co.article(line["ArticleCode"])
        wid = line.get("WarehouseId", default_wid)
        co.warehouse(wid)
        out.append({**line, "WarehouseId": wid, "Quantity": number_param(line, "Quantity")})
    return out


def _sale_document(prefix: str, moves_stock: bool) -> Handler:
    def handler(co: Company, p: dict[str, Any]) -> Any:
        require(p, "PartnerId")
        if p["PartnerId"] not in co.partners:
            raise NextUpError(f"Partenerul cu Id {p['PartnerId']} nu exista.")
        _date(p)
        currency = p.get("Currency") or "RON"
        if currency not in co.rates:
            raise NextUpError(f'Moneda "{currency}" nu exista.')
        lines = _lines(co, p, p.get("WarehouseId"))
        moves = [(ln["ArticleCode"], ln["WarehouseId"], -ln["Quantity"]) for ln in lines]
        moves = moves if moves_stock else []
        co.move(moves)
        doc = {
            "Id": co.new_id(),
            "Number": co.number(prefix),
            "Type": prefix,
            "Valid": True,
            "Moves": moves,
            "PartnerId": p["PartnerId"],
            "Date": p["Date"],
            "Currency": currency,
            "Lines": lines,
        }
        co.documents[doc["Id"]] = doc
        return {"Id": doc["Id"], "Number": doc["Number"]}

    return handler


def add_transfer(co: Company, p: dict[str, Any]) -> Any:
    require(p, "SourceWarehouseId", "DestinationWarehouseId")
    _date(p)
    src, dst = p["SourceWarehouseId"], p["DestinationWarehouseId"]
    co.warehouse(src)
    co.warehouse(dst)
    lines = _lines(co, p, src)
    moves = [
        m
        for ln in lines
        for m in ((ln["ArticleCode"], src, -ln["Quantity"]), (ln["ArticleCode"], dst, ln["Quantity"]))
    ]
    co.move(moves)
    doc = {
        "Id": co.new_id(),
        "Number": co.number("TRF"),
        "Type": "TRF",
        "Valid": True,
        "Moves": moves,
        "Date": p["Date"],
        "Lines": lines,
    }
    co.documents[doc["Id"]] = doc
    return {"Id": doc["Id"], "Number": doc["Number"]}


def invalidate(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Id")
    doc = co.documents.get(p["Id"])
    if doc is None:
        raise NextUpError(f"Documentul cu Id {p['Id']} nu exista.")
    if not doc["Valid"]:
        raise NextUpError(f"Documentul {doc['Number']} este deja anulat.")
    # Reversing a receipt whose goods were already used refuses, like any other move below zero.
    co.move([(code, wid, -delta) for code, wid, delta in doc["Moves"]])
    reverse_production(co, doc)
    doc["Valid"] = False
    return True


def exchange_rate(co: Company, p: dict[str, Any]) -> Any:
    require(p, "Currency")
    rate = co.rates.get(p["Currency"])
    if rate is None:
        raise NextUpError(f'Moneda "{p["Currency"]}" nu exista.')
    # ASSUMPTION: one fixed rate per currency (BNR-like values), whatever the date asked.
    return {"Currency": p["Currency"], "Date": p.get("Date") or "2025-03-03", "Rate": rate}


def get_article_by_code(co: Any, p: dict[str, Any]) -> Any:
    """GetArticleByCode {Code}."""
    require(p, "Code")
    return co.article(p["Code"])


OPERATIONS: dict[str, Handler] = {
    "GetAllArticles": lambda co, p: list(co.articles.values()),
    "GetArticleByCode": lambda co, p: get_article_by_code(co, p),
    "AddArticle": add_article,
    "UpdateArticle": update_article,
    "GetAllStocksForArticles": all_stocks,
    "GetStocksForArticleByCode": stocks_by_code,
    "GetAllPartners": lambda co, p: list(co.partners.values()),
    "AddPartner": add_partner,
    "AddOrUpdatePartner": add_or_update_partner,
    "AddSaleOrder": _sale_document("COM", moves_stock=False),
    # ASSUMPTION: the invoice does not move stock; the delivery note (aviz) does.
    "AddSaleInvoice": _sale_document("FCT", moves_stock=False),
    "AddDeliveryNote": _sale_document("AVZ", moves_stock=True),
    "AddDepositTransferNote": add_transfer,
    "InvalidateDocument": invalidate,
    "GetExchangeRate": exchange_rate,
    "GetAllWarehouses": lambda co, p: list(co.warehouses.values()),
    **PRODUCTION,
}


class NextUpSimulator(Simulator):
    """One NextUp server with the sandbox company `99999999`."""

    name = NAME

    def __init__(
        self, *, size: int = 5, seed: int = 0, faults: Faults | None = None, token_ttl: float = DEFAULT_TTL
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed, self.token_ttl = size, seed, token_ttl
        self._load()

    def _load(self) -> None:
        self.companies = {DATABASE: seed_company(self.size, self.seed)}
        self.tokens: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self._load()

    @property
    def company(self) -> Company:
        return self.companies[DATABASE]

    def state(self, request: Request) -> dict[str, Any]:
        co = self.company
        return {
            "articles": list(co.articles.values()),
            "partners": list(co.partners.values()),
            "warehouses": list(co.warehouses.values()),
            "stock": all_stocks(co, {}),
            "documents": list(co.documents.values()),
            "productionOrders": list(co.production_orders.values()),
            "tokens": len(self.tokens),
        }

    def ttl(self) -> float:
        return self.faults.token_ttl if self.faults.token_ttl is not None else self.token_ttl

    def login(self, p: dict[str, Any]) -> JSONResponse:
        # ASSUMPTION: the login's own parameters are checked before the credentials.
        for name in ("UserName", "Password", "Database"):
            if p.get(name) in (None, ""):
                return _fail(f'Parametrul "{name}" este obligatoriu.')
        if (p["UserName"], p["Password"]) != (CREDENTIALS["UserName"], CREDENTIALS["Password"]) or (
            str(p["Database"]) not in self.companies
        ):
            return _fail(LOGIN_ERROR)
        # ASSUMPTION: each login issues a fresh token bound to that company; earlier ones stay valid
        # until they expire (absolute expiry from issue, not sliding).
        token = secrets.token_hex(16)
        self.tokens[token] = {"database": str(p["Database"]), "issued": self.clock()}
        return _ok(token)

    def call(self, envelope: Any) -> JSONResponse:
        if not isinstance(envelope, dict):
            return _fail("Cererea nu este valida.")  # ASSUMPTION: a JSON value that is no object
        method, params = envelope.get("Method"), envelope.get("Params") or {}
        if not isinstance(params, dict):
            return _fail('Parametrul "Params" nu este valid.')
        if method == "GetAuthenticationToken":
            return self.login(params)
        token = envelope.get("AuthenticationToken")
        session = self.tokens.get(token) if isinstance(token, str) else None
        if session is None or self.clock() - session["issued"] >= self.ttl():
            self.tokens.pop(token, None) if isinstance(token, str) else None
            return _fail(TOKEN_ERROR)
        if method == "Logout":
            self.tokens.pop(str(token), None)
            return _ok(True)
        handler = OPERATIONS.get(method) if isinstance(method, str) else None
        if handler is None:
            # ASSUMPTION: wording for an unknown method.
            return _fail(f'Metoda "{method}" nu exista.')
        try:
            return _ok(handler(self.companies[session["database"]], params))
        except NextUpError as exc:
            return _fail(str(exc))

    def parse(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            return None

    async def post(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "text/plain":
            return Response(b"", status_code=200)  # the real server answers other types with nothing
        envelope = self.parse((await request.body()).decode("utf-8", errors="replace"))
        if envelope is None:
            # ASSUMPTION: malformed JSON is a business error on HTTP 200 like any other.
            return _fail("Cererea nu este un JSON valid.")
        return self.call(envelope)

    async def get(self, request: Request) -> Response:
        envelope = self.parse(request.path_params["payload"])
        if envelope is None:
            return _fail("Cererea nu este un JSON valid.")
        return self.call(envelope)

    def is_write(self, scope: Scope, body: bytes) -> bool:
        """Every call is a POST (or a GET carrying the same envelope): the `Method` decides. The
        `Get...` methods and `Logout` change no record; an unreadable envelope is refused unapplied."""
        path = scope["path"]
        text = path[len(BASE) + 5 :] if path.startswith(BASE + "/GET/") else body.decode("utf-8", "replace")
        envelope = self.parse(text)
        method = envelope.get("Method") if isinstance(envelope, dict) else None
        return isinstance(method, str) and not method.startswith("Get") and method != "Logout"

    def error_response(self, request: Request) -> Response:
        # ASSUMPTION: the services run on ASP.NET under IIS, whose answer to an unhandled exception is
        # HTTP 500 with its HTML error page, not the {"Result", "Error"} envelope of business errors.
        return Response(SERVER_ERROR_PAGE, status_code=500, media_type="text/html")

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{BASE}/POST/", self.post, methods=["POST"]),
            Route(f"{BASE}/POST", self.post, methods=["POST"]),
            Route(BASE + "/GET/{payload:path}", self.get, methods=["GET"]),
        ]


def create_app(*, size: int = 5, seed: int = 0, faults: Faults | None = None) -> Starlette:
    """The NextUp simulator app; `app.state.simulator` is the `NextUpSimulator`."""
    return NextUpSimulator(size=size, seed=seed, faults=faults).app
