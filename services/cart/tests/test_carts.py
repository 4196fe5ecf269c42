"""The cart service's internal RPCs (as orders calls them) and the purge of abandoned carts."""

from __future__ import annotations

import uuid

import grpc
import pytest
from cart_service.carts import Carts, Owner
from cart_service.catalog import Catalog
from cart_service.config import CartSettings
from cart_service.store import inbox, outbox
from ecom_runtime.clients import ServiceClient
from ecom_runtime.db import Database
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, internal_channel, tag, unique_email


@pytest.fixture(scope="module")
async def admin(auth_channel):
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    return (("authorization", f"Bearer {session.access_token}"),)


@pytest.fixture
async def product_id(stack, admin) -> str:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["catalog"]) as channel:
        created = await catalog_pb2_grpc.ProductServiceStub(channel).CreateProduct(
            catalog_pb2.CreateProductRequest(
                sku=f"INT-{tag()}", name="Internal Mug", price_cents=900, stock=20
            ),
            metadata=admin,
        )
    return created.id


async def signed_in(auth_channel) -> tuple[str, tuple[tuple[str, str], ...]]:
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Register(
        auth_pb2.RegisterRequest(email=unique_email("cartint"), password="long enough pw", name="I")
    )
    return session.user.id, (("authorization", f"Bearer {session.access_token}"),)


async def test_orders_reads_and_clears_a_users_cart(stack, auth_channel, product_id) -> None:
    user_id, headers = await signed_in(auth_channel)
    async with grpc.aio.insecure_channel(stack.grpc_addrs["cart"]) as channel:
        await cart_pb2_grpc.CartServiceStub(channel).AddCartItem(
            cart_pb2.AddCartItemRequest(product_id=product_id, quantity=3), metadata=headers
        )
    async with internal_channel(stack, "cart") as channel:
        internal = cart_pb2_grpc.CartInternalServiceStub(channel)
        cart = await internal.GetCartForUser(cart_pb2.GetCartForUserRequest(user_id=user_id))
        assert [(i.product_id, i.quantity) for i in cart.items] == [(product_id, 3)]
        assert cart.subtotal_cents == 2700
        for _ in range(2):  # idempotent
            await internal.ClearCartForUser(cart_pb2.ClearCartForUserRequest(user_id=user_id))
        empty = await internal.GetCartForUser(cart_pb2.GetCartForUserRequest(user_id=user_id))
        assert list(empty.items) == []
        nobody = await internal.GetCartForUser(
            cart_pb2.GetCartForUserRequest(user_id=str(uuid.uuid4()))
        )
        assert list(nobody.items) == [] and nobody.currency == "USD"


async def test_internal_rpcs_need_the_service_credential(stack) -> None:
    async with grpc.aio.insecure_channel(stack.grpc_addrs["cart"]) as channel:
        internal = cart_pb2_grpc.CartInternalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await internal.GetCartForUser(cart_pb2.GetCartForUserRequest(user_id=str(uuid.uuid4())))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_abandoned_guest_carts_are_purged_and_user_carts_kept(
    stack, sql, auth_channel, product_id
) -> None:
    settings = CartSettings(database_url=stack.database_url, **_credentials(stack))
    catalog = ServiceClient.to("catalog", stack.grpc_addrs["catalog"], settings)
    carts = Carts(Database.for_service(settings, outbox=outbox, inbox=inbox), Catalog(catalog))
    try:
        stale = await carts.add(Owner(), product_id, 1)
        fresh = await carts.add(Owner(), product_id, 1)
        user_id, _ = await signed_in(auth_channel)
        await carts.add(Owner(user_id=uuid.UUID(user_id)), product_id, 1)
        sql(
            "update cart.carts set updated_at = now() - interval '31 days' "
            "where user_id is not null or token_hash = sha256(%s::bytea)",
            stale.cart_token.encode(),
        )
        assert await carts.purge_abandoned(30 * 24 * 3600) == 1
        assert (await carts.view(Owner(token=stale.cart_token))).lines == []
        assert len((await carts.view(Owner(token=fresh.cart_token))).lines) == 1
        assert len((await carts.view(Owner(user_id=uuid.UUID(user_id)))).lines) == 1
    finally:
        await catalog.close()
        await carts.db.dispose()


def _credentials(stack) -> dict[str, str]:
    return {"service_credentials": stack.service_credential}
