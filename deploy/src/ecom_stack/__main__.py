"""`python -m ecom_stack` (`make dev`): start the whole local stack; Ctrl-C stops it.

The state dir (data, logs, Maildir) defaults to `<repo>/.local/stack` (gitignored), or
`STACK_STATE_DIR`. Ports are the dev defaults, each overridable (see `ecom_stack.ports`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from ecom_stack.lock import AlreadyRunning, acquire_lock
from ecom_stack.procs import StackError
from ecom_stack.sample_data import seed_accounts, seed_products
from ecom_stack.stack import SERVICES, LocalStack


def default_state_dir() -> Path:
    """`<repo>/.local/stack`, the repo being the uv workspace root above the cwd."""
    if os.environ.get("STACK_STATE_DIR"):
        return Path(os.environ["STACK_STATE_DIR"])
    here = Path.cwd()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
            return folder / ".local" / "stack"
    return here / ".local" / "stack"


def wipe(state_dir: Path, keep: str) -> None:
    # The lock file stays: deleting it while held would let a second launcher lock a new one.
    for entry in state_dir.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def seed_sample_data(stack: LocalStack) -> None:
    """First start only: the sample catalog and demo accounts, each through the service that
    owns it. A failure is reported, not fatal: the stack still works and it can be rerun."""
    print("first start: loading sample data ...", flush=True)
    env = {**os.environ, **stack.service_env()}
    try:
        print(f"  {seed_products(env)}", flush=True)
        if "auth" in stack.services:
            print(f"  {seed_accounts(env, stack.grpc_addrs['auth'])}", flush=True)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"sample data not loaded: {error}", file=sys.stderr, flush=True)
        print("retry: .venv/bin/python -m ecom_stack.sample_data", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGINT and SIGTERM both stop the stack as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecom_stack", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="wipe the state dir first")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="default: $STACK_STATE_DIR or <repo>/.local/stack",
    )
    parser.add_argument(
        "--services",
        default=",".join(SERVICES),
        help="comma-separated services to run (default: all; empty: infrastructure only)",
    )
    parser.add_argument("--no-edge", action="store_true", help="do not start Envoy")
    args = parser.parse_args(argv)
    state_dir: Path = (args.state_dir or default_state_dir()).resolve()

    try:
        acquire_lock(state_dir)  # the fd stays open (and locked) until we exit
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    try:
        stack = LocalStack(state_dir, services=services, edge=not args.no_edge)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    busy = stack.ports.busy()
    if busy:
        print("\n".join(busy), file=sys.stderr)
        return 1
    if args.fresh:
        wipe(state_dir, keep="stack.lock")
    # First start (no PostgreSQL data yet): load sample data once everything is up.
    if "catalog" in stack.services and not (state_dir / "postgres/data/PG_VERSION").exists():
        stack.post_start_hooks.append(seed_sample_data)

    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        stack.start()
        width = max(map(len, stack.urls()))
        for label, url in stack.urls().items():
            print(f"  {label:<{width}}  {url}")
        print(f"local stack ready in {stack.startup_seconds:.1f} s; Ctrl-C stops it", flush=True)
        reported: set[str] = set()
        while True:
            time.sleep(1)
            for proc, exit_code in stack.exited():
                if proc.name not in reported:
                    reported.add(proc.name)
                    print(f"{proc.name} exited with code {exit_code}; see {proc.log}", flush=True)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        print(exc, file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut stop() short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print("stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
