"""The Priority ERP simulator: OData v4 REST at `/odata/Priority/{ini}/{company}/{FORM...}`.

Behaviour follows ERP-FACTS (Priority section) and seed 004. Notable choices:

- Auth is HTTP Basic: the API user, or a Personal Access Token as username with the literal `PAT` as
  password (seed 004 shows the two the other way round; the vendor docs, followed here, do not).
- A collection is silently truncated at `max_api_lines` (MAXAPILINES, default 2,000): no next link.
- `FORM/$count` answers 500; `$top=0&$count=true` gives `@odata.count`.
- A sub-form entity set on its own (`/KITITEMS_SUBFORM`) is 404.
- DELETE answers 201 with no body (ERP-FACTS: "201 (also answers DELETE)").
- The fix-description text sub-form of DOCUMENTS_Q is `DOCTEXT_Q_SUBFORM` (ASSUMPTION), one entity
  `{"TEXT": ...}`; POST and PATCH replace the text.
- A POST to ALINE_ONE answers 201 with the full record, whose internal key `FORM` and `KLINE` (numbers)
  address it again as `ALINE_ONE(FORM=n,KLINE=1)`; a binding can store `FORM` as the externalId, as
  each ALINE_ONE POST opens its own report document.
- SERIAL has `UDATE` (ASSUMPTION) which moves forward on every write to the work order or its lines.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.base import Faults, Simulator
from sandbox.odata import ODataError, Query, apply_query, parse_key, parse_query, unknown_property
from sandbox.priority_data import FORMS, SUBFORMS, TOP_FORMS, Record, Store, Table, populate
from sandbox.priority_rules import InterfaceError, Rules

__all__ = ["CREDENTIALS", "DEFAULT_PORT", "NAME", "PrioritySimulator", "create_app"]

NAME = "priority"
DEFAULT_PORT = 8602
USER, PASSWORD = "apiuser", "apipass"
PAT = "7F3C2A9B1D4E4F6A8B0C2D4E6F8A0B1C"
COMPANY, INI = "demo", "tabula.ini"
CREDENTIALS: dict[str, str] = {
    "username": USER,
    "password": PASSWORD,
    "pat": PAT,
    "pat_password": "PAT",
    "company": COMPANY,
    "ini": INI,
    "path": f"/odata/Priority/{INI}/{COMPANY}/",
}
MAX_API_LINES = 2000
GENERIC_ERROR = "An error has occurred."


def odata_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": "", "message": message}}, status_code=status)


class PrioritySimulator(Simulator):
    """One Priority company behind the OData REST API."""

    name = NAME

    def __init__(
        self,
        *,
        size: int = 100,
        seed: int = 0,
        faults: Faults | None = None,
        company: str = COMPANY,
        max_api_lines: int = MAX_API_LINES,
        users: dict[str, str] | None = None,
        pats: set[str] | frozenset[str] | None = None,
    ) -> None:
        super().__init__(faults=faults)
        self.size, self.seed, self.company, self.max_api_lines = size, seed, company, max_api_lines
        self.users = users if users is not None else {USER: PASSWORD}
        self.pats = set(pats) if pats is not None else {PAT}
        self.store = Store()
        self.rules = Rules(self.store)
        populate(self.store, size, seed)
        self._writes = 0
        self._collections: dict[tuple[str, str | None, str | None], tuple[int, Table, list[Record]]] = {}

    def reset(self) -> None:
        super().reset()
        self.store = Store()
        self.rules = Rules(self.store)
        populate(self.store, self.size, self.seed)
        self._wrote()

    def _wrote(self) -> None:
        """Any write: the kept collection results are stale."""
        self._writes += 1
        self._collections.clear()

    def _collection(
        self, path: str, table: Table, query: Query, params: Any
    ) -> tuple[list[Record], int | None]:
        """`apply_query`, with a filtered and ordered collection kept until the next write.

        A poller paging through a large form with $top/$skip sends the same $filter and $orderby page
        after page; the rows are filtered and sorted once, then each page is a slice of them.
        """
        if query.filter is None and not query.orderby:
            return apply_query(table, query, cap=self.max_api_lines)
        key = (path, params.get("$filter"), params.get("$orderby"))
        kept = self._collections.pop(key, None)
        if kept is None or kept[0] != self._writes or kept[1] is not table:
            rows, _ = apply_query(table, replace(query, top=None, skip=0, count=False))
            kept = (self._writes, table, rows)
        self._collections[key] = kept  # most recently used last
        if len(self._collections) > 16:
            del self._collections[next(iter(self._collections))]
        rows = kept[2]
        limit = query.top if query.top is not None else self.max_api_lines
        if self.max_api_lines is not None:
            limit = min(limit, self.max_api_lines)
        end = None if limit is None else query.skip + limit
        return rows[query.skip : end], len(rows) if query.count else None

    # -- fault answers ------------------------------------------------------------------------
    def outage_response(self, request: Request) -> Response:
        # ASSUMPTION: an unavailable Priority answers like its IIS front end, in HTML.
        return Response("<h1>Service Unavailable</h1>", status_code=503, media_type="text/html")

    def error_response(self, request: Request) -> Response:
        return odata_error(GENERIC_ERROR, 500)

    def throttle_response(self, request: Request, retry_after: int) -> Response:
        # ASSUMPTION: the 429 body uses the generic error envelope.
        response = odata_error("Too many requests. Please try again later.", 429)
        response.headers["Retry-After"] = str(retry_after)
        return response

    # -- app ----------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                "/odata/Priority/{ini}/{company}/{path:path}",
                self.handle,
                methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            )
        ]

    def state(self, request: Request) -> dict[str, Any]:
        wanted = request.query_params.get("form")
        forms = [wanted] if wanted else sorted(TOP_FORMS)
        snapshot: dict[str, Any] = {}
        for form in forms:
            if form not in self.store.tables:
                continue
            snapshot[form] = [
                self.render(form, row, Query(), expand_all=True) for row in self.store.tables[form]
            ]
        # reported quantity per (work order, operation), as "WO/OPERATION" keys: JSON keys are text
        snapshot["_reported"] = {
            "/".join(key): quantity for key, quantity in self.rules.reported.items() if quantity
        }
        return snapshot

    def authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if password == "PAT":
            return user in self.pats
        return user in self.users and self.users[user] == password

    async def handle(self, request: Request) -> Response:
        if not self.authorized(request):
            # ASSUMPTION: the 401 body uses the generic error envelope.
            response = odata_error("Authentication failed.", 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="Priority"'
            return response
        if request.path_params["company"] != self.company:
            # ASSUMPTION: an unknown company is 404 with the generic envelope.
            return odata_error(f"Company '{request.path_params['company']}' was not found.", 404)
        try:
            return await self.dispatch(request)
        except InterfaceError as exc:
            return JSONResponse(
                {"FORM": {"@TYPE": exc.form, "InterfaceErrors": {"text": exc.text}}}, status_code=400
            )
        except ODataError as exc:
            return odata_error(exc.message, exc.status)

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, path: str) -> tuple[str, Table, Record | None, Record | None]:
        """(form, table, record or None for the collection, parent record or None)."""
        segments = _split_segments(path)
        if not segments:
            raise ODataError("No form in the URL.", 404)
        form, table, record, parent = "", None, None, None
        for i, segment in enumerate(segments):
            name, _, key = segment.partition("(")
            if i == 0:
                if name not in TOP_FORMS:
                    raise ODataError(f"Resource not found for the segment '{name}'.", 404)
                table = self.store.tables[name]
            else:
                if record is None or name not in FORMS[form].subforms:
                    raise ODataError(f"Resource not found for the segment '{name}'.", 404)
                parent, table = record, self.store.child(record, name)
                record = None
            form = name
            if FORMS[form].text:
                record = next(iter(table), None) or _add_text(table)
            elif key:
                if not key.endswith(")"):
                    raise ODataError(f"Bad key in segment '{segment}'.")
                record = table.get(parse_key(key[:-1], FORMS[form].key))
                if record is None:
                    raise ODataError(f"The requested resource was not found: {segment}.", 404)
            elif i < len(segments) - 1:
                raise ODataError(f"Resource not found for the segment '{segments[i + 1]}'.", 404)
        assert table is not None
        return form, table, record, parent

    async def dispatch(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        if path.endswith("$count"):
            # ~ ERP-FACTS: `FORM/$count` answers 500 on the real server.
            return odata_error(GENERIC_ERROR, 500)
        if path.split("/")[0] in SUBFORMS:
            raise ODataError(f"Resource not found for the segment '{path.split('/')[0]}'.", 404)
        form, table, record, parent = self.resolve(path)
        base = (
            f"{str(request.base_url).rstrip('/')}/odata/Priority/{request.path_params['ini']}/{self.company}"
        )
        context = f"{base}/$metadata#{path if record is None else form}"
        method = request.method
        params = request.query_params
        if method != "GET":
            self._wrote()
        if method == "GET":
            query = parse_query(params, form, self.store)
            if record is not None:
                return JSONResponse(
                    {"@odata.context": f"{context}/$entity", **self.render(form, record, query)}
                )
            if params.get("$since"):
                raise ODataError("$since is supported on BPM forms only.")
            rows, total = self._collection(path, table, query, params)
            body: dict[str, Any] = {"@odata.context": context}
            if total is not None:
                body["@odata.count"] = total
            body["value"] = [self.render(form, row, query) for row in rows]
            return JSONResponse(body)
        if method == "POST":
            if record is not None and not FORMS[form].text:
                raise ODataError("POST is allowed on a form or a sub-form, not on a record.", 405)
            self._writable(form)
            data = await _json_object(request)
            if FORMS[form].text:
                return self._write_text(record, data, context, 201)
            created = self.insert(form, table, data, parent)
            return JSONResponse(
                {
                    "@odata.context": f"{context}/$entity",
                    **self.render(form, created, Query(), expand_all=True),
                },
                status_code=201,
            )
        if record is None:
            raise ODataError(f"{method} needs a record key.", 405)
        self._writable(form)
        if method in ("PATCH", "PUT"):
            data = await _json_object(request)
            if FORMS[form].text:
                return self._write_text(record, data, context, 200)
            self.update(form, table, record, data, parent)
            return JSONResponse(
                {"@odata.context": f"{context}/$entity", **self.render(form, record, Query())}
            )
        self.delete(form, table, record, parent)
        return Response(status_code=201)

    def _writable(self, form: str) -> None:
        if not FORMS[form].writable:
            # ASSUMPTION: seed 004 opens these forms read-only to the API user: writing is 403.
            raise ODataError(f"You do not have permission to update form {form}.", 403)

    def _write_text(self, record: Record | None, data: dict[str, Any], context: str, status: int) -> Response:
        assert record is not None
        record["TEXT"] = data.get("TEXT")
        return JSONResponse(
            {"@odata.context": f"{context}/$entity", "TEXT": record["TEXT"]}, status_code=status
        )

    # -- writes -------------------------------------------------------------------------------
    def insert(self, form: str, table: Table, data: dict[str, Any], parent: Record | None) -> Record:
        """Insert a record and its sub-form arrays; any refusal undoes the whole request."""
        self._wrote()
        spec = FORMS[form]
        record = table.blank()
        nested: dict[str, list[dict[str, Any]]] = {}
        for name, value in data.items():
            if name in spec.subforms:
                nested[name] = value if isinstance(value, list) else [value]
            elif name in spec.fields:
                record[name] = value
            else:
                raise unknown_property(name, form)
        if spec.key and all(record.get(k) is not None for k in spec.key) and table.get(table.key_of(record)):
            raise ODataError("An entity with the same key already exists.", 409)
        self.rules.check_insert(form, record, parent)
        if table.get(table.key_of(record)) is not None:
            raise ODataError("An entity with the same key already exists.", 409)
        table.add(record)
        self.store.new_children(form, record)
        self.rules.after_insert(form, record, parent)
        try:
            for name, items in nested.items():
                child = self.store.child(record, name)
                for item in items:
                    if FORMS[name].text:
                        _add_text(child)["TEXT"] = (item or {}).get("TEXT")
                    elif isinstance(item, dict):
                        self.insert(name, child, item, record)
                    else:
                        raise ODataError(f"A {name} line must be an object.")
        except (InterfaceError, ODataError):
            self.delete(form, table, record, parent)
            raise
        return record

    def update(
        self, form: str, table: Table, record: Record, data: dict[str, Any], parent: Record | None
    ) -> None:
        self._wrote()
        spec = FORMS[form]
        for name in data:
            if name not in spec.fields:
                raise unknown_property(name, form)
            if name in spec.key and data[name] != record[name]:
                raise ODataError(f"The key field {name} cannot be changed.")
        merged = {**record, **data}
        self.rules.check_update(form, record, merged, parent)
        old = dict(record)
        record.update(merged)
        self.rules.after_update(form, old, record, parent)

    def delete(self, form: str, table: Table, record: Record, parent: Record | None) -> None:
        self._wrote()
        for name in FORMS[form].subforms:
            if self.store.has_child(record, name):
                child = self.store.child(record, name)
                for row in list(child):
                    if not FORMS[name].text:
                        self.delete(name, child, row, record)
        table.remove(table.key_of(record))
        self.rules.after_delete(form, record, parent)

    # -- rendering ----------------------------------------------------------------------------
    def render(self, form: str, record: Record, query: Query, expand_all: bool = False) -> dict[str, Any]:
        """A record as JSON: selected fields (all, empty ones as null) and expanded sub-forms."""
        spec = FORMS[form]
        out = {name: record.get(name) for name in (query.select or spec.fields)}
        expand = dict(query.expand)
        if expand_all:
            expand.update(
                {
                    name: Query()
                    for name in spec.subforms
                    if name not in expand and self.store.has_child(record, name)
                }
            )
        for name, sub in expand.items():
            child = self.store.child(record, name)
            if FORMS[name].text:
                row = next(iter(child), None)
                out[name] = {"TEXT": row["TEXT"] if row else None}
                continue
            rows, _ = apply_query(child, sub)
            out[name] = [self.render(name, row, sub, expand_all) for row in rows]
        return out


def _add_text(table: Table) -> Record:
    row = next(iter(table), None)
    if row is None:
        row = {"TEXT": None}
        table.add(row)
    return row


def _split_segments(path: str) -> list[str]:
    segments, start, quoted = [], 0, False
    for i, ch in enumerate(path):
        if ch == "'":
            quoted = not quoted
        elif ch == "/" and not quoted:
            segments.append(path[start:i])
            start = i + 1
    segments.append(path[start:])
    return [s for s in segments if s]


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise ODataError("The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ODataError("The request body must be a JSON object.")
    return data


def create_app(*, size: int = 100, seed: int = 0, faults: Faults | None = None, **options: Any) -> Starlette:
    """The Priority simulator app; options: company, max_api_lines, users, pats."""
    return PrioritySimulator(size=size, seed=seed, faults=faults, **options).app
