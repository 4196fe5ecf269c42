"""`python -m notifications_service serve | migrate`."""

from __future__ import annotations

from pathlib import Path

from ecom_runtime.cli import run_service_cli

from notifications_service.config import NotificationsSettings
from notifications_service.server import build_app

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def main() -> None:
    run_service_cli("notifications", NotificationsSettings(), build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
