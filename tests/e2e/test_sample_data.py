"""The local stack's sample data: each part made by the service that owns it."""

from __future__ import annotations

import asyncio
import os


async def test_sample_data_makes_the_demo_accounts_through_auth(stack, auth_channel) -> None:
    from ecom_stack.sample_data import (
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        CUSTOMER_EMAIL,
        CUSTOMER_PASSWORD,
        seed_accounts,
    )
    from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc

    env = {**os.environ, **stack.service_env()}
    for _ in range(2):  # idempotent
        await asyncio.to_thread(seed_accounts, env, stack.grpc_addrs["auth"])
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    admin = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    customer = await auth.Login(
        auth_pb2.LoginRequest(email=CUSTOMER_EMAIL, password=CUSTOMER_PASSWORD)
    )
    assert admin.user.role == auth_pb2.ROLE_ADMIN
    assert customer.user.role == auth_pb2.ROLE_CUSTOMER
