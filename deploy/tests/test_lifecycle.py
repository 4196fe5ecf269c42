"""Start-up failures, stop(), the parent-death signal, the dev launcher and the edge."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from ecom_stack import LocalStack, StackError
from ecom_stack import stack as stack_module
from ecom_stack.lock import acquire_lock
from ecom_stack.ports import DEFAULTS, env_var, free_ports
from ecom_stack.procs import spawn


def _family(leaders: set[int]) -> set[int]:
    """These children and all their descendants (postgres backends...)."""
    found = set(leaders)
    for pid in leaders:
        found |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


def _dev_env() -> dict[str, str]:
    """The dev launcher's environment with every port moved to a free one."""
    ports = free_ports(len(DEFAULTS))
    return {**os.environ, **{env_var(f): str(p) for f, p in zip(DEFAULTS, ports, strict=True)}}


def test_stop_leaves_no_process_and_is_idempotent(state_dir: Path) -> None:
    local = LocalStack(state_dir, free_ports=True, ephemeral=True, services=[], edge=False)
    local.start()
    family = _family(set(local.pids().values()))
    assert len(family) > 6  # leaders plus postgres' own processes
    local.stop()
    assert _alive(family) == set()
    assert local.pids() == {}
    local.stop()  # again: nothing to do, no error


def test_children_die_with_a_sigkilled_launcher(state_dir: Path) -> None:
    script = textwrap.dedent(f"""
        import json, sys, time
        from ecom_stack import LocalStack
        local = LocalStack({str(state_dir)!r}, free_ports=True, ephemeral=True,
                           services=[], edge=False)
        local.start()
        print(json.dumps(list(local.pids().values())), flush=True)
        time.sleep(600)
    """)
    argv = [sys.executable, "-c", script]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as launcher:
        try:
            assert launcher.stdout is not None
            family = _family(set(json.loads(launcher.stdout.readline())))
        finally:
            launcher.kill()  # SIGKILL: no atexit, no stop(), only the parent-death signal
    assert _wait_gone(family, 15) == set()


def test_readiness_failure_reports_the_log_tail(state_dir: Path) -> None:
    local = LocalStack(state_dir, free_ports=True, services=[], edge=False, timeout=5)
    (state_dir / "logs").mkdir()
    code = "print('listening... not really', flush=True); raise SystemExit(3)"
    proc = spawn("fake", [sys.executable, "-c", code], state_dir / "logs" / "fake.log", os.environ)
    with pytest.raises(StackError, match=r"(?s)fake exited with code 3.*not really"):
        local._wait_all([(proc, lambda: False)])


def test_dev_launcher_refuses_a_second_instance(state_dir: Path) -> None:
    fd = acquire_lock(state_dir)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ecom_stack", "--state-dir", str(state_dir), "--no-edge"],
            capture_output=True,
            text=True,
            env=_dev_env(),
            timeout=30,
        )
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"the local stack is already running (pid {os.getpid()}); "
        "stop it with Ctrl-C in its terminal"
    )


def test_dev_launcher_names_a_busy_port_and_its_env_var(state_dir: Path) -> None:
    env = _dev_env()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env["STACK_REDIS_PORT"] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "ecom_stack", "--state-dir", str(state_dir), "--no-edge"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"port {port} (Redis) is already in use on 127.0.0.1; set STACK_REDIS_PORT to use another"
    )
    assert "Traceback" not in result.stderr


def test_dev_launcher_runs_until_ctrl_c(state_dir: Path) -> None:
    env = _dev_env()
    argv = [sys.executable, "-m", "ecom_stack", "--state-dir", str(state_dir)]
    argv += ["--services=", "--no-edge"]
    out = subprocess.PIPE
    with subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env) as first:
        try:
            assert first.stdout is not None
            lines: list[str] = []
            while not lines or not lines[-1].startswith("local stack ready"):
                line = first.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
            table = "".join(lines)
            assert f"redis://127.0.0.1:{env['STACK_REDIS_PORT']}/0" in table
            assert str(state_dir / "mail") in table

            second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
            assert second.returncode == 1
            assert f"already running (pid {first.pid})" in second.stderr

            first.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal does
            rest, _ = first.communicate(timeout=30)
            assert first.returncode == 0
            assert rest.strip() == "stopped"
        finally:
            if first.poll() is None:
                first.kill()


HCM = (
    "type.googleapis.com/envoy.extensions.filters.network."
    "http_connection_manager.v3.HttpConnectionManager"
)
STUB_ENVOY = """
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {http}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: edge
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{path: /healthz}}
                direct_response: {{status: 200, body: {{inline_string: ok}}}}
"""


def test_edge_starts_envoy_from_the_gateway_config(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ecom_gateway.envoy is written elsewhere; a stub config exercises the launcher's part.
    seen: list[dict[str, tuple[str, int]]] = []

    def render(
        http_port: int, admin_port: int, services: dict[str, tuple[str, int]], *_: object
    ) -> str:
        seen.append(services)
        return STUB_ENVOY.format(http=http_port, admin=admin_port, hcm=HCM)

    monkeypatch.setattr(stack_module, "_render_envoy_config", render)
    with LocalStack(state_dir, free_ports=True, ephemeral=True, services=[], edge=True) as local:
        assert seen == [{}]
        assert httpx.get(f"{local.http_url}/healthz", trust_env=False).text == "ok"
        assert httpx.get(f"{local.admin_url}/ready", trust_env=False).text.strip() == "LIVE"
        envoy_pid = local.pids()["envoy"]
    assert _alive({envoy_pid}) == set()
