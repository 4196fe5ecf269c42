"""`python -m orders_service serve | migrate`."""

from __future__ import annotations

from ecom_runtime.cli import run_service_cli

from orders_service.server import Settings, build_app


def main() -> None:
    run_service_cli("orders", Settings(), build_app, migrations=None)


if __name__ == "__main__":
    main()
