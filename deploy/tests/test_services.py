"""The services layer, driven by stand-in service packages (the real ones are written
elsewhere): migrate then serve, gRPC health, the environment, failure output."""

import json
import textwrap
from pathlib import Path

import pytest
from ecom_stack import LocalStack, StackError

FAKE_SERVICE = textwrap.dedent("""
    import asyncio, json, os, sys

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    NAME = __package__.removesuffix("_service")


    async def serve() -> None:
        server = grpc.aio.server()
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{os.environ['GRPC_PORT']}")
        await server.start()
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await server.wait_for_termination()


    if sys.argv[1] == "migrate":
        if os.environ.get("FAIL_MIGRATION") == NAME:
            print(f"{NAME}: relation \\"widgets\\" does not exist")
            sys.exit(2)
        env_file = os.path.join(os.environ["FAKE_ENV_DIR"], f"{NAME}.json")
        with open(env_file, "w") as f:
            json.dump(dict(os.environ), f)
    else:
        asyncio.run(serve())
""")


@pytest.fixture
def fake_services(tmp_path: Path) -> Path:
    for name in ("auth", "catalog"):
        package = tmp_path / f"{name}_service"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text(FAKE_SERVICE)
    return tmp_path


def test_services_migrate_then_serve_with_the_stack_env(
    state_dir: Path, fake_services: Path
) -> None:
    extra = {"PYTHONPATH": str(fake_services), "FAKE_ENV_DIR": str(fake_services)}
    local = LocalStack(
        state_dir,
        free_ports=True,
        ephemeral=True,
        services=["catalog", "auth"],
        edge=False,
        extra_env=extra,
    )
    with local:
        assert set(local.pids()) >= {"auth", "catalog"}
        seen = json.loads((fake_services / "auth.json").read_text())
        for key, value in local.service_env().items():
            assert seen[key] == value
    assert local.pids() == {}


def test_a_failed_migration_shows_its_output(state_dir: Path, fake_services: Path) -> None:
    extra = {
        "PYTHONPATH": str(fake_services),
        "FAKE_ENV_DIR": str(fake_services),
        "FAIL_MIGRATION": "catalog",
    }
    local = LocalStack(
        state_dir, free_ports=True, ephemeral=True, services=["auth", "catalog"], edge=False,
        extra_env=extra,
    )  # fmt: skip
    with pytest.raises(StackError, match=r'(?s)catalog migrate exited with code 2.*"widgets"'):
        local.start()
    assert local.pids() == {}
