"""The command line every service shares: `python -m <svc>_service serve|migrate`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ecom_runtime.config import ServiceSettings
from ecom_runtime.logs import configure_logging

if TYPE_CHECKING:
    from ecom_runtime.server import App


def run_service_cli(
    name: str,
    settings: ServiceSettings,
    build_app: Callable[[], App],
    migrations: Path | None,
    extra_commands: dict[str, Callable[[argparse.Namespace], None]] | None = None,
    configure_parser: Callable[[argparse._SubParsersAction], None] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {name}_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server")
    commands.add_parser("migrate", help="apply database migrations up to the latest")
    if configure_parser:
        configure_parser(commands)
    args = parser.parse_args()
    configure_logging(name, settings.log_level, settings.log_format)
    # Imports per command: `migrate` needs no gRPC stack, `serve` no Alembic (start-up time).
    if args.command == "migrate":
        if migrations is not None:
            from ecom_runtime.migrations import upgrade_to_head

            upgrade_to_head(str(migrations))
    elif args.command == "serve":
        from ecom_runtime.server import serve
        from ecom_runtime.telemetry import configure_telemetry

        configure_telemetry(name)
        asyncio.run(serve(build_app()))
    elif extra_commands and args.command in extra_commands:
        extra_commands[args.command](args)
