"""Products: validation, writes (each with its ProductChanged event), reads by id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pycountry
from ecom_runtime.db import Database
from ecom_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from ecom_runtime.validation import Violations
from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog_service import errors
from catalog_service.cache import CatalogCache
from catalog_service.events import Kind, announce_changed
from catalog_service.inventory import sync_low_stock
from catalog_service.store import PRODUCT_COLUMNS, categories, products

SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_PRICE_CENTS = 10**12
MAX_IMAGES = 10
MAX_STOCK = 1_000_000


@dataclass(frozen=True)
class ProductFields:
    """What a create or update sets; None leaves a field as it is (update only)."""

    sku: str | None = None
    name: str | None = None
    description: str | None = None
    price_cents: int | None = None
    currency: str | None = None
    category_id: str | None = None  # "" removes the category
    image_urls: list[str] | None = None
    active: bool | None = None
    low_stock_threshold: int | None = None


def _validate(fields: ProductFields, violations: Violations) -> dict[str, Any]:
    """Checks every present field; returns the column values to write."""
    values: dict[str, Any] = {}
    if fields.sku is not None:
        if not SKU.match(fields.sku.strip()):
            violations.add("sku", "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'")
        values["sku"] = fields.sku.strip()
    if fields.name is not None:
        violations.check_length("name", fields.name, 1, 200)
        values["name"] = fields.name.strip()
    if fields.description is not None:
        if len(fields.description) > 10_000:
            violations.add("description", "must be at most 10000 characters")
        values["description"] = fields.description
    if fields.price_cents is not None:
        if not 0 <= fields.price_cents <= MAX_PRICE_CENTS:
            violations.add("price_cents", f"must be between 0 and {MAX_PRICE_CENTS}")
        values["price_cents"] = fields.price_cents
    if fields.currency is not None:
        currency = fields.currency.strip().upper() or "USD"
        if len(currency) != 3 or pycountry.currencies.get(alpha_3=currency) is None:
            violations.add("currency", "must be an ISO 4217 code such as USD or EUR")
        values["currency"] = currency
    if fields.category_id is not None:
        try:
            values["category_id"] = uuid.UUID(fields.category_id) if fields.category_id else None
        except ValueError:
            violations.add("category_id", "must be a UUID")
    if fields.image_urls is not None:
        if len(fields.image_urls) > MAX_IMAGES:
            violations.add("image_urls", f"must hold at most {MAX_IMAGES} URLs")
        for i, url in enumerate(fields.image_urls):
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2000:
                violations.add(f"image_urls[{i}]", "must be an absolute http(s) URL")
        values["image_urls"] = list(fields.image_urls)
    if fields.active is not None:
        values["active"] = fields.active
    if fields.low_stock_threshold is not None:
        if not 0 <= fields.low_stock_threshold <= MAX_STOCK:
            violations.add("low_stock_threshold", f"must be between 0 and {MAX_STOCK}")
        values["low_stock_threshold"] = fields.low_stock_threshold
    return values


def _sku_taken(error: IntegrityError) -> AlreadyExists:
    if "uq_products_sku_live" in str(error.orig):
        return AlreadyExists({"sku": "is already used by another product"}, reason=errors.SKU_TAKEN)
    raise error


class Products:
    """Every write announces the product's new snapshot and retires the read cache."""

    def __init__(self, db: Database, cache: CatalogCache) -> None:
        self._db = db
        self._cache = cache

    async def create(self, fields: ProductFields, stock: int) -> Row[Any]:
        violations = Violations()
        for name in ("sku", "name", "price_cents"):
            if getattr(fields, name) is None:
                violations.add(name, "is required")
        values = _validate(fields, violations)
        if not 0 <= stock <= MAX_STOCK:
            violations.add("stock", f"must be between 0 and {MAX_STOCK}")
        violations.raise_if_any()
        values.setdefault("currency", "USD")
        try:
            async with self._db.begin() as tx:
                await self._require_category(tx.conn, values.get("category_id"))
                row = (
                    await tx.conn.execute(
                        insert(products)
                        .values(id=uuid.uuid4(), on_hand=stock, **values)
                        .returning(*PRODUCT_COLUMNS)
                    )
                ).one()
                await sync_low_stock(tx, [row.id])  # stock may start at or below threshold
                await announce_changed(tx, [row.id], Kind.PRODUCT_CHANGE_KIND_CREATED)
                tx.on_commit(self._cache.invalidate)
        except IntegrityError as error:
            raise _sku_taken(error) from None
        return row

    async def update(self, product_id: uuid.UUID, fields: ProductFields) -> Row[Any]:
        violations = Violations()
        values = _validate(fields, violations)
        violations.raise_if_any()
        try:
            async with self._db.begin() as tx:
                if values.get("category_id") is not None:
                    await self._require_category(tx.conn, values["category_id"])
                row = (
                    await tx.conn.execute(
                        update(products)
                        .where(products.c.id == product_id, products.c.deleted_at.is_(None))
                        .values(**values, version=products.c.version + 1, updated_at=func.now())
                        .returning(*PRODUCT_COLUMNS)
                    )
                ).first()
                if row is None:
                    raise NotFound("product not found")
                if "low_stock_threshold" in values:
                    await sync_low_stock(tx, [row.id])
                await announce_changed(tx, [row.id], Kind.PRODUCT_CHANGE_KIND_UPDATED)
                tx.on_commit(self._cache.invalidate)
        except IntegrityError as error:
            raise _sku_taken(error) from None
        return row

    async def delete(self, product_id: uuid.UUID) -> None:
        async with self._db.begin() as tx:
            row = (
                await tx.conn.execute(
                    update(products)
                    .where(products.c.id == product_id, products.c.deleted_at.is_(None))
                    .values(deleted_at=func.now(), version=products.c.version + 1)
                    .returning(products.c.id)
                )
            ).first()
            if row is None:
                raise NotFound("product not found")
            await announce_changed(tx, [product_id], Kind.PRODUCT_CHANGE_KIND_DELETED)
            tx.on_commit(self._cache.invalidate)

    async def get(self, product_id: uuid.UUID, *, include_inactive: bool = False) -> Row[Any]:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(*PRODUCT_COLUMNS).where(products.c.id == product_id))
            ).first()
        if row is None or row.deleted_at is not None or not (row.active or include_inactive):
            raise NotFound("product not found")
        return row

    async def get_many(self, ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
        """Live (not deleted) products among `ids`, in the order of `ids`."""
        if not ids:
            return []
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(*PRODUCT_COLUMNS).where(
                    products.c.id.in_(ids), products.c.deleted_at.is_(None)
                )
            )
            by_id = {row.id: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    async def _require_category(self, conn: AsyncConnection, category_id: uuid.UUID | None) -> None:
        if category_id is None:
            return
        found = await conn.execute(select(categories.c.id).where(categories.c.id == category_id))
        if found.first() is None:
            raise InvalidArgument({"category_id": "no such category"})
