"""Generate Python code, type stubs and the gateway's descriptor set from protos/.

Run with `make protos`; `make protos-check` runs it and fails if the committed output changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
OUT = ROOT / "libs" / "protos" / "src"
DESCRIPTOR_SET = ROOT / "gateway" / "src" / "ecom_gateway" / "api_descriptor.pb"
# Well-known types ship with grpc_tools; google/api/*.proto with googleapis-common-protos.
WKT_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"
GOOGLEAPIS_INCLUDE = Path(next(iter(google.api.__path__))).parent.parent
# buf lints offline against a local copy of the google/api protos we import.
BUF_DEPS = ROOT / "build" / "proto-deps" / "google" / "api"
# Error detail types the gateway must resolve to print google.rpc.Status details as JSON.
EXTRA_FOR_GATEWAY = ["google/rpc/error_details.proto", "google/rpc/status.proto"]
# The trimmed Envoy rate-limit service protos our rate-limit service implements; kept out of
# the ecom-protos package and of the gateway's descriptor set (not part of our API).
RLS_PROTOS = ROOT / "services" / "ratelimit" / "third_party"
RLS_OUT = ROOT / "services" / "ratelimit" / "src"


def run_protoc(args: list[str], root: Path = PROTOS) -> None:
    includes = [f"-I{root}", f"-I{GOOGLEAPIS_INCLUDE}", f"-I{WKT_INCLUDE}"]
    if protoc.main(["protoc", *includes, *args]) != 0:
        sys.exit(f"protoc failed: {' '.join(args[:3])} ...")


def main() -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    shutil.rmtree(OUT / "ecommerce", ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    run_protoc(
        [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--mypy_out=quiet:{OUT}",
            f"--mypy_grpc_out=quiet:{OUT}",
            *sources,
        ]
    )
    # Make every generated folder a regular package so tools (mypy, hatch) agree on names.
    for folder in [OUT / "ecommerce", *(OUT / "ecommerce").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (OUT / "ecommerce" / "py.typed").touch()
    generate_rls(bin_dir)
    run_protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR_SET}",
            *sources,
            *EXTRA_FOR_GATEWAY,
        ]
    )
    BUF_DEPS.mkdir(parents=True, exist_ok=True)
    for name in ("annotations.proto", "http.proto", "field_behavior.proto", "httpbody.proto"):
        shutil.copyfile(GOOGLEAPIS_INCLUDE / "google" / "api" / name, BUF_DEPS / name)
    print(f"generated {len(sources)} proto files into {OUT.relative_to(ROOT)}")


def generate_rls(bin_dir: Path) -> None:
    """Python code and stubs for the vendored Envoy rate-limit protos (services/ratelimit)."""
    sources = sorted(str(p.relative_to(RLS_PROTOS)) for p in RLS_PROTOS.rglob("*.proto"))
    package = RLS_OUT / "envoy_rls"
    shutil.rmtree(package, ignore_errors=True)
    run_protoc(
        [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={RLS_OUT}",
            f"--grpc_python_out={RLS_OUT}",
            f"--mypy_out=quiet:{RLS_OUT}",
            f"--mypy_grpc_out=quiet:{RLS_OUT}",
            *sources,
        ],
        root=RLS_PROTOS,
    )
    for folder in [package, *package.rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (package / "py.typed").touch()


if __name__ == "__main__":
    main()
