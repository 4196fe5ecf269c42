"""Manual check: does the Swagger UI page at the edge's /docs render in a real browser, using
nothing but the edge? Not part of `make test`: it needs Debian's Chromium, which the project's
files cannot install (`apt-get install -y chromium`).

    .venv/bin/python gateway/check_docs_in_browser.py [--url http://127.0.0.1:8080] \
        [--screenshot docs.png]

Without --url it starts its own throw-away stack on free loopback ports (LocalStack, ephemeral)
and stops it at the end. Headless Chromium loads /docs twice: once dumping the DOM after the UI
ran (every path of openapi.json must appear as a rendered operation) with a net log of every
URL the page requested (each must be on the edge's own host), once for a screenshot. Exits 1
and says why when a check fails. Other hosts are made unresolvable for the browser, so a CDN
reference fails the first check even if the net log were to miss it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ecom_gateway.envoy import OPENAPI_PATH

# No first-run, sync, update or safe-browsing traffic of the browser's own in the net log.
QUIET = [
    "--headless=new",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",  # run the page's scripts and fetches before dumping
]


def chromium(profile: Path, *args: str) -> str:
    binary = shutil.which("chromium") or sys.exit("no chromium: apt-get install -y chromium")
    argv = [binary, *QUIET, f"--user-data-dir={profile}", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def requested_urls(net_log: Path) -> dict[str, str]:
    """URL -> the origin that asked for it ("" for the browser itself: navigation, updates)."""
    log = json.loads(net_log.read_text())
    urls: dict[str, str] = {}
    for event in log.get("events", []):
        params = event.get("params")
        if isinstance(params, dict) and str(params.get("url", "")).startswith("http"):
            initiator = params.get("initiator", "")
            urls[params["url"]] = urls.get(params["url"]) or initiator
    return urls


def check(base_url: str, screenshot: Path) -> list[str]:
    problems = []
    page = f"{base_url}/docs"
    with tempfile.TemporaryDirectory() as tmp:
        net_log = Path(tmp) / "net-log.json"
        dom = chromium(Path(tmp) / "profile", f"--log-net-log={net_log}", "--dump-dom", page)
        urls = requested_urls(net_log)
        chromium(
            Path(tmp) / "profile2", "--window-size=1280,1600", f"--screenshot={screenshot}", page
        )

    paths = json.loads(OPENAPI_PATH.read_text())["paths"]
    # Swagger UI writes each operation's path as data-path on its summary.
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    missing = sorted(set(paths) - rendered)
    print(f"rendered {len(rendered)} of {len(paths)} paths; e.g. {sorted(rendered)[:3]}")
    if missing:
        problems.append(f"paths not rendered: {missing}")
    edge = urlsplit(base_url).netloc
    origin = f"{urlsplit(base_url).scheme}://{edge}"
    by_page = sorted(u for u, by in urls.items() if by == origin or u == page)
    print("requested by the page:", *by_page, sep="\n  ")
    # Chromium's own update/account pings, made whatever the page; the resolver rules above
    # keep them from leaving the machine.
    own = sorted(u for u in set(urls) - set(by_page) if urlsplit(u).netloc != edge)
    print(f"the browser's own requests (not the page's, never resolved): {len(own)}")
    foreign = [u for u in by_page if urlsplit(u).netloc != edge]
    if foreign:
        problems.append(f"requests off the edge: {foreign}")
    print(f"screenshot: {screenshot}")
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check /docs in headless Chromium.")
    parser.add_argument("--url", help="a running edge (default: start a throw-away stack)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs-screenshot.png"))
    args = parser.parse_args(argv)
    if args.url:
        problems = check(args.url.rstrip("/"), args.screenshot.resolve())
    else:
        from ecom_stack.stack import LocalStack

        with (
            tempfile.TemporaryDirectory() as state,
            LocalStack(state, free_ports=True, ephemeral=True) as stack,
        ):
            problems = check(stack.http_url, args.screenshot.resolve())
    if problems:
        sys.exit("\n".join(problems))
    print("OK: /docs rendered every operation, and nothing left the edge")


if __name__ == "__main__":
    main()
