"""Who may call payments, and what callers get when Stripe hangs, is down or is not set up."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from ecommerce.payments.v1 import payments_pb2 as pb
from ecommerce.payments.v1 import payments_pb2_grpc

from conftest import reason, rpc_error, service_process


def create_request(order_id: str) -> pb.CreatePaymentIntentRequest:
    return pb.CreatePaymentIntentRequest(
        order_id=order_id, amount_cents=1000, currency="USD", idempotency_key=f"co:{order_id}"
    )


def credential(stack) -> tuple[tuple[str, str], ...]:
    """The metadata other services' calls carry (internal RPCs refuse callers without it)."""
    return (("x-service-credential", stack.service_credential),)


@contextlib.asynccontextmanager
async def payments_with(
    stack, **env: str
) -> AsyncIterator[payments_pb2_grpc.PaymentInternalServiceStub]:
    """Another payments process, its environment changed by `env`, once it is SERVING."""
    async with (
        service_process(stack, "payments", SHUTDOWN_DRAIN_SECONDS="0", **env) as (_, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield payments_pb2_grpc.PaymentInternalServiceStub(channel)


class HangingServer:
    """Accepts connections and never answers, like a Stripe that hangs, until `stop`."""

    def __init__(self) -> None:
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._release.wait()
        writer.close()

    async def stop(self) -> None:
        """From here on the port refuses connections: Stripe is down."""
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def test_internal_rpcs_need_the_service_credential(stack, stripe_intents) -> None:
    order_id = str(uuid.uuid4())
    async with grpc.aio.insecure_channel(stack.grpc_addrs["payments"]) as channel:
        internal = payments_pb2_grpc.PaymentInternalServiceStub(channel)
        for metadata in ((), (("x-service-credential", "a guess"),)):
            error = await rpc_error(
                internal.CreatePaymentIntent(create_request(order_id), metadata=metadata)
            )
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason(error) == "SERVICE_CREDENTIAL_REQUIRED"
    assert await stripe_intents(order_id) == []


async def test_a_stripe_outage_is_unavailable_within_the_timeout_and_a_retry_works(
    stack, payments
) -> None:
    order_id = str(uuid.uuid4())
    stripe_down = HangingServer()
    await stripe_down.start()
    try:
        async with payments_with(
            stack,
            STRIPE_API_BASE=f"http://127.0.0.1:{stripe_down.port}",
            STRIPE_TIMEOUT_SECONDS="1",
        ) as cut_off:
            for stripe_is in ("hanging", "refusing connections"):
                started = time.monotonic()
                error = await rpc_error(
                    cut_off.CreatePaymentIntent(
                        create_request(order_id), metadata=credential(stack)
                    )
                )
                assert error.code() == grpc.StatusCode.UNAVAILABLE, stripe_is
                assert time.monotonic() - started < 3, stripe_is
                await stripe_down.stop()
    finally:
        await stripe_down.stop()
    # Nothing half-made was left behind: the retry, with Stripe back, makes the intent.
    created = await payments.CreatePaymentIntent(create_request(order_id))
    assert created.payment_intent_id.startswith("pi_")


async def test_without_an_api_key_payments_are_unavailable_but_the_service_runs(stack) -> None:
    # payments_with returns once the health check says SERVING.
    async with payments_with(stack, STRIPE_API_KEY="") as unconfigured:
        error = await rpc_error(
            unconfigured.CreatePaymentIntent(
                create_request(str(uuid.uuid4())), metadata=credential(stack)
            )
        )
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert error.details() == "payments are not configured"
