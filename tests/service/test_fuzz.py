"""Webhook fuzz over real HTTP against `mesbridge run .`: hostile bodies never get a 5xx, a refusal
never follows an ERP call, and a valid event is always answered 200 after one.

Events are the Integration Builder events `schemas/integration-builder/*.json` describe, generated
valid, then mutated: wrong types, random unicode with lone surrogates (escaped, or written as raw
invalid UTF-8), extreme numbers (`NaN`, `1e400`, 5,000 digits), nesting up to 6,000 deep, duplicate
keys, truncation, spliced and random bytes, and Content-Types. The ERP side is healthy and
deterministic: each pipeline makes one NextUp call that always succeeds, so any 5xx is a bug.

Bounded for CI: 2,000 derandomized cases. Locally (see benchmarks/README.md):

    MESBRIDGE_FUZZ_EXAMPLES=10000 MESBRIDGE_FUZZ_SEED=1 .venv/bin/python -m pytest -p no:cacheprovider \\
        tests/service/test_fuzz.py -s
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from .conftest import CONNECTORS, REPO, TOKEN, Sims, Subprocess

EXAMPLES = int(os.environ.get("MESBRIDGE_FUZZ_EXAMPLES", "2000"))
SEED = os.environ.get("MESBRIDGE_FUZZ_SEED")
SCHEMAS = ("operation", "device", "item-attach")
MAX_BODY, MAX_STRING = 16_384, 2_000

SETTINGS = f"""\
store: sqlite:///state.db
workers: 1
shutdown_grace: 1
log_level: info
max_body_bytes: {MAX_BODY}
max_string_chars: {MAX_STRING}
webhook_auth: {{kind: shared_secret, in: query, name: token, secret: "${{MESBRIDGE_WEBHOOK_TOKEN}}"}}
"""

PIPELINE = """\
  - name: fuzz.{name}
    source: {{kind: webhook, path: /fuzz/{name}, mode: sync, deadline: 5, schema: schemas/{name}.json}}
    steps:
      - name: articles
        call: nextup
        method: POST
        path: /NextUpServices/Services/POST/
        body:
          Method: GetAllArticles
          Params: {{type: "{{{{ event.type }}}}", workorderNumber: "{{{{ event.workorderNumber }}}}",
                   sku: "{{{{ event.sku }}}}", serial: "{{{{ event.serial }}}}", {extra}}}
    reply: {{status: 200, body: {{externalId: "{{{{ event.workorderNumber }}}}", articles: "{{{{ articles | length }}}}"}}}}
