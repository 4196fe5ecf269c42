"""`python -m payments_service serve | migrate`."""

from __future__ import annotations

from ecom_runtime.cli import run_service_cli

from payments_service.server import Settings, build_app


def main() -> None:
    run_service_cli("payments", Settings(), build_app, migrations=None)


if __name__ == "__main__":
    main()
