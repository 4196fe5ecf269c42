"""`python -m payments_service serve | migrate`."""

from __future__ import annotations

from pathlib import Path

from ecom_runtime.cli import run_service_cli

from payments_service.server import Settings, build_app

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def main() -> None:
    run_service_cli("payments", Settings(), build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