"""
EXTRA = {
    "operation": 'qty: "{{ event.validQty }}", position: "{{ event.position }}"',
    "device": 'oldSerial: "{{ event.oldSerial }}"',
    "item-attach": 'item: "{{ event.item.sku }}", quantity: "{{ event.item.quantity }}"',
}


def write_fuzz_root(path: Path) -> Path:
    root = path / "fuzz-root"
    for folder in ("connectors", "mappings/fuzz", "schemas"):
        (root / folder).mkdir(parents=True)
    (root / "mesbridge.yaml").write_text(SETTINGS)
    (root / "connectors" / "nextup.yaml").write_text(CONNECTORS["nextup"])
    pipelines = "".join(PIPELINE.format(name=name, extra=EXTRA[name]) for name in SCHEMAS)
    (root / "mappings" / "fuzz" / "pipelines.yaml").write_text("pipelines:\n" + pipelines)
    for name in SCHEMAS:
        shutil.copy(REPO / "schemas" / "integration-builder" / f"{name}.json", root / "schemas")
    return root


# --- documents: JSON trees that can hold what `json.dumps` cannot write (duplicate keys, raw numbers)

Node = tuple[str, Any]
"""("o", [(key, node)...]) an object, ("a", [node...]) an array, ("s", text) a string, ("t", text) a
raw token (number or literal), ("d", (depth, node)) `node` inside `depth` arrays."""


def node(value: Any) -> Node:
    if isinstance(value, dict):
        return ("o", [(k, node(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("a", [node(v) for v in value])
    if isinstance(value, str):
        return ("s", value)
    return ("t", json.dumps(value))  # None, booleans, numbers (NaN and Infinity as JSON's extensions)


def dump(tree: Node, ascii: bool) -> str:
    kind, value = tree
    if kind == "o":
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=ascii)}:{dump(v, ascii)}" for k, v in value) + "}"
    if kind == "a":
        return "[" + ",".join(dump(v, ascii) for v in value) + "]"
    if kind == "s":
        return json.dumps(value, ensure_ascii=ascii)
    if kind == "d":
        depth, inner = value
        return "[" * depth + dump(inner, ascii) + "]" * depth
    return str(value)


texts = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(exclude_categories=()), max_size=12),  # lone surrogates included
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=2),
    st.sampled_from(["", " ", "\x00", "\u2028", "\ufeff", "WO-\ud800", "\udc00\ud83d", "😀", "אבג"]),
    st.integers(MAX_STRING - 2, MAX_STRING + 2).map(lambda n: "x" * n),
)
numbers = st.one_of(
    st.integers().map(str),
    st.floats().map(json.dumps),  # NaN, Infinity, -Infinity included
    st.integers(95, 105).map(lambda n: "9" * n),
    st.integers(1, 5000).map(lambda n: "-" + "1" * n),
    st.sampled_from(
        ["1e400", "-1E999", "1e-400", "0.0", "-0", "1.7976931348623157e308", "123456789012345678901234567890"]
    ),
)
tokens = st.sampled_from(["true", "false", "null"])
scalars: st.SearchStrategy[Node] = st.one_of(
    texts.map(lambda t: ("s", t)), numbers.map(lambda t: ("t", t)), tokens.map(lambda t: ("t", t))
)
junk: st.SearchStrategy[Node] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: ("a", items)),
        st.lists(st.tuples(texts, children), max_size=4).map(lambda pairs: ("o", pairs)),
        st.tuples(st.integers(1, 6000), children).map(lambda inner: ("d", inner)),
    ),
    max_leaves=12,
)


def valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema admits (its subset: type, enum, minLength, required, properties)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    options = []
    for kind in kinds:
        if kind == "string":
            # what strict JSON admits in a string: any character UTF-8 encodes but NUL
            admitted = st.characters(codec="utf-8", exclude_characters="\x00")
            options.append(st.text(admitted, min_size=schema.get("minLength", 0), max_size=40))
        elif kind == "number":
            options.append(
                st.one_of(st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False))
            )
        elif kind == "null":
            options.append(st.none())
        elif kind == "object":
            properties = schema.get("properties", {})
            required = {k: valid(properties[k]) for k in schema.get("required", [])}
            optional = {k: valid(v) for k, v in properties.items() if k not in required}
            options.append(st.fixed_dictionaries(required, optional=optional))
    return st.one_of(options)


@dataclass
class Case:
    route: str
    body: bytes
    content_type: str | None
    valid: bool
    """An admissible event, sent as JSON: it must be answered 200 after an ERP call."""


JSON = "application/json"
CONTENT_TYPES = [None, "text/plain", "application/json; charset=utf-16", "application/x-www-form-urlencoded"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(SCHEMAS))
    schema = json.loads((REPO / "schemas" / "integration-builder" / f"{name}.json").read_text())
    event = draw(valid(schema))
    tree = node(event)
    mutation = draw(
        st.sampled_from(["none", "type", "extra", "number", "duplicate", "deep", "nested", "replace"])
    )
    pairs: list[tuple[str, Node]] = tree[1]
    if mutation == "type" and pairs:
        index = draw(st.integers(0, len(pairs) - 1))
        pairs[index] = (pairs[index][0], draw(junk))
    elif mutation == "extra":
        pairs.extend(draw(st.lists(st.tuples(texts, junk), min_size=1, max_size=3)))
    elif mutation == "number" and pairs:
        index = draw(st.integers(0, len(pairs) - 1))
        pairs[index] = (pairs[index][0], ("t", draw(numbers)))
    elif mutation == "duplicate" and pairs:
        key = draw(st.sampled_from([k for k, _ in pairs]))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(st.one_of(scalars, junk))))
    elif mutation == "deep":
        pairs.append(("deep", ("d", (draw(st.integers(60, 6000)), draw(scalars)))))
    elif mutation == "nested" and name == "item-attach":
        item = dict(pairs)["item"]
        item[1].append((draw(st.sampled_from(["sku", "quantity", "x"])), draw(junk)))
    elif mutation == "replace":
        tree = draw(junk)
    ascii = draw(st.booleans())
    text = dump(tree, ascii)
    body = text.encode("utf-8", "surrogatepass")  # a lone surrogate unescaped: invalid UTF-8 bytes
    framing = draw(st.sampled_from(["whole", "whole", "whole", "truncate", "splice", "bytes", "bom", "pad"]))
    if framing == "truncate":
        body = body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    elif framing == "splice":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    elif framing == "bytes":
        body = draw(st.binary(max_size=200))
    elif framing == "pad":  # white space is JSON, but the body may now be too large
        body = body + b" " * draw(st.integers(1, MAX_BODY))
    elif framing == "bom":
        body = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + body
    content_type = draw(
        st.one_of(st.just(JSON), st.just(JSON), st.just(JSON), st.sampled_from(CONTENT_TYPES))
    )
    admissible = (
        mutation == "none" and framing in ("whole", "pad") and content_type == JSON and len(body) <= MAX_BODY
    )
    return Case(f"/fuzz/{name}", body, content_type, admissible)


def is_articles(call: dict[str, Any]) -> bool:
    """The pipelines' own call (not a login)."""
    return isinstance(call["body"], dict) and call["body"].get("Method") == "GetAllArticles"


