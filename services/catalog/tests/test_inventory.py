"""Inventory and reservations against the stack's real PostgreSQL (and NATS for StockLow)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from catalog_service.events import PUBLISHED
from catalog_service.events import STOCK_LOW as SUBJECT_STOCK_LOW
from catalog_service.inventory import Inventory, ReservationView, StockLevelView
from catalog_service.store import inbox, outbox
from ecom_runtime.db import Database, create_engine
from ecom_runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ecom_runtime.events import STREAM, connect_jetstream
from ecommerce.events.v1 import events_pb2
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture(scope="module")
async def engine(stack) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(stack.database_url, pool_size=20)
    yield engine
    await engine.dispose()


class RecordingCache:
    """Stands in for the Redis cache: records the retirements (they run after commit)."""

    def __init__(self) -> None:
        self.retired: list[tuple[list[str], bool]] = []

    async def stock_changed(self, product_ids: list[str], crossed: bool) -> None:
        self.retired.append((product_ids, crossed))


def database(engine: AsyncEngine) -> Database:
    return Database(engine, outbox=outbox, inbox=inbox, subjects=PUBLISHED)


@pytest.fixture
def inventory(engine: AsyncEngine) -> Inventory:
    return Inventory(database(engine), RecordingCache())  # type: ignore[arg-type]


@pytest.fixture
def product(sql) -> Callable[..., str]:
    """Inserts a product straight into catalog.products and returns its id."""

    def make(on_hand: int = 10, threshold: int = 0, active: bool = True) -> str:
        pid = uuid.uuid4()
        sql(
            "insert into catalog.products (id, sku, name, price_cents, on_hand,"
            " low_stock_threshold, active) values (%s, %s, %s, 100, %s, %s, %s)",
            pid,
            f"inv-{pid.hex[:16]}",
            f"Widget {pid.hex[:6]}",
            on_hand,
            threshold,
            active,
        )
        return str(pid)

    return make


def stock(sql, pid: str) -> tuple[int, int]:
    [(on_hand, reserved)] = sql(
        "select on_hand, reserved from catalog.products where id = %s", uuid.UUID(pid)
    )
    return on_hand, reserved


def state(sql, rid: str) -> str | None:
    rows = sql("select state from catalog.reservations where id = %s", uuid.UUID(rid))
    return rows[0][0] if rows else None


def new_id() -> str:
    return str(uuid.uuid4())


def fields(error: InvalidArgument) -> set[str]:
    return {field for field, _ in error.violations}


# --- races ---------------------------------------------------------------------------------


async def test_120_buyers_for_10_units_exactly_10_win(inventory, product, sql) -> None:
    pid = product(on_hand=10)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(inventory.reserve(new_id(), [(pid, 1)], 0) for _ in range(120)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    won = [r for r in results if isinstance(r, ReservationView)]
    lost = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(won) == 10 and len(lost) == 110, [r for r in results if isinstance(r, Exception)]
    assert all(r.violations == [("OUT_OF_STOCK", pid, "only 0 available")] for r in lost)
    assert all(r.state == "active" and r.items == ((pid, 1),) for r in won)
    assert stock(sql, pid) == (10, 10)
    [(rows,)] = sql(
        "select count(*) from catalog.reservation_items where product_id = %s", uuid.UUID(pid)
    )
    assert rows == 10  # the losers left no reservation behind
    print(f"\n120 concurrent reservations for 10 units: 10 won, 110 refused in {elapsed:.2f}s")


async def test_overlapping_baskets_never_deadlock_and_stay_all_or_nothing(
    inventory, product, sql
) -> None:
    a, b, c = (product(on_hand=30) for _ in range(3))
    orders = [[a, b], [b, a], [c, a, b], [b, c], [c, b, a], [a, c], [a, b, c], [c, a]]
    baskets = [
        [(pid, 1 + (i + j) % 3) for j, pid in enumerate(orders[i % len(orders)])] for i in range(40)
    ]
    ids = [new_id() for _ in baskets]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(inventory.reserve(rid, basket, 0) for rid, basket in zip(ids, baskets, strict=True)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    unexpected = [r for r in results if isinstance(r, BaseException)]
    unexpected = [r for r in unexpected if not isinstance(r, FailedPrecondition)]
    assert not unexpected  # in particular no deadlock_detected
    won = {
        rid: basket
        for rid, basket, r in zip(ids, baskets, results, strict=True)
        if isinstance(r, ReservationView)
    }
    lost = [rid for rid, r in zip(ids, results, strict=True) if isinstance(r, FailedPrecondition)]
    assert won and lost  # demand exceeds supply, so both outcomes happen
    for rid in lost:
        assert state(sql, rid) is None
    held = Counter[str]()
    for basket in won.values():
        held.update(dict(basket))
    for pid in (a, b, c):
        on_hand, reserved = stock(sql, pid)
        assert (on_hand, reserved) == (30, held[pid]) and reserved <= on_hand

    # Second round: commit half, release the rest, and race new baskets against both.
    winners = list(won)
    to_commit, to_release = winners[::2], winners[1::2]
    more = [(new_id(), baskets[i]) for i in range(20)]
    outcomes = await asyncio.gather(
        *(inventory.commit(rid) for rid in to_commit),
        *(inventory.release(rid) for rid in to_release),
        *(inventory.reserve(rid, basket, 0) for rid, basket in more),
        return_exceptions=True,
    )
    settled, reserved_again = outcomes[: len(winners)], outcomes[len(winners) :]
    assert all(isinstance(r, ReservationView) for r in settled), settled
    assert all(isinstance(r, ReservationView | FailedPrecondition) for r in reserved_again)
    sold = Counter[str]()
    for rid in to_commit:
        sold.update(dict(won[rid]))
    still_held = Counter[str]()
    for rid, basket in more:
        if state(sql, rid) == "active":
            still_held.update(dict(basket))
    for pid in (a, b, c):
        assert stock(sql, pid) == (30 - sold[pid], still_held[pid])
    print(f"\n40 overlapping baskets: {len(won)} reserved, {len(lost)} refused in {elapsed:.2f}s")


# --- idempotency ---------------------------------------------------------------------------


async def test_reserve_is_idempotent_per_reservation_id(inventory, product, sql) -> None:
    pid, other = product(on_hand=10), product(on_hand=10)
    rid = new_id()
    first = await inventory.reserve(rid, [(pid, 3), (other, 1)], 0)
    again = await inventory.reserve(rid, [(other, 1), (pid, 3)], 120)  # order, ttl don't matter
    assert again == first
    assert stock(sql, pid) == (10, 3) and stock(sql, other) == (10, 1)

    with pytest.raises(AlreadyExists) as caught:
        await inventory.reserve(rid, [(pid, 4), (other, 1)], 0)
    assert fields(caught.value) == {"reservation_id"}
    with pytest.raises(AlreadyExists):
        await inventory.reserve(rid, [(pid, 3)], 0)

    # The same new id many times at once: one reservation, the same answer for all.
    rid = new_id()
    views = await asyncio.gather(*(inventory.reserve(rid, [(pid, 2)], 0) for _ in range(10)))
    assert len(set(views)) == 1
    assert stock(sql, pid) == (10, 5)

    # After a release the same request returns the released reservation, reserving nothing.
    await inventory.release(rid)
    view = await inventory.reserve(rid, [(pid, 2)], 0)
    assert view.state == "released" and stock(sql, pid) == (10, 3)


# --- commit and release ----------------------------------------------------------------------


async def test_commit_and_release_transitions(inventory, product, sql) -> None:
    pid = product(on_hand=10)
    sold = new_id()
    await inventory.reserve(sold, [(pid, 3)], 0)
    committed = await inventory.commit(sold)
    assert committed.state == "committed" and committed.items == ((pid, 3),)
    assert stock(sql, pid) == (7, 0)
    assert await inventory.commit(sold) == committed  # idempotent
    assert stock(sql, pid) == (7, 0)

    released = await inventory.release(sold)  # a paid order cancelled: back on hand
    assert released.state == "released"
    assert stock(sql, pid) == (10, 0)
    assert await inventory.release(sold) == released
    assert stock(sql, pid) == (10, 0)
    with pytest.raises(FailedPrecondition) as caught:
        await inventory.commit(sold)
    assert caught.value.violations[0][:2] == ("RESERVATION_RELEASED", sold)

    held = new_id()
    await inventory.reserve(held, [(pid, 2)], 0)
    assert stock(sql, pid) == (10, 2)
    assert (await inventory.release(held)).state == "released"
    assert stock(sql, pid) == (10, 0)
    with pytest.raises(FailedPrecondition):
        await inventory.commit(held)

    with pytest.raises(NotFound):
        await inventory.commit(new_id())


async def test_release_of_an_unknown_id_is_remembered(inventory, product, sql) -> None:
    pid = product(on_hand=5)
    rid = new_id()
    view = await inventory.release(rid)
    assert (view.id, view.state, view.items) == (rid, "released", ())
    assert state(sql, rid) == "released"
    assert await inventory.release(rid) == view
    late = await inventory.reserve(rid, [(pid, 1)], 0)  # the saga's ReserveStock came late
    assert late == view
    assert stock(sql, pid) == (5, 0)
    with pytest.raises(FailedPrecondition):
        await inventory.commit(rid)


async def test_failed_reservation_names_each_offending_item(inventory, product, sql) -> None:
    plenty, scarce, hidden = product(on_hand=50), product(on_hand=2), product(active=False)
    gone, unknown = product(on_hand=9), new_id()
    sql("update catalog.products set deleted_at = now() where id = %s", uuid.UUID(gone))
    rid = new_id()
    items = [(plenty, 1), (scarce, 3), (hidden, 1), (gone, 1), (unknown, 1)]
    with pytest.raises(FailedPrecondition) as caught:
        await inventory.reserve(rid, items, 0)
    problems = {subject: (kind, why) for kind, subject, why in caught.value.violations}
    assert problems.keys() == {scarce, hidden, gone, unknown}
    assert problems[scarce] == ("OUT_OF_STOCK", "only 2 available")
    assert {problems[p][0] for p in (hidden, gone, unknown)} == {"PRODUCT_UNAVAILABLE"}
    assert stock(sql, plenty) == (50, 0) and state(sql, rid) is None
    # Nothing was kept, so the same id can be used once the basket is fixed.
    assert (await inventory.reserve(rid, [(plenty, 1)], 0)).state == "active"


# --- expiry --------------------------------------------------------------------------------


def expire(sql, rid: str) -> None:
    sql(
        "update catalog.reservations set expires_at = now() - interval '1 second' where id = %s",
        uuid.UUID(rid),
    )


async def wait_for_state(sql, rid: str, wanted: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while state(sql, rid) != wanted:
        assert time.monotonic() < deadline, f"{rid} is {state(sql, rid)}, not {wanted}"
        await asyncio.sleep(0.05)


async def test_sweeper_releases_expired_reservations(inventory, product, sql) -> None:
    pid = product(on_hand=10)
    lapsed, live = new_id(), new_id()
    view = await inventory.reserve(lapsed, [(pid, 4)], 60)
    await inventory.reserve(live, [(pid, 1)], 0)
    assert 59 <= (view.expires_at - view.expires_at.now(view.expires_at.tzinfo)).total_seconds()
    expire(sql, lapsed)
    swept = await inventory.sweep_expired()
    # Another sweeper (SKIP LOCKED) may hold it for a moment: wait for whoever swept it.
    await wait_for_state(sql, lapsed, "expired")
    assert stock(sql, pid) == (10, 1)
    assert state(sql, live) == "active"
    print(f"\nsweep_expired released {swept} reservation(s)")
    assert (await inventory.release(lapsed)).state == "expired"  # changes nothing
    assert (await inventory.reserve(lapsed, [(pid, 4)], 60)).state == "expired"
    with pytest.raises(FailedPrecondition) as caught:
        await inventory.commit(lapsed)
    assert caught.value.violations[0][0] == "RESERVATION_EXPIRED"
    assert stock(sql, pid) == (10, 1)


async def test_sweep_works_in_batches(inventory, product, sql) -> None:
    pid = product(on_hand=10)
    ids = [new_id() for _ in range(5)]
    for rid in ids:
        await inventory.reserve(rid, [(pid, 1)], 0)
        expire(sql, rid)
    await inventory.sweep_expired(limit=2)  # three transactions: 2 + 2 + 1 (or fewer)
    for rid in ids:
        await wait_for_state(sql, rid, "expired")
    assert stock(sql, pid) == (10, 0)


async def test_commit_after_expiry_not_yet_swept_is_refused(inventory, product, sql) -> None:
    pid = product(on_hand=10)
    rid = new_id()
    await inventory.reserve(rid, [(pid, 2)], 0)
    expire(sql, rid)
    with pytest.raises(FailedPrecondition) as caught:
        await inventory.commit(rid)
    assert caught.value.violations[0][0] == "RESERVATION_EXPIRED"
    assert state(sql, rid) == "expired" and stock(sql, pid) == (10, 0)


# --- set stock -----------------------------------------------------------------------------


async def test_set_stock(inventory, product, sql) -> None:
    pid = product(on_hand=10, threshold=2)
    [(version,)] = sql("select version from catalog.products where id = %s", uuid.UUID(pid))
    level = await inventory.set_stock(pid, 25, None)
    assert isinstance(level, StockLevelView)
    assert (level.on_hand, level.reserved, level.available, level.low_stock_threshold) == (
        25,
        0,
        25,
        2,
    )
    assert level.sku.startswith("inv-") and level.name.startswith("Widget")
    [(bumped,)] = sql("select version from catalog.products where id = %s", uuid.UUID(pid))
    assert bumped == version + 1

    await inventory.reserve(new_id(), [(pid, 5)], 0)
    with pytest.raises(FailedPrecondition) as caught:
        await inventory.set_stock(pid, 4, None)
    assert caught.value.violations == [("BELOW_RESERVED", pid, "5 units are reserved")]
    level = await inventory.set_stock(pid, 5, 7)
    assert (level.on_hand, level.reserved, level.available, level.low_stock_threshold) == (
        5,
        5,
        0,
        7,
    )

    with pytest.raises(NotFound):
        await inventory.set_stock(new_id(), 1, None)
    sql("update catalog.products set deleted_at = now() where id = %s", uuid.UUID(pid))
    with pytest.raises(NotFound):
        await inventory.set_stock(pid, 10, None)


@pytest.mark.parametrize(
    ("product_id", "on_hand", "threshold", "bad"),
    [
        ("valid", None, None, {"on_hand"}),
        ("valid", -1, None, {"on_hand"}),
        ("valid", 1_000_001, None, {"on_hand"}),
        ("valid", 1, -1, {"low_stock_threshold"}),
        ("not-a-uuid", None, -1, {"id", "on_hand", "low_stock_threshold"}),
        ("", 1, None, {"id"}),
    ],
)
async def test_set_stock_validation(inventory, product_id, on_hand, threshold, bad) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await inventory.set_stock(
            new_id() if product_id == "valid" else product_id, on_hand, threshold
        )
    assert fields(caught.value) == bad


# --- validation ----------------------------------------------------------------------------


async def test_reserve_validation_names_every_field(inventory, product) -> None:
    pid = product()
    with pytest.raises(InvalidArgument) as caught:
        await inventory.reserve("order-1", [], 30)
    assert fields(caught.value) == {"reservation_id", "items", "ttl_seconds"}

    items = [("nope", 1), (pid, 0), (pid, 1001), (new_id(), 1)]
    with pytest.raises(InvalidArgument) as caught:
        await inventory.reserve(new_id(), items, 86_401)
    assert fields(caught.value) == {
        "items[0].product_id",
        "items[1].quantity",
        "items[2].product_id",  # pid appears twice
        "items[2].quantity",
        "ttl_seconds",
    }
    with pytest.raises(InvalidArgument) as caught:
        await inventory.reserve(new_id(), [(new_id(), 1) for _ in range(101)], -5)
    assert fields(caught.value) == {"items", "ttl_seconds"}
    for call in (inventory.commit, inventory.release):
        with pytest.raises(InvalidArgument) as caught:
            await call("")
        assert fields(caught.value) == {"reservation_id"}

    view = await inventory.reserve(new_id(), [(pid, 1)], 0)  # 0 means 900 seconds
    remaining = (view.expires_at - view.expires_at.now(view.expires_at.tzinfo)).total_seconds()
    assert 890 < remaining <= 900


async def test_each_stock_change_retires_only_its_products_after_commit(
    engine, product, sql
) -> None:
    pid = product(on_hand=4)
    cache = RecordingCache()
    inventory = Inventory(database(engine), cache)  # type: ignore[arg-type]
    rid = new_id()
    await inventory.reserve(rid, [(pid, 3)], 0)
    assert cache.retired == [([pid], False)]  # 4 -> 1 available: still in stock
    with pytest.raises(FailedPrecondition):
        await inventory.reserve(new_id(), [(pid, 3)], 0)  # refused: nothing to retire
    assert len(cache.retired) == 1
    await inventory.reserve(new_id(), [(pid, 1)], 0)  # 1 -> 0: out of stock
    assert cache.retired[-1] == ([pid], True)
    await inventory.commit(rid)
    await inventory.commit(rid)  # unchanged: nothing to retire
    assert len(cache.retired) == 3
    (reserved,) = sql("select reserved from catalog.products where id = %s", pid)[0]
    assert reserved == 1  # the second reservation still holds its unit


# --- low stock -----------------------------------------------------------------------------


class StockLowEvents:
    """Every StockLow written since `start`, wherever it is now: still in catalog.outbox or
    already relayed to JetStream. The relay publishes (and JetStream acknowledges) before it
    deletes the row, so reading the outbox first and then draining the stream misses none."""

    def __init__(self, sql, subscription) -> None:
        self._sql = sql
        self._subscription = subscription
        self.relayed: dict[str, events_pb2.StockLow] = {}

    async def for_product(self, pid: str) -> list[events_pb2.StockLow]:
        found: dict[str, events_pb2.StockLow] = {}
        for (payload,) in self._sql(
            "select payload from catalog.outbox where subject = %s", SUBJECT_STOCK_LOW
        ):
            event = events_pb2.StockLow.FromString(payload)
            found[event.event_id] = event
        while pending := (await self._subscription.consumer_info()).num_pending:
            for message in await self._subscription.fetch(pending, timeout=5):
                event = events_pb2.StockLow.FromString(message.data)
                self.relayed[event.event_id] = event
                await message.ack()
        found.update(self.relayed)
        return sorted(
            (e for e in found.values() if e.product_id == pid),
            key=lambda e: (e.occurred_at.seconds, e.occurred_at.nanos),
        )


@pytest.fixture
async def stock_low(stack, sql) -> AsyncIterator[StockLowEvents]:
    nc, js = await connect_jetstream(stack.nats_url)
    subscription = await js.pull_subscribe(
        SUBJECT_STOCK_LOW,
        stream=STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )
    yield StockLowEvents(sql, subscription)
    await subscription.unsubscribe()
    await nc.close()


async def test_one_stock_low_event_per_crossing(inventory, product, stock_low) -> None:
    pid = product(on_hand=10, threshold=3)
    await inventory.reserve(new_id(), [(pid, 6)], 0)  # 4 left: above the line
    assert await stock_low.for_product(pid) == []
    crossing = new_id()
    await inventory.reserve(crossing, [(pid, 1)], 0)  # 3 left: at the line
    await inventory.reserve(new_id(), [(pid, 2)], 0)  # 1 left: still below, no new event
    [event] = await stock_low.for_product(pid)
    assert (event.available, event.on_hand, event.low_stock_threshold) == (3, 10, 3)
    assert event.sku == f"inv-{uuid.UUID(pid).hex[:16]}" and event.name.startswith("Widget")

    await inventory.set_stock(pid, 30, None)  # 21 left: back above, no event
    assert len(await stock_low.for_product(pid)) == 1
    await inventory.reserve(new_id(), [(pid, 18)], 0)  # 3 left: the second crossing
    events = await stock_low.for_product(pid)
    assert len(events) == 2
    assert (events[1].available, events[1].on_hand) == (3, 30)

    # Lowering the threshold lifts it above the line; releasing stock keeps it there.
    await inventory.set_stock(pid, 30, 0)
    await inventory.release(crossing)
    assert len(await stock_low.for_product(pid)) == 2

    # What consumers see: both events reach JetStream (the catalog service relays its outbox).
    deadline = time.monotonic() + 10
    while {e.event_id for e in events} - stock_low.relayed.keys():
        assert time.monotonic() < deadline, "StockLow never reached JetStream"
        await asyncio.sleep(0.05)
        await stock_low.for_product(pid)


async def test_hidden_products_cross_silently(inventory, product, sql, stock_low) -> None:
    pid = product(on_hand=10, threshold=3, active=False)
    await inventory.set_stock(pid, 2, None)
    [(flag,)] = sql("select low_stock from catalog.products where id = %s", uuid.UUID(pid))
    assert flag and await stock_low.for_product(pid) == []


# --- low stock list ------------------------------------------------------------------------


async def test_list_low_stock_pages_and_counts(inventory, product, sql) -> None:
    before = await inventory.count_low_stock()
    low = [product(on_hand=n, threshold=4) for n in (3, 0, 4, 1, 1)]
    product(on_hand=2, threshold=4, active=False)  # inactive: left out
    gone = product(on_hand=2, threshold=4)
    sql("update catalog.products set deleted_at = now() where id = %s", uuid.UUID(gone))
    product(on_hand=5, threshold=4)  # above the line
    assert await inventory.count_low_stock() == before + 5

    seen: list[StockLevelView] = []
    token, pages = "", 0
    while True:
        page, token, total = await inventory.list_low_stock(2, token)
        assert len(page) <= 2 and total == before + 5
        seen += page
        pages += 1
        if not token:
            break
    assert len(seen) == before + 5 and pages == -(-len(seen) // 2)
    keys = [(s.available, uuid.UUID(s.product_id)) for s in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    mine = [s.product_id for s in seen if s.product_id in low]
    assert mine == sorted(low, key=lambda p: (stock(sql, p)[0], uuid.UUID(p)))
    assert all(s.available <= s.low_stock_threshold for s in seen)

    first, _, _ = await inventory.list_low_stock(0, "")
    assert len(first) == min(20, before + 5)
    with pytest.raises(InvalidArgument) as caught:
        await inventory.list_low_stock(-1, "")
    assert fields(caught.value) == {"page_size"}
    for foreign in ("garbage!", "eyJ4IjoxfQ", "eyJhIjoiMSIsImkiOiJ4In0"):
        with pytest.raises(InvalidArgument) as caught:
            await inventory.list_low_stock(2, foreign)
        assert fields(caught.value) == {"page_token"}
