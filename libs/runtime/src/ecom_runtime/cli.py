"""The command line every service shares: `python -m <svc>_service serve|migrate`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from ecom_runtime.config import ServiceSettings
from ecom_runtime.logs import configure_logging
from ecom_runtime.migrations import upgrade_to_head
from ecom_runtime.server import App, serve
from ecom_runtime.telemetry import configure_tracing


def run_service_cli(
    name: str,
    settings: ServiceSettings,
    build_app: Callable[[], App],
    migrations: Path | None,
    extra_commands: dict[str, Callable[[argparse.Namespace], None]] | None = None,
    configure_parser: Callable[[argparse._SubParsersAction], None] | None = None,  # type: ignore[type-arg]
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {name}_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server")
    commands.add_parser("migrate", help="apply database migrations up to the latest")
    if configure_parser:
        configure_parser(commands)
    args = parser.parse_args()
    configure_logging(name, settings.log_level, settings.log_format)
    if args.command == "migrate":
        if migrations is not None:
            upgrade_to_head(str(migrations))
    elif args.command == "serve":
        configure_tracing(name)
        asyncio.run(serve(build_app()))
    elif extra_commands and args.command in extra_commands:
        extra_commands[args.command](args)