def recorded(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fuzzed_webhooks_never_get_a_5xx_nor_an_erp_call_after_a_refusal(tmp_path: Path, sims: Sims) -> None:
    root = write_fuzz_root(tmp_path)
    service = Subprocess(root, sims.environ, tmp_path / "run.log", cwd=root, root_arg=".")
    service.start()
    calls = sims.sims["nextup"].calls
    statuses: dict[int, int] = {}
    try:
        with httpx.Client(timeout=30) as client:
            warm = client.post(
                f"{service.url}/fuzz/device?token={TOKEN}", json={"type": "add", "workorderNumber": "W"}
            )
            assert warm.status_code == 200, warm.text
            assert service.process is not None
            rss_before = rss_kib(service.process.pid)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=SEED is None,
                suppress_health_check=list(HealthCheck),
            )
            @given(cases())
            def exchange(case: Case) -> None:
                calls.clear()  # settled: the previous case's call was waited for
                headers = {"content-type": case.content_type} if case.content_type else {}
                response = client.post(
                    f"{service.url}{case.route}?token={TOKEN}", content=case.body, headers=headers
                )
                status = response.status_code
                statuses[status] = statuses.get(status, 0) + 1
                assert status < 500, (status, response.text, case)
                if case.valid:
                    assert status == 200, (status, response.text, case)
                if status >= 400:
                    assert isinstance(response.json()["message"], str), response.text
                    assert list(calls) == [], (status, response.text, case)
                else:  # the simulator records a call once it has answered it: wait for that
                    assert recorded(lambda: any(is_articles(call) for call in calls)), case
                assert client.get(f"{service.url}/healthz").status_code == 200

            (seed(int(SEED))(exchange) if SEED is not None else exchange)()
            rss_after = rss_kib(service.process.pid)
        errors = [r for r in service.log_records() if r.get("level") in ("error", "critical")]
        assert errors == []
        print(
            f"\nfuzz: {sum(statuses.values())} cases, statuses {dict(sorted(statuses.items()))}, "
            f"service RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB"
        )
        assert rss_after - rss_before < 64 * 1024, "service RSS grew by more than 64 MiB"
    finally:
        service.stop()
