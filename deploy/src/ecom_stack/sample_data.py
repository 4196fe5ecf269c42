"""Sample data for a running stack: the catalog's sample products and two demo accounts, each
made by the service that owns it (catalog's `seed` command; auth's `create-admin` command and
Register RPC). Idempotent.

    admin@example.com / admin-password-1         (admin)
    customer@example.com / customer-password-1   (customer)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"
CUSTOMER_EMAIL, CUSTOMER_PASSWORD = "customer@example.com", "customer-password-1"


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 (our own argv)
        [sys.executable, "-m", *argv], env=dict(env), capture_output=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed:\n{done.stderr.decode()[-2000:]}")
    return done.stdout.decode().strip()


def seed_products(env: Mapping[str, str], products: int = 1000) -> str:
    return _run(["catalog_service", "seed", "--products", str(products)], env)


def seed_accounts(env: Mapping[str, str], auth_grpc_addr: str) -> str:
    """The admin through `create-admin` (the password by environment, never argv, which `ps`
    shows), the customer through Register (ALREADY_EXISTS means done)."""
    import grpc
    from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

    _run(
        ["auth_service", "create-admin", "--email", ADMIN_EMAIL, "--name", "Admin"],
        {**env, "AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    with grpc.insecure_channel(auth_grpc_addr) as channel:
        request = auth_pb2.RegisterRequest(
            email=CUSTOMER_EMAIL, password=CUSTOMER_PASSWORD, name="Casey Customer"
        )
        try:
            auth_pb2_grpc.AuthServiceStub(channel).Register(request, timeout=30)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
    return (
        f"accounts: {ADMIN_EMAIL} / {ADMIN_PASSWORD} (admin), "
        f"{CUSTOMER_EMAIL} / {CUSTOMER_PASSWORD} (customer)"
    )


def main() -> None:
    """`python -m ecom_stack.sample_data`, with the stack's service environment set."""
    env = dict(os.environ)
    print(seed_products(env))
    print(seed_accounts(env, env.get("AUTH_GRPC_ADDR", "127.0.0.1:50051")))


if __name__ == "__main__":
    main()
