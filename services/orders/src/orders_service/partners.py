"""What orders asks of the catalog, the cart and payments: thin, typed wrappers over their
internal RPCs (each call has a deadline and retries only where the proto says it is safe;
see ecom_runtime.clients)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ecom_runtime.clients import ServiceClient
from ecom_runtime.errors import FailedPrecondition
from ecommerce.cart.v1 import cart_pb2, cart_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.payments.v1 import payments_pb2, payments_pb2_grpc

MAX_PER_CALL = 100  # CatalogInternalService.GetProducts takes at most this many ids
PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"  # payments' reason for "cannot cancel: it is paid"


@dataclass(frozen=True)
class Offer:
    """A product as the catalog sells it right now."""

    product_id: uuid.UUID
    name: str
    price_cents: int
    currency: str
    active: bool


class Catalog:
    def __init__(self, client: ServiceClient) -> None:
        self._rpc = client.stub(catalog_pb2_grpc.CatalogInternalServiceStub)

    async def offers(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Offer]:
        """The live products among `ids` (unknown or deleted ones are absent)."""
        found: dict[uuid.UUID, Offer] = {}
        for start in range(0, len(ids), MAX_PER_CALL):
            batch = [str(i) for i in ids[start : start + MAX_PER_CALL]]
            reply = await self._rpc.GetProducts(catalog_pb2.GetProductsRequest(ids=batch))
            for p in reply.products:
                offer = Offer(uuid.UUID(p.id), p.name, p.price_cents, p.currency or "USD", p.active)
                found[offer.product_id] = offer
        return found

    async def reserve(
        self, reservation_id: uuid.UUID, items: list[tuple[str, int]], ttl_seconds: int
    ) -> bool:
        """Holds the stock (all or nothing; OUT_OF_STOCK / PRODUCT_UNAVAILABLE otherwise).
        False when this reservation was already given back (a re-run after a release)."""
        reply = await self._rpc.ReserveStock(
            catalog_pb2.ReserveStockRequest(
                reservation_id=str(reservation_id),
                items=[catalog_pb2.ReservationItem(product_id=p, quantity=q) for p, q in items],
                ttl_seconds=ttl_seconds,
            )
        )
        return reply.state in (
            catalog_pb2.RESERVATION_STATE_ACTIVE,
            catalog_pb2.RESERVATION_STATE_COMMITTED,
        )

    async def commit(self, reservation_id: uuid.UUID) -> None:
        await self._rpc.CommitReservation(
            catalog_pb2.CommitReservationRequest(reservation_id=str(reservation_id))
        )

    async def release(self, reservation_id: uuid.UUID) -> None:
        await self._rpc.ReleaseReservation(
            catalog_pb2.ReleaseReservationRequest(reservation_id=str(reservation_id))
        )

    async def count_low_stock(self) -> int:
        reply = await self._rpc.CountLowStockProducts(catalog_pb2.CountLowStockProductsRequest())
        return reply.count


class Carts:
    def __init__(self, client: ServiceClient) -> None:
        self._rpc = client.stub(cart_pb2_grpc.CartInternalServiceStub)

    async def lines(self, user_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
        """(product, quantity) of the user's cart, in the cart's order."""
        cart = await self._rpc.GetCartForUser(cart_pb2.GetCartForUserRequest(user_id=str(user_id)))
        return [(uuid.UUID(item.product_id), item.quantity) for item in cart.items]

    async def clear(self, user_id: uuid.UUID) -> None:
        await self._rpc.ClearCartForUser(cart_pb2.ClearCartForUserRequest(user_id=str(user_id)))


@dataclass(frozen=True)
class Outcome:
    """What confirming a payment came to."""

    status: int  # payments_pb2.PaymentStatus
    failure_code: str = ""
    failure_message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == payments_pb2.PAYMENT_STATUS_SUCCEEDED


class Payments:
    def __init__(self, client: ServiceClient) -> None:
        self._rpc = client.stub(payments_pb2_grpc.PaymentInternalServiceStub)

    async def create_intent(
        self, order_id: uuid.UUID, amount_cents: int, currency: str, user_id: uuid.UUID
    ) -> payments_pb2.CreatePaymentIntentResponse:
        """The order's one PaymentIntent (the same one however often this is called)."""
        return await self._rpc.CreatePaymentIntent(
            payments_pb2.CreatePaymentIntentRequest(
                order_id=str(order_id),
                amount_cents=amount_cents,
                currency=currency,
                idempotency_key=f"order:{order_id}",
                user_id=str(user_id),
            )
        )

    async def confirm(self, payment_intent_id: str, payment_method_id: str) -> Outcome:
        reply = await self._rpc.ConfirmPayment(
            payments_pb2.ConfirmPaymentRequest(
                payment_intent_id=payment_intent_id, payment_method_id=payment_method_id
            )
        )
        return Outcome(reply.status, reply.failure_code, reply.failure_message)

    async def cancel(self, payment_intent_id: str) -> bool:
        """Stops the payment (its client secret no longer works): False. True when it had
        already succeeded. FailedPrecondition when Stripe cannot tell yet (processing)."""
        try:
            await self._rpc.CancelPaymentIntent(
                payments_pb2.CancelPaymentIntentRequest(payment_intent_id=payment_intent_id)
            )
        except FailedPrecondition as refused:
            if refused.reason == PAYMENT_SUCCEEDED:
                return True
            raise
        return False

    async def refund_all(self, order_id: uuid.UUID, idempotency_key: str, reason: str) -> None:
        """Refunds what is left of the order's payment; a retry with the key refunds no more."""
        await self._rpc.RefundPayment(
            payments_pb2.RefundPaymentRequest(
                order_id=str(order_id), idempotency_key=idempotency_key, reason=reason
            )
        )
