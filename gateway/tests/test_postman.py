"""The Postman collection `make postman` builds (gateway/postman/build.py) from openapi.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ecom_gateway.envoy import OPENAPI_PATH

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch"}


def requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The collection's requests, out of their folders."""
    found = []
    for item in items:
        found += requests(item["item"]) if "item" in item else [item["request"]]
    return found


def test_collection_has_every_operation_and_a_base_url(tmp_path: Path) -> None:
    out = tmp_path / "collection.json"
    build = [sys.executable, ROOT / "gateway" / "postman" / "build.py", "--out", out]
    subprocess.run(build, check=True, timeout=300)
    collection = json.loads(out.read_text())
    openapi = json.loads(OPENAPI_PATH.read_text())

    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == openapi["servers"][0]["url"]
    # Postman writes path parameters `{id}` as `:id`.
    expected = {
        (method.upper(), re.sub(r"\{([^}]+)\}", r":\1", path))
        for path, operations in openapi["paths"].items()
        for method in operations
        if method in METHODS
    }
    got = []
    for request in requests(collection["item"]):
        assert request["url"]["host"] == ["{{baseUrl}}"]
        got.append((request["method"], "/" + "/".join(request["url"]["path"])))
    assert sorted(got) == sorted(expected)
