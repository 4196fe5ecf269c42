"""`python -m ratelimit_service serve`."""

from __future__ import annotations

import argparse
import asyncio

from ecom_runtime.logs import configure_logging
from ecom_runtime.telemetry import configure_telemetry

from ratelimit_service.config import RateLimitSettings
from ratelimit_service.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ratelimit_service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server")
    parser.parse_args()
    settings = RateLimitSettings()
    configure_logging("ratelimit", settings.log_level, settings.log_format)
    configure_telemetry("ratelimit")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
