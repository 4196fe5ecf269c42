"""Carts: a user's or a guest's, priced at the catalog's current prices every time they are read.

PostgreSQL holds the lines (product, quantity); prices, names and stock come from the catalog
in one batch call per read, so a cart never shows a stale price. A line whose product left the
catalog is dropped as the cart is read, with a notice; the cart itself never breaks.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from ecom_runtime.validation import Violations, parse_uuid
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from cart_service import errors
from cart_service.catalog import Catalog, Offer
from cart_service.locks import lock_cart
from cart_service.store import MAX_QUANTITY, cart_items, carts

MAX_LINES = 100  # distinct products in one cart (what the catalog prices in one call)
TOKEN_PREFIX = "ct_"  # noqa: S105 (a prefix, not a secret)


@dataclass(frozen=True)
class Owner:
    """Whose cart: a signed-in user's, or a guest's named by a cart token ("" when none)."""

    user_id: uuid.UUID | None = None
    token: str = ""


@dataclass(frozen=True)
class Line:
    id: uuid.UUID
    product_id: uuid.UUID
    name: str
    unit_price_cents: int
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass
class CartView:
    lines: list[Line] = field(default_factory=list)
    currency: str = "USD"
    cart_token: str = ""  # only in the answer that made a guest cart
    notices: list[str] = field(default_factory=list)

    @property
    def subtotal_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


def _digest(token: str) -> bytes:
    # Cart tokens are 256-bit random values: a fast hash is enough at rest.
    return hashlib.sha256(token.encode()).digest()


def _check_quantity(quantity: int, violations: Violations) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        violations.add("quantity", f"must be 1 to {MAX_QUANTITY}")


def _check_offer(offer: Offer | None, quantity: int) -> None:
    """Refuses a line the catalog would not sell: gone, inactive, or more than available."""
    if offer is None or not offer.active:
        raise InvalidArgument(
            {"product_id": "no such product, or it is not for sale"},
            reason=errors.PRODUCT_UNAVAILABLE,
        )
    if quantity > offer.available:
        why = "is out of stock" if offer.available <= 0 else f"only {offer.available} available"
        raise InvalidArgument({"quantity": why}, reason=errors.OUT_OF_STOCK)


class Carts:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self._catalog = catalog

    # -- reading ---------------------------------------------------------------------------

    async def view(self, owner: Owner) -> CartView:
        async with self.db.connect() as conn:
            cart = (await conn.execute(_owned(owner))).first()
        if cart is None:
            return CartView()
        return await self._priced(cart.id)

    async def _lines(self, cart_id: uuid.UUID) -> list[Row[Any]]:
        async with self.db.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(cart_items)
                        .where(cart_items.c.cart_id == cart_id)
                        .order_by(cart_items.c.created_at, cart_items.c.id)
                    )
                ).all()
            )

    async def _priced(
        self,
        cart_id: uuid.UUID,
        notices: list[str] | None = None,
        offers: dict[uuid.UUID, Offer] | None = None,
    ) -> CartView:
        """The cart at current prices; lines whose product left the catalog are removed.
        `offers` just fetched are used when they cover every line (one catalog call less)."""
        rows = await self._lines(cart_id)
        if offers is None or any(row.product_id not in offers for row in rows):
            offers = await self._catalog.offers([row.product_id for row in rows])
        view = CartView(notices=list(notices or []))
        gone = []
        for row in rows:
            offer = offers.get(row.product_id)
            if offer is None or not offer.active:
                gone.append(row.id)
                view.notices.append(f"{row.name} is no longer available and was removed")
                continue
            if row.quantity > offer.available:
                view.notices.append(f"only {max(offer.available, 0)} of {offer.name} available")
            view.lines.append(
                Line(row.id, row.product_id, offer.name, offer.price_cents, row.quantity)
            )
        if view.lines:
            view.currency = offers[view.lines[0].product_id].currency
        if gone:
            async with self.db.begin() as tx:
                await tx.conn.execute(delete(cart_items).where(cart_items.c.id.in_(gone)))
        return view

    # -- changing --------------------------------------------------------------------------

    async def add(self, owner: Owner, product_id: str, quantity: int) -> CartView:
        violations = Violations()
        pid = _parse_field(violations, "product_id", product_id)
        _check_quantity(quantity, violations)
        violations.raise_if_any()
        assert pid is not None
        async with self.db.connect() as conn:
            cart = (await conn.execute(_owned(owner))).first()
        held = [row.product_id for row in await self._lines(cart.id)] if cart else []
        offers = await self._catalog.offers([*held, pid])  # one call prices the cart and it
        offer = offers.get(pid)
        _check_offer(offer, quantity)
        assert offer is not None
        currencies = {offers[h].currency for h in held if h in offers and offers[h].active}
        if currencies and offer.currency not in currencies:
            raise FailedPrecondition(
                f"this cart is in {min(currencies)}; the product is priced in {offer.currency}",
                [(errors.CURRENCY_MISMATCH, str(pid), "one currency per cart")],
            )
        if len(held) >= MAX_LINES and pid not in held:
            raise InvalidArgument(
                {"product_id": f"a cart holds at most {MAX_LINES} different products"},
                reason=errors.CART_FULL,
            )
        token = ""
        try:
            async with self.db.begin() as tx:
                cart_id, token = await self._own_cart(tx, owner)
                total = await _put_line(tx, cart_id, offer, quantity, adding=True)
                _check_offer(offer, total)  # raising here rolls the add back
        except IntegrityError:
            raise InvalidArgument(
                {"quantity": f"the line would hold more than {MAX_QUANTITY}"}
            ) from None
        view = await self._priced(cart_id, offers=offers)
        view.cart_token = token
        return view

    async def update(self, owner: Owner, item_id: str, quantity: int) -> CartView:
        violations = Violations()
        line_id = _parse_field(violations, "id", item_id)
        _check_quantity(quantity, violations)
        violations.raise_if_any()
        async with self.db.connect() as conn:
            line = (
                await conn.execute(
                    select(cart_items.c.product_id)
                    .join(carts, carts.c.id == cart_items.c.cart_id)
                    .where(cart_items.c.id == line_id, _owner_filter(owner))
                )
            ).first()
        if line is None:
            raise NotFound("no such line in this cart")
        # Asked before the transaction: no lock is held while the catalog answers.
        offers = await self._catalog.offers([line.product_id])
        _check_offer(offers.get(line.product_id), quantity)
        async with self.db.begin() as tx:
            cart = await self._existing(tx, owner)
            changed = await tx.conn.execute(
                update(cart_items)
                .where(cart_items.c.id == line_id, cart_items.c.cart_id == cart.id)
                .values(quantity=quantity)
            )
            if changed.rowcount == 0:  # removed meanwhile
                raise NotFound("no such line in this cart")
        return await self._priced(cart.id)

    async def remove(self, owner: Owner, item_id: str) -> CartView:
        line_id = parse_uuid("id", item_id)
        async with self.db.begin() as tx:
            cart = await self._existing(tx, owner)
            removed = await tx.conn.execute(
                delete(cart_items).where(
                    cart_items.c.id == line_id, cart_items.c.cart_id == cart.id
                )
            )
            if removed.rowcount == 0:
                raise NotFound("no such line in this cart")
        return await self._priced(cart.id)

    async def clear(self, owner: Owner) -> CartView:
        async with self.db.begin() as tx:
            await self.clear_in(tx, owner)
        return CartView()

    async def clear_in(self, tx: UnitOfWork, owner: Owner) -> None:
        cart = await lock_cart(tx.conn, _owned(owner))
        if cart is not None:
            await tx.conn.execute(delete(cart_items).where(cart_items.c.cart_id == cart.id))
            await _touch(tx, cart.id)

    async def on_order_paid(self, tx: UnitOfWork, event: events_pb2.OrderPaid) -> None:
        """A paid order's cart has done its job: it is emptied (once per event, through the
        inbox, so a redelivery cannot empty a cart filled again since)."""
        await self.clear_in(tx, Owner(user_id=uuid.UUID(event.user_id)))

    async def merge(self, user_id: uuid.UUID, token: str) -> CartView:
        """Moves a guest cart's lines into the user's (see CartService.MergeCart)."""
        if not token.strip():
            raise InvalidArgument({"cart_token": "is required"})
        guest = Owner(token=token)
        async with self.db.connect() as conn:
            found = (await conn.execute(_owned(guest, merged=True))).first()
            rows = []
            if found is not None:
                rows = (
                    await conn.execute(select(cart_items).where(cart_items.c.cart_id == found.id))
                ).all()
        offers = await self._catalog.offers([row.product_id for row in rows])
        notices: list[str] = []
        async with self.db.begin() as tx:
            # Locks: the guest cart, then the user's (locks.py).
            cart = await lock_cart(tx.conn, _owned(guest, merged=True))
            if cart is None or cart.merged_into not in (None, user_id):
                raise InvalidArgument(
                    {"cart_token": "is unknown, expired or already used"},
                    reason=errors.CART_TOKEN_INVALID,
                )
            target, _ = await self._own_cart(tx, Owner(user_id=user_id))
            if cart.merged_into is None:
                notices = await self._move_lines(tx, cart.id, target, offers)
                await tx.conn.execute(
                    update(carts)
                    .where(carts.c.id == cart.id)
                    .values(merged_into=user_id, updated_at=func.now())
                )
        return await self._priced(target, notices)

    async def _move_lines(
        self, tx: UnitOfWork, source: uuid.UUID, target: uuid.UUID, offers: dict[uuid.UUID, Offer]
    ) -> list[str]:
        notices = []
        held = {
            row.product_id: row.quantity
            for row in await tx.conn.execute(
                select(cart_items.c.product_id, cart_items.c.quantity).where(
                    cart_items.c.cart_id == target
                )
            )
        }
        moving = (
            await tx.conn.execute(
                select(cart_items)
                .where(cart_items.c.cart_id == source)
                .order_by(cart_items.c.created_at, cart_items.c.id)
            )
        ).all()
        for row in moving:
            offer = offers.get(row.product_id)
            if offer is None or not offer.active:
                notices.append(f"{row.name} is no longer available and was not added")
                continue
            wanted = held.get(row.product_id, 0) + row.quantity
            quantity = min(wanted, MAX_QUANTITY, max(offer.available, 0))
            if quantity < wanted:
                notices.append(f"only {quantity} of {offer.name} could be kept")
            if quantity > 0:
                await _put_line(tx, target, offer, quantity, adding=False)
        await tx.conn.execute(delete(cart_items).where(cart_items.c.cart_id == source))
        return notices

    async def purge_abandoned(self, guest_ttl_seconds: float) -> int:
        """Deletes guest carts untouched for `guest_ttl_seconds` (their lines go with them)."""
        async with self.db.begin() as tx:
            result = await tx.conn.execute(
                delete(carts).where(
                    carts.c.user_id.is_(None),
                    carts.c.updated_at < func.now() - timedelta(seconds=guest_ttl_seconds),
                )
            )
        return int(result.rowcount)

    # -- whose cart ------------------------------------------------------------------------

    async def _own_cart(self, tx: UnitOfWork, owner: Owner) -> tuple[uuid.UUID, str]:
        """The owner's cart, locked, made if missing: (id, the new guest token or "")."""
        cart = await lock_cart(tx.conn, _owned(owner))
        if cart is not None:
            await _touch(tx, cart.id)
            return cart.id, ""
        token = ""
        values: dict[str, Any] = {"id": uuid.uuid4()}
        if owner.user_id is not None:
            values["user_id"] = owner.user_id
        else:  # a new guest cart, whatever token (unknown or expired) came with the call
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            values["token_hash"] = _digest(token)
        await tx.conn.execute(pg_insert(carts).values(**values).on_conflict_do_nothing())
        cart = await lock_cart(tx.conn, _owned(owner if not token else Owner(token=token)))
        assert cart is not None
        return cart.id, token

    async def _existing(self, tx: UnitOfWork, owner: Owner) -> Row[Any]:
        cart = await lock_cart(tx.conn, _owned(owner))
        if cart is None:
            raise NotFound("no such line in this cart")
        await _touch(tx, cart.id)
        return cart


