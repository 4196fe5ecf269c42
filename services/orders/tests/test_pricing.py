"""Order totals: tax by country rounded half up, flat shipping with a free threshold, and the
refusals that keep an order to sellable products in one currency (no server needed)."""

from __future__ import annotations

import uuid

import pytest
from ecom_runtime.errors import FailedPrecondition, InvalidArgument
from ecommerce.common.v1 import common_pb2
from orders_service.config import OrdersSettings
from orders_service.partners import Offer
from orders_service.pricing import half_up_div, quote
from orders_service.records import new_number
from orders_service.workflows.checkout import shipping_address

SETTINGS = OrdersSettings(
    orders_tax_rates={"DE": 1900},
    orders_tax_default_bps=500,
    orders_shipping_cents=599,
    orders_free_shipping_from_cents=5000,
)


def offer(price: int, currency: str = "USD", active: bool = True) -> Offer:
    return Offer(uuid.uuid4(), "Lamp", price, currency, active)


def test_tax_is_the_countrys_rate_rounded_half_up_and_shipping_flat_below_the_threshold():
    lamp = offer(1250)
    priced = quote([(lamp.product_id, 3)], {lamp.product_id: lamp}, "DE", SETTINGS)
    assert (priced.subtotal_cents, priced.tax_cents, priced.shipping_cents) == (3750, 713, 599)
    assert priced.total_cents == 5062
    assert priced.lines[0].total_cents == 3750 and priced.currency == "USD"


def test_unlisted_countries_pay_the_default_rate_and_shipping_is_free_from_the_threshold():
    lamp = offer(5000)
    priced = quote([(lamp.product_id, 1)], {lamp.product_id: lamp}, "CH", SETTINGS)
    assert (priced.tax_cents, priced.shipping_cents, priced.total_cents) == (250, 0, 5250)


def test_half_up_division():
    assert [half_up_div(n, 10) for n in (14, 15, 16, 0)] == [1, 2, 2, 0]


def test_products_gone_or_hidden_are_named_and_currencies_not_mixed():
    gone, hidden, kept = uuid.uuid4(), offer(100, active=False), offer(100)
    offers = {hidden.product_id: hidden, kept.product_id: kept}
    with pytest.raises(FailedPrecondition) as caught:
        quote([(gone, 1), (hidden.product_id, 1), (kept.product_id, 1)], offers, "DE", SETTINGS)
    assert caught.value.reason == "PRODUCT_UNAVAILABLE"
    assert [v[1] for v in caught.value.violations] == [str(gone), str(hidden.product_id)]
    euro = offer(100, "EUR")
    with pytest.raises(FailedPrecondition) as mixed:
        quote(
            [(kept.product_id, 1), (euro.product_id, 1)],
            {kept.product_id: kept, euro.product_id: euro},
            "DE",
            SETTINGS,
        )
    assert mixed.value.reason == "CURRENCY_MISMATCH"


def test_addresses_are_trimmed_and_every_bad_field_named():
    clean = shipping_address(
        common_pb2.Address(line1=" 1 Main St ", city="Berlin", postal_code="10115", country="de")
    )
    assert clean == {
        "line1": "1 Main St",
        "line2": "",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    }
    with pytest.raises(InvalidArgument) as caught:
        shipping_address(common_pb2.Address(line1="x" * 201, country="DEU"))
    assert dict(caught.value.violations).keys() == {
        "shipping_address.line1",
        "shipping_address.city",
        "shipping_address.postal_code",
        "shipping_address.country",
    }


def test_order_numbers_are_short_and_unambiguous():
    numbers = {new_number() for _ in range(1000)}
    assert len(numbers) == 1000
    assert all(len(n) == 13 and n[:4] == "ORD-" and not set(n[4:]) & set("ILOU") for n in numbers)
