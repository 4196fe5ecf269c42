"""The API docs the edge serves itself: /openapi.json and the Swagger UI page at /docs."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import yaml
from ecom_gateway.envoy import DOCS_MAX_BODY_BYTES, OPENAPI_PATH, docs_bodies, render_config


class _Links(HTMLParser):
    """Every src= and href= of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def page_links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.links


def test_docs_routes_come_before_the_catch_all_and_fit_the_body_limit() -> None:
    config = yaml.safe_load(render_config(8080, 9901, {"auth": ("127.0.0.1", 50051)}))
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    route_config = hcm["typed_config"]["route_config"]
    routes = route_config["virtual_hosts"][0]["routes"]
    served = [r["match"]["path"] for r in routes if "path" in r["match"]]
    assert set(docs_bodies()) <= set(served)
    assert routes[-1]["match"] == {"prefix": "/"}
    largest = max(len(body) for _, body in docs_bodies().values())
    assert largest <= route_config["max_direct_response_body_size_bytes"] == DOCS_MAX_BODY_BYTES


def test_docs_can_be_left_out() -> None:
    # The Helm chart's config goes without (a ConfigMap holds at most 1 MiB).
    config = yaml.safe_load(render_config(8080, 9901, {"auth": ("127.0.0.1", 50051)}, docs=False))
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert not {r["match"].get("path") for r in routes} & set(docs_bodies())
    assert len(yaml.safe_dump(config)) < 256 * 1024


def test_openapi_json_is_the_committed_document(stack) -> None:
    response = httpx.get(f"{stack.http_url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == OPENAPI_PATH.read_bytes()
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_docs_page_loads_only_assets_of_the_edge(stack) -> None:
    response = httpx.get(f"{stack.http_url}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    links = page_links(response.text)
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"} <= set(links)
    for link in links:
        # Same origin only: no CDN, no scheme-relative `//host/...`.
        assert link.startswith("/") and not link.startswith("//"), link
    expected = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".png": "image/png",
    }
    for link in links:
        asset = httpx.get(f"{stack.http_url}{link}")
        assert asset.status_code == 200, link
        assert asset.headers["content-type"] == expected[Path(link).suffix], link
        assert asset.content == docs_bodies()[link][1]


def test_initializer_points_at_our_document_and_no_online_validator(stack) -> None:
    script = httpx.get(f"{stack.http_url}/docs/swagger-initializer.js").text
    assert 'url: "/openapi.json"' in script
    assert "validatorUrl: null" in script


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_docs_answer_only_reads(stack, method: str) -> None:
    response = httpx.request(method, f"{stack.http_url}/openapi.json")
    assert response.status_code == 404
    assert response.json()["code"] == 5
