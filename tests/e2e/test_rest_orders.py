"""Orders over REST through Envoy, as a shop's frontend uses them: checkout (totals, stock,
idempotency, races), paying with the local Stripe server's test cards, cancelling, reading,
and the admin's fulfilment moves."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx

from conftest import eventually
from conftest import rest_fields as fields
from conftest import rest_reasons as reasons

ADDRESS = {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
NUMBER = re.compile(r"ORD-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


async def add(api: httpx.AsyncClient, user: dict, product: dict, quantity: int = 1) -> None:
    response = await api.post(
        "/api/cart/items", headers=user, json={"product_id": product["id"], "quantity": quantity}
    )
    assert response.status_code == 200, response.text


async def checkout(
    api: httpx.AsyncClient, user: dict, key: str = "", address: dict | None = None
) -> httpx.Response:
    headers = {**user, "Idempotency-Key": key} if key else user
    return await api.post(
        "/api/orders/checkout", headers=headers, json={"shipping_address": address or ADDRESS}
    )


async def ordered(api, user, product, quantity: int = 1, **address) -> dict:
    """A fresh order of `quantity` units of `product`, awaiting payment."""
    await add(api, user, product, quantity)
    response = await checkout(api, user, address={**ADDRESS, **address})
    assert response.status_code == 200, response.text
    return response.json()["order"]


async def pay(api, user, order_id: str, method: str = "pm_card_visa", key: str = ""):
    headers = {**user, "Idempotency-Key": key} if key else user
    return await api.post(
        f"/api/orders/{order_id}/pay", headers=headers, json={"payment_method_id": method}
    )


async def stock(api, product: dict) -> int:
    return (await api.get(f"/api/products/{product['id']}")).json()["stock"]


def statuses(order: dict) -> list[str]:
    return [change["status"].removeprefix("ORDER_STATUS_") for change in order["history"]]


async def test_checkout_prices_reserves_and_keeps_a_snapshot(api, admin, new_user, product):
    mug = await product(price_cents=1250, stock=10)
    user = await new_user()
    await add(api, user, mug, 3)

    response = await checkout(api, user)

    assert response.status_code == 200, response.text
    body = response.json()
    order = body["order"]
    assert order["status"] == "ORDER_STATUS_PENDING_PAYMENT"
    assert NUMBER.fullmatch(order["number"])
    assert order["items"] == [
        {
            "product_id": mug["id"],
            "name": mug["name"],
            "unit_price_cents": "1250",
            "quantity": 3,
            "line_total_cents": "3750",
        }
    ]
    # 19 % German tax of 37.50 is 7.125, rounded half up; shipping below the free threshold.
    assert (order["subtotal_cents"], order["tax_cents"], order["shipping_cents"]) == (
        "3750",
        "713",
        "599",
    )
    assert order["total_cents"] == "5062" and order["currency"] == "USD"
    assert order["shipping_address"]["country"] == "DE"
    assert statuses(order) == ["PENDING_PAYMENT"]
    assert body["payment"]["payment_intent_id"].startswith("pi_")
    assert body["payment"]["client_secret"]
    assert await stock(api, mug) == 7  # reserved

    # A later price change does not touch the order.
    await api.put(f"/api/products/{mug['id']}", headers=admin, json={"price_cents": 9999})
    again = (await api.get(f"/api/orders/{order['id']}", headers=user)).json()
    assert again["items"][0]["unit_price_cents"] == "1250"


async def test_free_shipping_from_the_threshold_and_no_tax_where_none_is_set(
    api, new_user, product
):
    user = await new_user()
    order = await ordered(api, user, await product(price_cents=6000), country="us")
    assert (order["tax_cents"], order["shipping_cents"], order["total_cents"]) == (
        "0",
        "0",
        "6000",
    )
    assert order["shipping_address"]["country"] == "US"


async def test_checkout_refusals_name_the_problem_and_change_nothing(api, new_user, product):
    user = await new_user()
    empty = await checkout(api, user)
    assert empty.status_code == 400 and reasons(empty) == ["CART_EMPTY"]

    mug = await product(stock=5)
    await add(api, user, mug, 2)
    bad = await checkout(api, user, address={"line1": " ", "country": "Germany"})
    assert bad.status_code == 400
    assert fields(bad) == {
        "shipping_address.line1",
        "shipping_address.city",
        "shipping_address.postal_code",
        "shipping_address.country",
    }
    missing = await api.post("/api/orders/checkout", headers=user, json={})
    assert missing.status_code == 400 and fields(missing) == {"shipping_address"}
    anonymous = await api.post("/api/orders/checkout", json={"shipping_address": ADDRESS})
    assert anonymous.status_code == 401
    assert await stock(api, mug) == 5
    assert (await api.get("/api/orders", headers=user)).json()["orders"] == []


async def test_missing_stock_is_refused_naming_the_product(api, new_user, product):
    mug = await product(stock=2)
    first, second = await new_user(), await new_user()
    await add(api, first, mug, 2)
    await add(api, second, mug, 2)
    assert (await checkout(api, first)).status_code == 200

    refused = await checkout(api, second)

    assert refused.status_code == 400 and reasons(refused) == ["OUT_OF_STOCK"]
    failure = next(d for d in refused.json()["details"] if "violations" in d)
    assert [v["subject"] for v in failure["violations"]] == [mug["id"]]
    assert (await api.get("/api/cart", headers=second)).json()["item_count"] == 2
    assert (await api.get("/api/orders", headers=second)).json()["orders"] == []


async def test_fifty_customers_racing_for_ten_units(api, new_user, product, sql):
    mug = await product(stock=10)
    users = await asyncio.gather(*(new_user() for _ in range(50)))
    await asyncio.gather(*(add(api, user, mug) for user in users))

    answers = await asyncio.gather(*(checkout(api, user) for user in users))

    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 10 + [400] * 40, [a.text for a in answers if a.status_code >= 500]
    assert all(reasons(a) == ["OUT_OF_STOCK"] for a in answers if a.status_code == 400)
    assert await stock(api, mug) == 0
    [(on_hand, reserved)] = sql(
        "SELECT on_hand, reserved FROM catalog.products WHERE id = %s", mug["id"]
    )
    assert (on_hand, reserved) == (10, 10)
    held = sql(
        "SELECT count(*) FROM orders.order_items WHERE product_id = %s", uuid.UUID(mug["id"])
    )
    assert held == [(10,)]


async def test_a_retried_checkout_makes_one_order(api, new_user, product, sql):
    mug = await product(stock=10)
    user = await new_user()
    await add(api, user, mug, 2)
    key = f"checkout-{uuid.uuid4()}"

    first = await checkout(api, user, key)
    again = await checkout(api, user, key)

    assert first.status_code == again.status_code == 200
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert again.json()["payment"] == first.json()["payment"]
    assert await stock(api, mug) == 8
    other_body = await checkout(api, user, key, address={**ADDRESS, "city": "Hamburg"})
    assert other_body.status_code == 409 and reasons(other_body) == ["IDEMPOTENCY_KEY_REUSED"]
    assert fields(other_body) == {"Idempotency-Key"}
    long_key = await checkout(api, user, "k" * 256)
    assert long_key.status_code == 400 and fields(long_key) == {"Idempotency-Key"}


async def test_the_same_key_ten_times_at_once_makes_one_order(api, new_user, product, sql):
    mug = await product(stock=10)
    user = await new_user()
    await add(api, user, mug, 1)
    key = f"burst-{uuid.uuid4()}"

    answers = await asyncio.gather(*(checkout(api, user, key) for _ in range(10)))

    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    assert len({a.json()["order"]["id"] for a in answers}) == 1
    assert len({a.json()["payment"]["payment_intent_id"] for a in answers}) == 1
    assert len((await api.get("/api/orders", headers=user)).json()["orders"]) == 1
    assert await stock(api, mug) == 9


async def test_paying_with_a_card_makes_the_order_paid_and_empties_the_cart(api, new_user, product):
    mug = await product(stock=10)
    user = await new_user()
    order = await ordered(api, user, mug, 2)

    paid = await pay(api, user, order["id"])

    assert paid.status_code == 200, paid.text
    assert paid.json()["order"]["status"] == "ORDER_STATUS_PAID"
    assert statuses(paid.json()["order"]) == ["PENDING_PAYMENT", "PAID"]
    assert await stock(api, mug) == 8  # sold: no longer reserved, no longer on hand

    async def cart_emptied():
        return (await api.get("/api/cart", headers=user)).json()["item_count"] == 0

    await eventually(cart_emptied)
    again = await pay(api, user, order["id"])
    assert again.status_code == 400 and reasons(again) == ["ORDER_NOT_PAYABLE"]


async def test_a_declined_card_can_be_followed_by_another(api, new_user, product):
    user = await new_user()
    mug = await product(stock=3)
    order = await ordered(api, user, mug)

    declined = await pay(api, user, order["id"], "pm_card_chargeCustomerFail")

    assert declined.status_code == 400 and reasons(declined) == ["CARD_DECLINED"]
    info = next(d for d in declined.json()["details"] if d.get("reason") == "CARD_DECLINED")
    assert info["metadata"]["decline_code"]
    now = (await api.get(f"/api/orders/{order['id']}", headers=user)).json()
    assert now["status"] == "ORDER_STATUS_PAYMENT_FAILED"
    assert await stock(api, mug) == 2  # still held for the second try

    paid = await pay(api, user, order["id"], "pm_card_visa")

    assert paid.status_code == 200, paid.text
    assert statuses(paid.json()["order"]) == ["PENDING_PAYMENT", "PAYMENT_FAILED", "PAID"]


async def test_paying_is_idempotent_per_key_and_refuses_bad_input(api, new_user, product):
    user, stranger = await new_user(), await new_user()
    order = await ordered(api, user, await product())
    key = f"pay-{uuid.uuid4()}"

    first = await pay(api, user, order["id"], key=key)
    again = await pay(api, user, order["id"], key=key)

    assert first.status_code == again.status_code == 200
    assert again.json()["order"]["status"] == "ORDER_STATUS_PAID"
    reused = await pay(api, user, order["id"], "pm_card_mastercard", key=key)
    assert reused.status_code == 409 and reasons(reused) == ["IDEMPOTENCY_KEY_REUSED"]
    bad = await pay(api, user, order["id"], "card-1234")
    assert bad.status_code == 400 and fields(bad) == {"payment_method_id"}
    theirs = await pay(api, stranger, order["id"])
    assert theirs.status_code == 404
    malformed = await pay(api, user, "not-an-id")
    assert malformed.status_code == 400 and fields(malformed) == {"id"}


async def test_cancelling_an_unpaid_order_gives_the_stock_back(api, new_user, product):
    user = await new_user()
    mug = await product(stock=4)
    order = await ordered(api, user, mug, 3)

    cancelled = await api.put(
        f"/api/orders/{order['id']}/cancel", headers=user, json={"reason": "changed my mind"}
    )

    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "ORDER_STATUS_CANCELLED"
    assert body["history"][-1]["note"] == "cancelled by customer: changed my mind"
    assert await stock(api, mug) == 4
    twice = await api.put(f"/api/orders/{order['id']}/cancel", headers=user, json={})
    assert twice.status_code == 200 and twice.json()["history"] == body["history"]
    late = await pay(api, user, order["id"])
    assert late.status_code == 400 and reasons(late) == ["ORDER_NOT_PAYABLE"]


async def test_cancelling_a_paid_order_refunds_it_in_full(api, new_user, product):
    user = await new_user()
    mug = await product(stock=4)
    order = await ordered(api, user, mug, 2)
    assert (await pay(api, user, order["id"])).status_code == 200

    cancelled = await api.put(f"/api/orders/{order['id']}/cancel", headers=user, json={})

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "ORDER_STATUS_CANCELLED"
    assert await stock(api, mug) == 4  # the sold units are back on hand

    async def refunded():
        now = (await api.get(f"/api/orders/{order['id']}", headers=user)).json()
        return now["refunded_cents"] == now["total_cents"] and now

    final = await eventually(refunded)
    assert final["status"] == "ORDER_STATUS_CANCELLED"


async def test_reading_orders_own_newest_first_others_not_at_all(api, new_user, product):
    user, stranger = await new_user(), await new_user()
    mug = await product(stock=10)
    made = [(await ordered(api, user, mug))["id"] for _ in range(3)]

    first = (await api.get("/api/orders?page_size=2", headers=user)).json()
    rest = (
        await api.get(
            f"/api/orders?page_size=2&page_token={first['next_page_token']}", headers=user
        )
    ).json()

    assert [o["id"] for o in first["orders"] + rest["orders"]] == made[::-1]
    assert rest["next_page_token"] == ""
    assert (await api.get("/api/orders", headers=stranger)).json()["orders"] == []
    theirs = await api.get(f"/api/orders/{made[0]}", headers=stranger)
    assert theirs.status_code == 404
    assert (await api.get(f"/api/orders/{uuid.uuid4()}", headers=user)).status_code == 404
    junk = await api.get("/api/orders?page_token=junk", headers=user)
    assert junk.status_code == 400 and fields(junk) == {"page_token"}
    assert (await api.get("/api/orders")).status_code == 401


async def test_admins_see_every_order_and_move_it_along_fulfilment(api, admin, new_user, product):
    user = await new_user()
    order = await ordered(api, user, await product())
    await pay(api, user, order["id"])
    user_id = (await api.get("/api/auth/me", headers=user)).json()["user"]["id"]

    listed = (
        await api.get(
            f"/api/admin/orders?status=ORDER_STATUS_PAID&user_id={user_id}", headers=admin
        )
    ).json()
    assert [o["id"] for o in listed["orders"]] == [order["id"]] and listed["total_size"] == 1
    assert (await api.get(f"/api/orders/{order['id']}", headers=admin)).status_code == 200

    async def move(status: str) -> httpx.Response:
        return await api.put(
            f"/api/admin/orders/{order['id']}/status", headers=admin, json={"status": status}
        )

    illegal = await move("ORDER_STATUS_DELIVERED")
    assert illegal.status_code == 400 and reasons(illegal) == ["ILLEGAL_TRANSITION"]
    assert (await move("ORDER_STATUS_FULFILLED")).status_code == 200
    assert (await move("ORDER_STATUS_FULFILLED")).json()["status"] == "ORDER_STATUS_FULFILLED"
    delivered = await move("ORDER_STATUS_DELIVERED")
    assert statuses(delivered.json()) == ["PENDING_PAYMENT", "PAID", "FULFILLED", "DELIVERED"]
    for status in ("ORDER_STATUS_PAID", "ORDER_STATUS_CANCELLED", "ORDER_STATUS_REFUNDED"):
        refused = await move(status)
        assert refused.status_code == 400 and reasons(refused) == ["ILLEGAL_TRANSITION"]
    no_cancel = await api.put(f"/api/orders/{order['id']}/cancel", headers=user, json={})
    assert no_cancel.status_code == 400 and reasons(no_cancel) == ["ILLEGAL_TRANSITION"]
    as_customer = await api.get("/api/admin/orders", headers=user)
    assert as_customer.status_code == 403


async def test_guest_cart_to_paid_order(api, new_user, product):
    """The whole path a shopper takes: a guest cart, sign-in, merge, checkout, pay."""
    mug, lamp = await product(price_cents=1500, stock=5), await product(price_cents=900)
    guest = await api.post("/api/cart/items", json={"product_id": mug["id"], "quantity": 2})
    token = guest.json()["cart_token"]
    await api.post(
        "/api/cart/items",
        headers={"X-Cart-Token": token},
        json={"product_id": lamp["id"], "quantity": 1},
    )
    user = await new_user()
    merged = await api.post("/api/cart/merge", headers=user, json={"cart_token": token})
    assert merged.json()["item_count"] == 3

    placed = await checkout(api, user, key=str(uuid.uuid4()))
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["subtotal_cents"] == "3900"
    paid = await pay(api, user, order["id"])

    assert paid.json()["order"]["status"] == "ORDER_STATUS_PAID"
    listed = (await api.get("/api/orders", headers=user)).json()["orders"]
    assert [(o["id"], o["status"]) for o in listed] == [(order["id"], "ORDER_STATUS_PAID")]
