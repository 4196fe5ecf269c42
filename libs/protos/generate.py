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


def run_protoc(args: list[str]) -> None:
    includes = [f"-I{PROTOS}", f"-I{GOOGLEAPIS_INCLUDE}", f"-I{WKT_INCLUDE}"]
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


if __name__ == "__main__":
    main()
