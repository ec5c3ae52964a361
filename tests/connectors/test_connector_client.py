"""URL joining, query encoding, the call hook, the registry, and the shipped connector files."""

from pathlib import Path

import httpx
import pytest
import yaml

from engine.connectors import ConnectorConfig, Connectors, encode_query
from engine.errors import BusinessError
from tests.connectors.connector_kit import reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"$filter": "SERIALNAME eq 'WO 1'"}, "$filter=SERIALNAME%20eq%20'WO%201'", id="odata-filter"
        ),
        pytest.param(
            {"$filter": "UDATE ge 2025-01-01T00:00:00+02:00"},
            "$filter=UDATE%20ge%202025-01-01T00:00:00%2B02:00",
            id="plus-as-%2B",
        ),
        pytest.param(
            {"$expand": "KITITEMS_SUBFORM($select=A,B;$top=2)"},
            "$expand=KITITEMS_SUBFORM($select%3DA,B%3B$top%3D2)",
            id="expand",
        ),
        pytest.param(
            {"filter": {"where": {"a": 1}}},
            "filter=%7B%22where%22:%20%7B%22a%22:%201%7D%7D",
            id="loopback-json",
        ),
        pytest.param({"a": True, "b": None, "c": [1, 2]}, "a=true&c=1&c=2", id="types"),
    ],
)
def test_encode_query(query, expected):
    assert encode_query(query) == expected


async def test_odata_paths_and_query_reach_the_server_unmangled(make):
    seen = []
    connector = make(
        lambda r: seen.append(r) or reply(200, {"value": []}),
        base_url="http://erp.test/odata/Priority/tabula.ini/demo/",
    )
    await connector.request(
        "GET",
        "/SERIAL('WO1')/KITITEMS_SUBFORM",
        query={"$filter": "QUANT gt 1 and UDATE ge 2025-01-01T00:00:00+02:00", "$top": 5},
    )
    url = seen[0].url
    assert url.raw_path.decode() == (
        "/odata/Priority/tabula.ini/demo/SERIAL('WO1')/KITITEMS_SUBFORM"
        "?$filter=QUANT%20gt%201%20and%20UDATE%20ge%202025-01-01T00:00:00%2B02:00&$top=5"
    )
    assert url.params["$filter"] == "QUANT gt 1 and UDATE ge 2025-01-01T00:00:00+02:00"


async def test_call_hook_reports_each_attempt(make):
    records = []
    answers = iter([reply(503), reply(200, {})])
    connector = make(
        lambda r: next(answers),
        environ={"ERP_KEY": "key-123456"},
        auth={"kind": "query", "name": "key", "value": "${ERP_KEY}"},
    )
    connector.on_call = records.append
    response = await connector.request("GET", "/x")
    assert [(r.status, r.attempt, r.method, r.path) for r in records] == [
        (503, 1, "GET", "/x"),
        (200, 2, "GET", "/x"),
    ]
    assert all("key-123456" not in r.url and "key=***" in r.url for r in records)
    assert response.attempts == 2 and response.elapsed >= 0


async def test_registry_builds_and_closes_connectors():
    configs = {name: ConnectorConfig(base_url=f"http://{name}.test") for name in ("a", "b")}
    connectors = Connectors(
        configs, transport=lambda name: httpx.MockTransport(lambda r: reply(200, {"n": name}))
    )
    assert (await connectors["b"].request("GET", "/")).body == {"n": "b"}
    with pytest.raises(KeyError, match="unknown connector 'c'; known: a, b"):
        connectors["c"]
    await connectors.aclose()


def load(name: str) -> ConnectorConfig:
    return ConnectorConfig.model_validate(yaml.safe_load((ROOT / "connectors" / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("name", ["nextplus", "priority", "nextup", "nextx"])
def test_shipped_connectors_load(name):
    assert load(name).name == name


def simulator(name):
    import importlib

    return importlib.import_module(f"engine.sandbox.{name}").create_app(size=30, seed=1, faults=None)


async def test_shipped_connectors_against_the_simulators():
    connectors = Connectors(
        {n: load(n) for n in ("nextplus", "priority", "nextup", "nextx")},
        environ={},
        transport=lambda name: httpx.ASGITransport(app=simulator(name)),
    )
    try:
        workorders = await connectors["nextplus"].request(
            "GET", "/api/Workorders", query={"filter": {"limit": 2}}
        )
        assert len(workorders.result) == 2
        parts = await connectors["priority"].request(
            "GET", "/LOGPART", query={"$select": "PARTNAME"}, paginate=True
        )
        assert parts.result and all("PARTNAME" in p for p in parts.result)
        articles = await connectors["nextup"].request(
            "POST", "/NextUpServices/Services/POST/", body={"Method": "GetAllArticles", "Params": {}}
        )
        assert isinstance(articles.result, list) and articles.result
        with pytest.raises(BusinessError, match="este obligatoriu"):
            await connectors["nextup"].request(
                "POST", "/NextUpServices/Services/POST/", body={"Method": "AddSaleOrder", "Params": {}}
            )
        products = await connectors["nextx"].request(
            "GET", "/api/product/product", query={"branch_id": 1}, paginate=True
        )
        assert products.result
    finally:
        await connectors.aclose()


@pytest.mark.slow
async def test_default_aiohttp_transport_over_a_real_socket():
    """The default transport keeps OData quoting intact end to end (yarl must not re-quote)."""
    from engine.sandbox.serve import serve_in_thread

    with serve_in_thread(simulator("priority")) as base:
        cfg = load("priority").model_copy(update={"base_url": f"{base}/odata/Priority/tabula.ini/demo"})
        connectors = Connectors({"priority": cfg}, environ={})
        try:
            one = await connectors["priority"].request(
                "GET", "/SERIAL", query={"$top": 1, "$select": "SERIALNAME"}
            )
            serial = one.result["value"][0]["SERIALNAME"]
            found = await connectors["priority"].request(
                "GET", "/SERIAL", query={"$filter": f"SERIALNAME eq '{serial}'", "$select": "SERIALNAME"}
            )
            assert found.result["value"] == [{"SERIALNAME": serial}]
            kit = await connectors["priority"].request("GET", f"/SERIAL('{serial}')/KITITEMS_SUBFORM")
            assert isinstance(kit.result["value"], list)
        finally:
            await connectors.aclose()
