"""gRPC servicers of the cart: proto messages in and out; the rules live in carts.py."""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import call_header, require_user, sent_credentials
from ecom_runtime.errors import PermissionDenied
from ecom_runtime.validation import parse_uuid
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc

from cart_service.carts import Carts, CartView, Owner

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
CART_TOKEN_HEADER = "x-cart-token"  # noqa: S105 (a header name)


def cart_message(view: CartView) -> cart_pb2.Cart:
    return cart_pb2.Cart(
        items=[
            cart_pb2.CartItem(
                id=str(line.id),
                product_id=str(line.product_id),
                name=line.name,
                unit_price_cents=line.unit_price_cents,
                quantity=line.quantity,
                line_total_cents=line.total_cents,
            )
            for line in view.lines
        ],
        subtotal_cents=view.subtotal_cents,
        currency=view.currency,
        item_count=view.item_count,
        cart_token=view.cart_token,
        notices=view.notices,
    )


async def signed_in_user() -> uuid.UUID:
    principal = await require_user()
    if principal.user_id is None:
        raise PermissionDenied("an API key has no cart; sign in as a user")
    return uuid.UUID(principal.user_id)


async def caller() -> Owner:
    """A signed-in user's cart when credentials came (bad ones are a 401: a cart is personal),
    else the guest cart the X-Cart-Token header names."""
    if sent_credentials():
        return Owner(user_id=await signed_in_user())
    return Owner(token=call_header(CART_TOKEN_HEADER))


class CartServicer(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, carts: Carts) -> None:
        self._carts = carts

    async def GetCart(self, request: cart_pb2.GetCartRequest, context: Context) -> Any:
        return cart_message(await self._carts.view(await caller()))

    async def AddCartItem(self, request: cart_pb2.AddCartItemRequest, context: Context) -> Any:
        view = await self._carts.add(await caller(), request.product_id, request.quantity)
        return cart_message(view)

    async def UpdateCartItem(
        self, request: cart_pb2.UpdateCartItemRequest, context: Context
    ) -> Any:
        view = await self._carts.update(await caller(), request.id, request.quantity)
        return cart_message(view)

    async def DeleteCartItem(
        self, request: cart_pb2.DeleteCartItemRequest, context: Context
    ) -> Any:
        return cart_message(await self._carts.remove(await caller(), request.id))

    async def ClearCart(self, request: cart_pb2.ClearCartRequest, context: Context) -> Any:
        return cart_message(await self._carts.clear(await caller()))

    async def MergeCart(self, request: cart_pb2.MergeCartRequest, context: Context) -> Any:
        user_id = await signed_in_user()  # merging is what signing in is for
        return cart_message(await self._carts.merge(user_id, request.cart_token))


class CartInternalServicer(cart_pb2_grpc.CartInternalServiceServicer):
    def __init__(self, carts: Carts) -> None:
        self._carts = carts

    async def GetCartForUser(
        self, request: cart_pb2.GetCartForUserRequest, context: Context
    ) -> Any:
        user_id = parse_uuid("user_id", request.user_id)
        return cart_message(await self._carts.view(Owner(user_id=user_id)))

    async def ClearCartForUser(
        self, request: cart_pb2.ClearCartForUserRequest, context: Context
    ) -> Any:
        await self._carts.clear(Owner(user_id=parse_uuid("user_id", request.user_id)))
        return cart_pb2.ClearCartForUserResponse()
