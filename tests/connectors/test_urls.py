"""URLs as the connector sends them: the OData query, requoting without normalising, next links."""

import pytest

from engine.connectors.urls import encode_query, join, requote, resolve_reference


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
        pytest.param({"q": "a&b=c#d"}, "q=a%26b%3Dc%23d", id="structure-is-data"),
        pytest.param({"q": "שלום"}, "q=%D7%A9%D7%9C%D7%95%D7%9D", id="hebrew"),
    ],
)
def test_encode_query(query, expected):
    assert encode_query(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param(
            {"q": "WO-\ud800"}, "query parameter 'q' holds \\ud800, a lone surrogate", id="surrogate"
        ),
        pytest.param({"n": float("nan")}, "query parameter 'n' is nan", id="nan"),
        pytest.param(
            {"f": {"x": float("inf")}}, "query parameter 'f' holds a number that is not finite", id="inf"
        ),
    ],
)
def test_encode_query_refuses_what_cannot_be_sent_exactly(query, message):
    with pytest.raises(ValueError, match=message.replace("\\", "\\\\")):
        encode_query(query)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://h/SERIAL('WO1')/KIT", "http://h/SERIAL('WO1')/KIT", id="odata-kept"),
        pytest.param("http://h/a/../b/./c", "http://h/a/../b/./c", id="dot-segments-kept"),
        pytest.param("http://h/a b", "http://h/a%20b", id="space"),
        pytest.param("http://h/מארז", "http://h/%D7%9E%D7%90%D7%A8%D7%96", id="non-ascii"),
        pytest.param("http://h/a%2Fb", "http://h/a%2Fb", id="escapes-kept"),
        pytest.param("http://h/100%", "http://h/100%25", id="lone-percent"),
    ],
)
def test_requote(url, expected):
    assert requote(url) == expected


def test_requote_refuses_a_lone_surrogate():
    with pytest.raises(ValueError, match="lone surrogate"):
        requote("http://h/WO-\udc00")


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("http://h/odata/demo/", "/SERIAL", "http://h/odata/demo/SERIAL"),
        ("http://h/odata/demo", "SERIAL", "http://h/odata/demo/SERIAL"),
        ("http://h/odata", "", "http://h/odata"),
        ("http://h/odata", "https://other/x", "https://other/x"),
    ],
)
def test_join(base, path, expected):
    assert join(base, path) == expected


@pytest.mark.parametrize(
    ("page", "link", "expected"),
    [
        pytest.param(
            "http://h/b1s/v1/Orders?$top=2",
            "Orders?$skip=20",
            "http://h/b1s/v1/Orders?$skip=20",
            id="relative",
        ),
        pytest.param(
            "http://h/b1s/v1/Orders",
            "/b1s/v1/Orders?$skip=2",
            "http://h/b1s/v1/Orders?$skip=2",
            id="absolute-path",
        ),
        pytest.param("http://h/a/b", "https://x/y", "https://x/y", id="absolute"),
        pytest.param("http://h/a/b?x=1", "?x=2", "http://h/a/b?x=2", id="query-only"),
    ],
)
def test_next_links_resolve_as_references(page, link, expected):
    assert resolve_reference(page, link) == expected
