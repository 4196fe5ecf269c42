"""Fuzzes every operation of the generated OpenAPI document through the Envoy edge with
schemathesis (CLI, as a subprocess): once anonymously, once as a customer and once as an admin.

Checks: no 5xx, every status code, content type and body documented as the spec says, and no
request hangs (a request timeout). The spec is what ecom_gateway.openapi generates from the
protos, so a finding is a service bug or a gap in the spec. Routes whose service is not built
yet answer 501 "... is not implemented yet" to everything; they are listed, not failed.

Bounded: a few examples per operation, a request timeout and a wall-clock cap per identity.
`FUZZ_SEED` changes the seed, `FUZZ_MAX_EXAMPLES` the examples per operation.
"""

from __future__ import annotations

import base64
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from ecom_gateway.openapi import OPENAPI_PATH

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, unique_email

HOOKS = Path(__file__).with_name("hooks.py")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
REQUEST_TIMEOUT = 10  # seconds; a request that takes longer is a finding (a hang)
RUN_TIMEOUT = 150  # seconds per identity; the whole run is killed after that
NOT_IMPLEMENTED = "is not implemented yet"


@dataclass
class Finding:
    identity: str
    operation: str
    check: str
    status: int | None
    message: str
    request: str
    response: str
    count: int = 1

    def __str__(self) -> str:
        return (
            f"[{self.identity}] {self.operation}: {self.check} -> {self.status}"
            f" {self.message}\n    request:  {self.request}\n    response: {self.response}"
            + (f"\n    ({self.count} similar cases)" if self.count > 1 else "")
        )


@dataclass
class FuzzRun:
    identity: str
    seconds: float
    requests: int
    exit_code: int | None
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unimplemented: set[str] = field(default_factory=set)
    output: str = ""  # the end of what the CLI printed

    def summary(self) -> str:
        return (
            f"{self.identity}: {self.requests} requests in {self.seconds:.0f} s,"
            f" {len(self.findings)} findings, {len(self.errors)} errors"
            f" (schemathesis exit code {self.exit_code})"
        )


