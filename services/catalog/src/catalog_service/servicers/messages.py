"""Proto messages of the catalog's rows and views (what every servicer returns)."""

from __future__ import annotations

from typing import Any

from ecommerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf.message import Message
from sqlalchemy import Row

from catalog_service.categories import CategoryNode


def product_message(row: Row[Any]) -> pb.Product:
    product = pb.Product(
        id=str(row.id),
        sku=row.sku,
        name=row.name,
        description=row.description,
        price_cents=row.price_cents,
        currency=row.currency,
        category_id=str(row.category_id) if row.category_id else "",
        stock=row.on_hand - row.reserved,
        image_urls=row.image_urls,
        active=row.active,
    )
    product.created_at.FromDatetime(row.created_at)
    product.updated_at.FromDatetime(row.updated_at)
    return product


def category_message(node: CategoryNode | Row[Any]) -> pb.Category:
    category = pb.Category(
        id=str(node.id),
        name=node.name,
        slug=node.slug,
        parent_id=str(node.parent_id) if node.parent_id else "",
    )
    for child in getattr(node, "children", []):
        category.children.append(category_message(child))
    return category


def optional(message: Message, name: str) -> Any:
    """A proto3 `optional` field's value, or None when absent (or not in this message)."""
    if name not in message.DESCRIPTOR.fields_by_name or not message.HasField(name):
        return None
    return getattr(message, name)


_STATES = {
    "active": pb.RESERVATION_STATE_ACTIVE,
    "committed": pb.RESERVATION_STATE_COMMITTED,
    "released": pb.RESERVATION_STATE_RELEASED,
    "expired": pb.RESERVATION_STATE_EXPIRED,
}


def reservation_message(view: Any) -> pb.Reservation:
    reservation = pb.Reservation(
        reservation_id=str(view.id),
        state=_STATES[view.state],
        items=[pb.ReservationItem(product_id=str(p), quantity=q) for p, q in view.items],
    )
    reservation.expires_at.FromDatetime(view.expires_at)
    return reservation


def stock_level_message(view: Any) -> pb.StockLevel:
    level = pb.StockLevel(
        product_id=str(view.product_id),
        sku=view.sku,
        name=view.name,
        on_hand=view.on_hand,
        reserved=view.reserved,
        available=view.available,
        low_stock_threshold=view.low_stock_threshold,
    )
    level.updated_at.FromDatetime(view.updated_at)
    return level
