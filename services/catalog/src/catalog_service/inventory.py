"""Stock levels and reservations: the catalog's InventoryService and the reservation RPCs.

Every operation is one unit of work: the stock change, its ProductChanged/StockLow events and,
after the commit, the cache retirement. Locking follows `locks.py`: the reservation row first,
then product rows all at once in id order.

A ReleaseReservation for an id never seen is stored as a reservation in state `released`
with no items and `expires_at` = the release time (a tombstone). A later ReserveStock with
that id, whatever its items, returns that tombstone and reserves nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ecom_runtime import paging
from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from ecom_runtime.paging import decode_token, encode_token, position_int, position_uuid
from ecom_runtime.validation import Violations
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Integer, Row, and_, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog_service import errors
from catalog_service.cache import CatalogCache
from catalog_service.events import announce_changed
from catalog_service.locks import lock_products, lock_reservation
from catalog_service.store import products, reservation_items, reservations

log = logging.getLogger("catalog.inventory")

ACTIVE, COMMITTED, RELEASED, EXPIRED = "active", "committed", "released", "expired"

MAX_ITEMS = 100
MAX_QUANTITY = 1000
DEFAULT_TTL_SECONDS = 900
MIN_TTL_SECONDS, MAX_TTL_SECONDS = 60, 86_400
MAX_ON_HAND = 1_000_000


@dataclass(frozen=True)
class ReservationView:
    id: str
    state: str  # active | committed | released | expired
    items: tuple[tuple[str, int], ...]  # (product_id, quantity), ordered by product_id
    expires_at: datetime


@dataclass(frozen=True)
class StockLevelView:
    product_id: str
    sku: str
    name: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int
    updated_at: datetime


Deltas = Mapping[uuid.UUID, tuple[int, int]]  # product id -> (on_hand delta, reserved delta)

_AVAILABLE = products.c.on_hand - products.c.reserved
# What the `low_stock` flag remembers, so StockLow goes out once per crossing.
_IS_LOW = _AVAILABLE <= products.c.low_stock_threshold
# ListLowStockProducts and CountLowStockProducts: hidden and deleted products are left out.
_LISTED_LOW = and_(products.c.active, products.c.deleted_at.is_(None), _IS_LOW)
_STOCK_COLUMNS = (
    products.c.id,
    products.c.sku,
    products.c.name,
    products.c.on_hand,
    products.c.reserved,
    products.c.low_stock_threshold,
    products.c.updated_at,
)


def _stock_view(row: Row) -> StockLevelView:
    return StockLevelView(
        product_id=str(row.id),
        sku=row.sku,
        name=row.name,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.on_hand - row.reserved,
        low_stock_threshold=row.low_stock_threshold,
        updated_at=row.updated_at,
    )


async def sync_low_stock(tx: UnitOfWork, product_ids: Iterable[uuid.UUID]) -> None:
    """Recomputes the products' low-stock flag; each false -> true flip of a live (active, not
    deleted) product enqueues one StockLow, as ListLowStockProducts shows live products only.

    Call it in the transaction of any change to on_hand, reserved or the threshold. Only rows
    whose flag changes are updated and returned, so one statement both updates the flags and
    says which flipped (the row lock serializes racing callers).
    """
    flipped = await tx.conn.execute(
        update(products)
        .where(products.c.id.in_(list(product_ids)), products.c.low_stock.is_distinct_from(_IS_LOW))
        .values(low_stock=_IS_LOW)
        .returning(*_STOCK_COLUMNS, products.c.low_stock, products.c.active, products.c.deleted_at)
    )
    for row in flipped:
        if row.low_stock and row.active and row.deleted_at is None:
            tx.add(
                events_pb2.StockLow(
                    product_id=str(row.id),
                    sku=row.sku,
                    name=row.name,
                    available=row.on_hand - row.reserved,
                    on_hand=row.on_hand,
                    low_stock_threshold=row.low_stock_threshold,
                )
            )


def _parse_reservation_id(value: str, violations: Violations) -> uuid.UUID | None:
    if not value.strip():
        violations.add("reservation_id", "is required")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        violations.add("reservation_id", "must be a UUID")
        return None


def _reservation_id(value: str) -> uuid.UUID:
    violations = Violations()
    rid = _parse_reservation_id(value, violations)
    violations.raise_if_any()
    assert rid is not None
    return rid


def _check_items(items: Sequence[tuple[str, int]], violations: Violations) -> dict[uuid.UUID, int]:
    if not 1 <= len(items) <= MAX_ITEMS:
        violations.add("items", f"must hold 1 to {MAX_ITEMS} items")
        return {}
    wanted: dict[uuid.UUID, int] = {}
    for i, (product_id, quantity) in enumerate(items):
        try:
            pid = uuid.UUID(product_id)
        except (ValueError, TypeError, AttributeError):
            violations.add(f"items[{i}].product_id", "must be a UUID")
        else:
            if pid in wanted:
                violations.add(f"items[{i}].product_id", "appears more than once")
            wanted[pid] = quantity
        if not 1 <= quantity <= MAX_QUANTITY:
            violations.add(f"items[{i}].quantity", f"must be 1 to {MAX_QUANTITY:,}")
    return wanted


def _check_ttl(ttl_seconds: int, violations: Violations) -> int:
    if ttl_seconds == 0:
        return DEFAULT_TTL_SECONDS
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        violations.add(
            "ttl_seconds", f"must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS:,} (0 means 900)"
        )
    return ttl_seconds


class Inventory:
    def __init__(self, db: Database, cache: CatalogCache) -> None:
        self._db = db
        self._cache = cache

    # --- reservations ---------------------------------------------------------------------

    async def reserve(
        self, reservation_id: str, items: list[tuple[str, int]], ttl_seconds: int
    ) -> ReservationView:
        violations = Violations()
        rid = _parse_reservation_id(reservation_id, violations)
        wanted = _check_items(items, violations)
        ttl = _check_ttl(ttl_seconds, violations)
        violations.raise_if_any()
        assert rid is not None
        ids = sorted(wanted)
        async with self._db.begin() as tx:
            conn = tx.conn
            # The row goes in first: a concurrent call with the same id waits here for this
            # transaction and then finds the reservation instead of reserving a second time.
            expires_at = (
                await conn.execute(
                    pg_insert(reservations)
                    .values(id=rid, state=ACTIVE, expires_at=func.now() + timedelta(seconds=ttl))
                    .on_conflict_do_nothing(index_elements=[reservations.c.id])
                    .returning(reservations.c.expires_at)
                )
            ).scalar()
            if expires_at is None:
                found = await self._load(conn, rid)
                assert found is not None
                existing = found[0]
                is_tombstone = existing.state == RELEASED and not existing.items
                if is_tombstone or dict(existing.items) == {str(p): q for p, q in wanted.items()}:
                    return existing
                raise AlreadyExists({"reservation_id": "is already used with different items"})
            locked = await lock_products(conn, ids)
            problems = []
            for pid in ids:
                row = locked.get(pid)
                if row is None or row.deleted_at is not None:
                    problems.append(
                        (errors.PRODUCT_UNAVAILABLE, str(pid), "no such product; 0 available")
                    )
                elif not row.active:
                    problems.append(
                        (errors.PRODUCT_UNAVAILABLE, str(pid), "product is inactive; 0 available")
                    )
                elif row.on_hand - row.reserved < wanted[pid]:
                    available = row.on_hand - row.reserved
                    problems.append((errors.OUT_OF_STOCK, str(pid), f"only {available} available"))
            if problems:
                raise FailedPrecondition("not enough stock for every item", problems)
            await conn.execute(
                reservation_items.insert(),
                [{"reservation_id": rid, "product_id": p, "quantity": wanted[p]} for p in ids],
            )
            await self._apply(tx, {p: (0, wanted[p]) for p in ids})
        return ReservationView(
            str(rid), ACTIVE, tuple((str(p), wanted[p]) for p in ids), expires_at
        )

    async def commit(self, reservation_id: str) -> ReservationView:
        rid = _reservation_id(reservation_id)
        async with self._db.begin() as tx:
            found = await self._load(tx.conn, rid, lock=True)
            if found is None:
                raise NotFound("reservation not found")
            before, lapsed = found
            if before.state != ACTIVE:
                after = before
            elif lapsed:
                # Past expires_at but not swept yet: the hold is over, so it expires now rather
                # than becoming a sale; the answer must not depend on when the sweeper last ran
                # (the stock may already have been promised to others by the time it does).
                after = await self._move(tx, before, EXPIRED, on_hand=0, reserved=-1)
            else:
                after = await self._move(tx, before, COMMITTED, on_hand=-1, reserved=-1)
        if after.state != COMMITTED:
            raise FailedPrecondition(
                f"reservation is {after.state}",
                [(errors.reservation_state(after.state), after.id, f"it is {after.state}")],
            )
        return after

    async def release(self, reservation_id: str) -> ReservationView:
        rid = _reservation_id(reservation_id)
        async with self._db.begin() as tx:
            # An unknown id becomes a released, empty reservation (see the module docstring).
            released_at = (
                await tx.conn.execute(
                    pg_insert(reservations)
                    .values(id=rid, state=RELEASED, expires_at=func.now())
                    .on_conflict_do_nothing(index_elements=[reservations.c.id])
                    .returning(reservations.c.expires_at)
                )
            ).scalar()
            if released_at is not None:
                return ReservationView(str(rid), RELEASED, (), released_at)
            found = await self._load(tx.conn, rid, lock=True)
            assert found is not None
            before, _ = found
            if before.state == ACTIVE:  # the held units become sellable again
                after = await self._move(tx, before, RELEASED, on_hand=0, reserved=-1)
            elif before.state == COMMITTED:  # a cancelled sale: the units go back on hand
                after = await self._move(tx, before, RELEASED, on_hand=1, reserved=0)
            else:
                after = before
        return after

    async def sweep_expired(self, limit: int = 500) -> int:
        """Expires active reservations past expires_at, `limit` per transaction; how many."""
        total = 0
        while True:
            swept = await self._sweep_batch(limit)
            total += swept
            if swept < limit:
                if total:
                    log.info("expired reservations released", extra={"count": total})
                return total

    async def _sweep_batch(self, limit: int) -> int:
        r, ri = reservations, reservation_items
        async with self._db.begin() as tx:
            conn = tx.conn
            # SKIP LOCKED: several sweeping processes split the work instead of queueing,
            # and a reservation being committed or released right now is left to that call.
            ids = (
                (
                    await conn.execute(
                        select(r.c.id)
                        .where(r.c.state == ACTIVE, r.c.expires_at <= func.now())
                        .order_by(r.c.expires_at)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0
            await conn.execute(
                update(r).where(r.c.id.in_(ids)).values(state=EXPIRED, updated_at=func.now())
            )
            held = await conn.execute(
                select(ri.c.product_id, func.sum(ri.c.quantity))
                .where(ri.c.reservation_id.in_(ids))
                .group_by(ri.c.product_id)
            )
            deltas = {pid: (0, -int(quantity)) for pid, quantity in held}
            await lock_products(conn, deltas)
            await self._apply(tx, deltas)
        return len(ids)

    # --- stock levels ---------------------------------------------------------------------

    async def set_stock(
        self, product_id: str, on_hand: int | None, low_stock_threshold: int | None
    ) -> StockLevelView:
        violations = Violations()
        pid: uuid.UUID | None = None
        try:
            pid = uuid.UUID(product_id)
        except (ValueError, TypeError, AttributeError):
            violations.add("id", "must be a UUID" if product_id.strip() else "is required")
        if on_hand is None:
            violations.add("on_hand", "is required")
        elif not 0 <= on_hand <= MAX_ON_HAND:
            violations.add("on_hand", f"must be 0 to {MAX_ON_HAND:,}")
        if low_stock_threshold is not None and low_stock_threshold < 0:
            violations.add("low_stock_threshold", "must not be negative")
        violations.raise_if_any()
        assert pid is not None and on_hand is not None
        async with self._db.begin() as tx:
            conn = tx.conn
            current = (await lock_products(conn, [pid])).get(pid)
            before = None if current is None else current.on_hand - current.reserved
            if current is None or current.deleted_at is not None:
                raise NotFound("product not found")
            if on_hand < current.reserved:
                raise FailedPrecondition(
                    "on_hand cannot go below the units reserved",
                    [(errors.BELOW_RESERVED, str(pid), f"{current.reserved} units are reserved")],
                )
            changes: dict[str, Any] = {"on_hand": on_hand}
            if low_stock_threshold is not None:
                changes["low_stock_threshold"] = low_stock_threshold
            await conn.execute(
                update(products)
                .where(products.c.id == pid)
                .values(**changes, version=products.c.version + 1, updated_at=func.now())
            )
            await sync_low_stock(tx, [pid])
            row = (await conn.execute(select(*_STOCK_COLUMNS).where(products.c.id == pid))).one()
            crossed = ((before or 0) > 0) != (row.on_hand - row.reserved > 0)
            await self._stock_changed(tx, [pid], [pid] if crossed else [])
        return _stock_view(row)

    async def list_low_stock(
        self, page_size: int, page_token: str
    ) -> tuple[list[StockLevelView], str, int]:
        """Low-stock products, lowest available first, ties by id: (page, next token, total)."""
        size = paging.page_size(page_size)
        after = _decode_low_stock_token(page_token)
        query = select(*_STOCK_COLUMNS).where(_LISTED_LOW)
        if after is not None:
            query = query.where(tuple_(_AVAILABLE, products.c.id) > tuple_(*after))
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(query.order_by(_AVAILABLE, products.c.id).limit(size + 1))
            ).all()
            total = (await conn.execute(select(func.count()).where(_LISTED_LOW))).scalar_one()
        page = [_stock_view(row) for row in rows[:size]]
        next_token = ""
        if len(rows) > size:
            last = page[-1]
            next_token = encode_token({"a": last.available, "i": last.product_id})
        return page, next_token, total

    async def count_low_stock(self) -> int:
        async with self._db.connect() as conn:
            return (await conn.execute(select(func.count()).where(_LISTED_LOW))).scalar_one()

    # --- helpers --------------------------------------------------------------------------

    async def _apply(self, tx: UnitOfWork, deltas: Deltas) -> None:
        """Adds the deltas to product rows the caller has locked; low stock; events; cache."""
        ids = sorted(deltas)
        if not ids:
            return
        available_before = {
            row.id: row.available
            for row in await tx.conn.execute(
                select(products.c.id, _AVAILABLE.label("available")).where(products.c.id.in_(ids))
            )
        }
        await tx.conn.execute(
            update(products)
            .where(products.c.id == bindparam("pid"))
            .values(
                on_hand=products.c.on_hand + bindparam("d_on_hand", type_=Integer),
                reserved=products.c.reserved + bindparam("d_reserved", type_=Integer),
                # Stock is part of the product's snapshot: a new version for search indexes.
                version=products.c.version + 1,
                updated_at=func.now(),
            ),
            [{"pid": p, "d_on_hand": deltas[p][0], "d_reserved": deltas[p][1]} for p in ids],
        )
        await sync_low_stock(tx, ids)
        crossed = [
            p
            for p in ids
            if (available_before[p] > 0) != (available_before[p] + deltas[p][0] - deltas[p][1] > 0)
        ]
        await self._stock_changed(tx, ids, crossed)

    async def _stock_changed(
        self, tx: UnitOfWork, ids: list[uuid.UUID], crossed: list[uuid.UUID]
    ) -> None:
        """ProductChanged only for products that went in or out of stock (the event's
        contract); after the commit, only these products' cache entries are retired."""
        if crossed:
            await announce_changed(tx, crossed)

        async def retire() -> None:
            await self._cache.stock_changed([str(p) for p in ids], crossed=bool(crossed))

        tx.on_commit(retire)

    async def _move(
        self,
        tx: UnitOfWork,
        view: ReservationView,
        state: str,
        *,
        on_hand: int,
        reserved: int,
    ) -> ReservationView:
        """Changes a locked reservation's state and its products' stock by sign * quantity."""
        await tx.conn.execute(
            update(reservations)
            .where(reservations.c.id == uuid.UUID(view.id))
            .values(state=state, updated_at=func.now())
        )
        deltas = {uuid.UUID(p): (on_hand * q, reserved * q) for p, q in view.items}
        await lock_products(tx.conn, deltas)
        await self._apply(tx, deltas)
        return ReservationView(view.id, state, view.items, view.expires_at)

    async def _load(
        self, conn: AsyncConnection, rid: uuid.UUID, *, lock: bool = False
    ) -> tuple[ReservationView, bool] | None:
        """The reservation and whether it is past expires_at; `lock` takes its row lock."""
        query = select(
            reservations.c.state,
            reservations.c.expires_at,
            (reservations.c.expires_at <= func.now()).label("lapsed"),
        ).where(reservations.c.id == rid)
        head = await lock_reservation(conn, query) if lock else (await conn.execute(query)).first()
        if head is None:
            return None
        items = await conn.execute(
            select(reservation_items.c.product_id, reservation_items.c.quantity)
            .where(reservation_items.c.reservation_id == rid)
            .order_by(reservation_items.c.product_id)
        )
        view = ReservationView(
            str(rid), head.state, tuple((str(p), q) for p, q in items), head.expires_at
        )
        return view, head.lapsed


def _decode_low_stock_token(token: str) -> tuple[int, uuid.UUID] | None:
    """(available, product id) a low-stock page token points after; a foreign token is a 400."""
    position = decode_token(token, keys=("a", "i"))
    if position is None:
        return None
    # `available` is on_hand - reserved of integer columns: never negative, within int4.
    return position_int(position["a"], low=0, high=2**31 - 1), position_uuid(position["i"])
