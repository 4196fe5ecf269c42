"""An order's price: the catalog's current prices, tax by destination country, flat shipping.

Tax is charged on the subtotal (not on shipping) at the destination country's rate, in basis
points, rounded half up to the cent. Shipping is flat and free from a subtotal threshold.
Both come from the settings (docs/orders.md has the defaults).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ecom_runtime.errors import FailedPrecondition

from orders_service import errors
from orders_service.config import OrdersSettings
from orders_service.partners import Offer


@dataclass(frozen=True)
class Line:
    product_id: str
    name: str
    unit_price_cents: int
    quantity: int

    @property
    def total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True)
class Quote:
    lines: list[Line]
    currency: str
    subtotal_cents: int
    tax_cents: int
    shipping_cents: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tax_cents + self.shipping_cents

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quote:
        return cls(**{**data, "lines": [Line(**line) for line in data["lines"]]})


def half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half up (money never goes through floats)."""
    return (2 * numerator + denominator) // (2 * denominator)


def quote(
    cart: list[tuple[uuid.UUID, int]],
    offers: dict[uuid.UUID, Offer],
    country: str,
    settings: OrdersSettings,
) -> Quote:
    """Prices the cart's lines; a product gone or not for sale refuses the checkout, naming it
    (a PreconditionFailure violation per product, as the catalog's own refusals do)."""
    unavailable = [
        (errors.PRODUCT_UNAVAILABLE, str(pid), "no longer for sale; remove it from the cart")
        for pid, _ in cart
        if pid not in offers or not offers[pid].active
    ]
    if unavailable:
        raise FailedPrecondition("some products are no longer for sale", unavailable)
    currencies = {offers[pid].currency for pid, _ in cart}
    if len(currencies) != 1:
        raise FailedPrecondition(
            "an order is paid in one currency; the cart mixes several",
            reason=errors.CURRENCY_MISMATCH,
        )
    lines = [
        Line(str(pid), offers[pid].name, offers[pid].price_cents, quantity)
        for pid, quantity in cart
    ]
    subtotal = sum(line.total_cents for line in lines)
    rate = settings.orders_tax_rates.get(country, settings.orders_tax_default_bps)
    free = subtotal >= settings.orders_free_shipping_from_cents
    return Quote(
        lines=lines,
        currency=currencies.pop(),
        subtotal_cents=subtotal,
        tax_cents=half_up_div(subtotal * rate, 10_000),
        shipping_cents=0 if free else settings.orders_shipping_cents,
    )
