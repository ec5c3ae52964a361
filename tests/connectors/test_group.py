"""`Connectors`, and the shipped connector files against the simulators over real HTTP."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import pytest
import yaml

from engine.connectors import ConnectorConfig, Connectors
from engine.errors import BusinessError
from sandbox.serve import serve_in_thread
from tests.connectors.kit import mock_transport, reply

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("nextplus", "priority", "nextup", "nextx")


async def test_connectors_build_by_name_and_close_together():
    configs = {name: ConnectorConfig(base_url=f"http://{name}.test") for name in ("a", "b")}
    connectors = Connectors(configs, transport=lambda name: mock_transport(lambda r: reply(200, {"n": name})))
    assert (await connectors["b"].request("GET", "/")).body == {"n": "b"}
    with pytest.raises(KeyError, match="unknown connector 'c'; known: a, b"):
        connectors["c"]
    await connectors.aclose()


def load(name: str) -> ConnectorConfig:
    return ConnectorConfig.model_validate(yaml.safe_load((ROOT / "connectors" / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_connectors_load(name):
    assert load(name).name == name


@pytest.mark.slow
async def test_shipped_connectors_against_the_simulators():
    """Each shipped connector file over the production transport, against its simulator on a port."""
    with contextlib.ExitStack() as servers:
        urls = {
            name: servers.enter_context(
                serve_in_thread(
                    importlib.import_module(f"sandbox.{name}").create_app(size=30, seed=1, faults=None)
                )
            )
            for name in SHIPPED
        }
        environ = {
            "NEXTPLUS_URL": urls["nextplus"],
            "PRIORITY_URL": urls["priority"] + "/odata/Priority/tabula.ini/demo",
            "NEXTUP_URL": urls["nextup"],
            "NEXTX_URL": urls["nextx"],
        }
        connectors = Connectors({n: load(n) for n in SHIPPED}, environ=environ)
        try:
            workorders = await connectors["nextplus"].request(
                "GET", "/api/Workorders", query={"filter": {"limit": 2}}
            )
            assert len(workorders.result) == 2
            parts = await connectors["priority"].request(
                "GET", "/LOGPART", query={"$select": "PARTNAME"}, paginate=True
            )
            assert parts.result and all("PARTNAME" in p for p in parts.result)
            serial = (await connectors["priority"].request("GET", "/SERIAL", query={"$top": 1})).result[
                "value"
            ][0]
            kit = await connectors["priority"].request(
                "GET", f"/SERIAL('{serial['SERIALNAME']}')/KITITEMS_SUBFORM"
            )
            assert isinstance(kit.result["value"], list)
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
