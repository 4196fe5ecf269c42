"""`python -m auth_service serve | migrate | create-admin`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ecom_runtime.cli import run_service_cli

from auth_service.config import AuthSettings
from auth_service.server import build_app, build_parts, token_signer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def create_admin(args: argparse.Namespace) -> None:
    """Creates (or promotes) an admin. The password comes from AUTH_ADMIN_PASSWORD or a prompt,
    never from the command line, where it would land in shell history and `ps`."""
    password = os.environ.get("AUTH_ADMIN_PASSWORD") or getpass.getpass("Admin password: ")
    settings = AuthSettings()

    async def run() -> None:
        # It signs no tokens: a throwaway key, so no key file is read or created here.
        signer = token_signer(settings, Ed25519PrivateKey.generate())
        parts = build_parts(settings, signer, pool_size=1)
        user = await parts.users.ensure_admin(args.email, password, args.name)
        await parts.db.dispose()
        print(f"admin ready: {user.email} ({user.id})")

    asyncio.run(run())


def configure(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("create-admin", help="create or promote an admin account")
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Admin")


def main() -> None:
    run_service_cli(
        "auth",
        AuthSettings(),
        build_app,
        MIGRATIONS,
        extra_commands={"create-admin": create_admin},
        configure_parser=configure,
    )


if __name__ == "__main__":
    main()