def _owner_filter(owner: Owner, *, merged: bool = False) -> Any:
    """Which cart row is the owner's (a merged guest cart only when `merged`)."""
    if owner.user_id is not None:
        return carts.c.user_id == owner.user_id
    guest = carts.c.token_hash == _digest(owner.token)
    return guest if merged else guest & carts.c.merged_into.is_(None)


def _owned(owner: Owner, *, merged: bool = False) -> Any:
    """SELECT of the owner's cart row."""
    return select(carts).where(_owner_filter(owner, merged=merged))


async def _put_line(
    tx: UnitOfWork, cart_id: uuid.UUID, offer: Offer, quantity: int, *, adding: bool
) -> int:
    """Makes the product's line hold `quantity` (`adding`: that many more); what it now holds.

    One statement makes the line or changes it; the row lock it takes serializes concurrent
    adds of one product, so none is lost.
    """
    held = cart_items.c.quantity + quantity if adding else quantity
    return int(
        (
            await tx.conn.execute(
                pg_insert(cart_items)
                .values(
                    id=uuid.uuid4(),
                    cart_id=cart_id,
                    product_id=offer.product_id,
                    quantity=quantity,
                    name=offer.name,
                )
                .on_conflict_do_update(
                    index_elements=[cart_items.c.cart_id, cart_items.c.product_id],
                    set_={"quantity": held, "name": offer.name},
                )
                .returning(cart_items.c.quantity)
            )
        ).scalar_one()
    )


async def _touch(tx: UnitOfWork, cart_id: uuid.UUID) -> None:
    await tx.conn.execute(update(carts).where(carts.c.id == cart_id).values(updated_at=func.now()))


def _parse_field(violations: Violations, name: str, value: str) -> uuid.UUID | None:
    if not value.strip():
        violations.add(name, "is required")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        violations.add(name, "must be a UUID")
        return None