def run_schemathesis(
    base_url: str,
    identity: str,
    headers: dict[str, str],
    workdir: Path,
    keep_ids: tuple[str, ...] = (),
    spec: Path = OPENAPI_PATH,
    request_timeout: float = REQUEST_TIMEOUT,
    extra: tuple[str, ...] = (),
) -> FuzzRun:
    """One schemathesis CLI run over every operation; findings read from its NDJSON events."""
    events = workdir / f"{identity}.ndjson"
    argv = [sys.executable, "-m", "schemathesis.cli", "run", str(spec)]
    argv += ["--url", base_url, "--checks", ",".join(CHECKS)]
    argv += ["--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "2"]
    argv += ["--request-timeout", str(request_timeout), "--suppress-health-check", "all"]
    argv += ["--generation-database", "none", "--no-color", "--output-sanitize", "false"]
    argv += ["--report", "ndjson", "--report-ndjson-path", str(events), *extra]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "FUZZ_KEEP_IDS": ",".join(keep_ids),  # never sent as a path id (see hooks.py)
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        exit_code: int | None = done.returncode
        output = done.stdout + done.stderr
        (workdir / f"{identity}.out").write_text(output)
    except subprocess.TimeoutExpired:
        exit_code, output = None, ""
    run = FuzzRun(identity, time.monotonic() - started, 0, exit_code, output=output[-3000:])
    if exit_code is None:
        run.errors.append(f"did not finish within {RUN_TIMEOUT} s")
    if events.exists():
        _read_events(run, events)
    return run


def _read_events(run: FuzzRun, path: Path) -> None:
    unique: dict[tuple[str, str, int | None, str], Finding] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        (kind, payload), *_ = event.items()
        if kind == "NonFatalError":  # e.g. a request timeout: the API hung
            error = payload["value"]
            run.errors.append(f"{payload.get('label')}: {error['type']}: {error['message']}")
        elif "Error" in kind:
            run.errors.append(f"{kind}: {json.dumps(payload)[:500]}")
        if kind != "ScenarioFinished":
            continue
        recorder = payload["recorder"]
        interactions = recorder.get("interactions", {})
        run.requests += len(interactions)
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                interaction = interactions.get(case_id, {})
                finding = _finding(run.identity, recorder["label"], check, interaction)
                if finding.status == 501 and NOT_IMPLEMENTED in finding.response:
                    run.unimplemented.add(finding.operation)
                    continue
                # One finding per operation, check, status and kind of error message.
                key = (finding.operation, finding.check, finding.status, _gist(finding.response))
                if key in unique:
                    unique[key].count += 1
                else:
                    unique[key] = finding
    run.findings = list(unique.values())


def _finding(identity: str, label: str, check: dict[str, Any], interaction: dict) -> Finding:
    failure = check.get("failure_info", {}).get("failure", {})
    request = interaction.get("request", {})
    response = interaction.get("response") or {}
    body = _text(request.get("body"))
    sent = f"{request.get('method', '?')} {request.get('uri', '?')}"
    extra = {k: v for k, v in request.get("headers", {}).items() if k.lower() != "authorization"}
    if extra:
        sent += f" headers={extra}"
    if body:
        sent += f" body={body[:300]}"
    return Finding(
        identity=identity,
        operation=failure.get("operation") or label,
        check=check["name"],
        status=response.get("status_code"),
        message=(failure.get("title", "") + ": " + failure.get("message", "")).strip(": "),
        request=sent,
        response=_text(response.get("content"))[:300],
    )


def _gist(body: str) -> str:
    """The start of an error body's message: "Illegal header key: x" -> "Illegal header key"."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body
    return message.split(":")[0][:60]


def _text(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", "replace")
    return "" if content is None else str(content)


def test_the_harness_fails_on_a_server_error_and_on_a_hang(tmp_path) -> None:
    """A route that answers 500 and one that hangs must both come out as problems."""

    released = threading.Event()  # set when the test is over: until then POST never answers

    class Broken(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # GET /api/categories: 500
            body = b'{"code":13,"message":"internal error","details":[]}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # POST /api/categories: hangs
            released.wait(30)

        def log_message(self, *args: Any) -> None:
            pass

    spec = json.loads(OPENAPI_PATH.read_text())
    spec["paths"] = {"/api/categories": spec["paths"]["/api/categories"]}
    one_route = tmp_path / "one-route.json"
    one_route.write_text(json.dumps(spec))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        phases = ("--phases", "examples,fuzzing", "--max-examples", "3")
        run = run_schemathesis(
            url, "broken", {}, tmp_path, spec=one_route, request_timeout=0.5, extra=phases
        )
    finally:
        released.set()
        server.shutdown()
    assert run.exit_code != 0 and run.requests > 0
    found = {(f.operation, f.check, f.status) for f in run.findings}
    assert ("GET /api/categories", "not_a_server_error", 500) in found, run.findings
    assert any("POST /api/categories" in e and "Timeout" in e for e in run.errors), run.errors


def test_the_hooks_never_send_the_test_admins_id(monkeypatch) -> None:
    keep = str(uuid.uuid4())
    monkeypatch.setenv("FUZZ_KEEP_IDS", keep)
    spec = importlib.util.spec_from_file_location("fuzz_hooks_under_test", HOOKS)
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    case = SimpleNamespace(path_parameters={"id": keep.upper()})
    hooks.before_call(None, case, {})
    assert case.path_parameters["id"] != keep.upper() and uuid.UUID(case.path_parameters["id"])
    other = SimpleNamespace(path_parameters={"id": "not-kept"})
    hooks.before_call(None, other, {})
    assert other.path_parameters == {"id": "not-kept"}


@pytest.fixture(scope="module")
def identities(stack) -> Iterator[dict[str, tuple[dict[str, str], tuple[str, ...]]]]:
    """Headers per identity, and the ids the fuzzer must never target (the test admin's)."""
    with httpx.Client(base_url=stack.http_url, timeout=10, trust_env=False) as client:
        admin = client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert admin.status_code == 200, admin.text
        customer = client.post(
            "/api/auth/register",
            json={"email": unique_email("fuzz"), "password": "fuzzing password", "name": "Fuzz"},
        )
        assert customer.status_code == 200, customer.text
    bearer = "Authorization"
    yield {
        "anonymous": ({}, ()),
        "customer": ({bearer: f"Bearer {customer.json()['access_token']}"}, ()),
        "admin": (
            {bearer: f"Bearer {admin.json()['access_token']}"},
            (admin.json()["user"]["id"],),
        ),
    }


# Three runs, each capped at RUN_TIMEOUT by the harness itself: pytest's default timeout
# (120 s) must not cut them short first on a slow machine.
@pytest.mark.timeout(3 * RUN_TIMEOUT + 60)
def test_fuzz_every_operation_anonymously_as_a_customer_and_as_an_admin(
    stack, identities, tmp_path
) -> None:
    runs = [
        run_schemathesis(stack.http_url, name, headers, tmp_path, keep_ids)
        for name, (headers, keep_ids) in identities.items()
    ]
    unimplemented = sorted(set().union(*(run.unimplemented for run in runs)))
    lines = [run.summary() for run in runs]
    lines.append(
        f"total: {sum(r.requests for r in runs)} requests in {sum(r.seconds for r in runs):.0f} s"
        f" (seed {SEED}, {MAX_EXAMPLES} examples per operation)"
    )
    if unimplemented:
        lines.append(f"not implemented yet (501), not fuzzed: {', '.join(unimplemented)}")
    lines.append(f"schemathesis output and events: {tmp_path}")
    print("\n".join(lines))
    problems = [str(f) for run in runs for f in run.findings]
    problems += [f"[{run.identity}] {error}" for run in runs for error in run.errors]
    for run in runs:
        assert run.requests > 0, "\n".join([*lines, run.output])
    assert not problems, "\n".join([*lines, "", *problems])
