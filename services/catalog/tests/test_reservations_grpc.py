"""Reservations through the catalog's internal gRPC API, as orders will call it."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from ecommerce.catalog.v1 import catalog_pb2 as pb
from google.rpc import error_details_pb2

from conftest import details, reason, rpc_error


def precondition_failures(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    failure = error_details_pb2.PreconditionFailure()
    found = next(d for d in details(error) if d.Unpack(failure))
    assert found
    return [(v.type, v.subject) for v in failure.violations]


async def test_a_hundred_concurrent_checkouts_sell_exactly_the_stock(
    internal, products, make_product
):
    product = await make_product(stock=10)

    async def reserve() -> pb.Reservation | grpc.aio.AioRpcError:
        request = pb.ReserveStockRequest(
            reservation_id=str(uuid.uuid4()),
            items=[pb.ReservationItem(product_id=product.id, quantity=1)],
        )
        try:
            return await internal.ReserveStock(request)
        except grpc.aio.AioRpcError as error:
            return error

    results = await asyncio.gather(*(reserve() for _ in range(100)))
    reserved = [r for r in results if isinstance(r, pb.Reservation)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(reserved) == 10
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert precondition_failures(refused[0]) == [("OUT_OF_STOCK", product.id)]
    assert reason(refused[0]) == "OUT_OF_STOCK"  # the google.rpc.ErrorInfo clients switch on
    shown = await products.GetProduct(pb.GetProductRequest(id=product.id))
    assert shown.stock == 0  # what customers see drops as checkouts reserve


async def test_reserve_commit_release_round_trip(internal, products, make_product) -> None:
    product = await make_product(stock=5)
    rid = str(uuid.uuid4())
    request = pb.ReserveStockRequest(
        reservation_id=rid, items=[pb.ReservationItem(product_id=product.id, quantity=2)]
    )
    first = await internal.ReserveStock(request)
    again = await internal.ReserveStock(request)  # a retried call reserves nothing more
    assert first.state == again.state == pb.RESERVATION_STATE_ACTIVE
    assert (await products.GetProduct(pb.GetProductRequest(id=product.id))).stock == 3
    committed = await internal.CommitReservation(pb.CommitReservationRequest(reservation_id=rid))
    assert committed.state == pb.RESERVATION_STATE_COMMITTED
    released = await internal.ReleaseReservation(pb.ReleaseReservationRequest(reservation_id=rid))
    assert released.state == pb.RESERVATION_STATE_RELEASED
    assert (await products.GetProduct(pb.GetProductRequest(id=product.id))).stock == 5
    refused = await rpc_error(
        internal.CommitReservation(pb.CommitReservationRequest(reservation_id=rid))
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
