"""The cart over REST through Envoy, as a shop's frontend uses it: guests and users, prices
and stock from the catalog, products leaving the catalog, merging after sign-in."""

from __future__ import annotations

import asyncio
import uuid

from conftest import rest_fields as fields
from conftest import rest_reasons as reasons


async def test_a_guest_cart_lives_by_its_token(api, product) -> None:
    mug = await product(price_cents=1250, stock=10)
    added = await api.post("/api/cart/items", json={"product_id": mug["id"], "quantity": 2})
    assert added.status_code == 200, added.text
    cart = added.json()
    token = cart["cart_token"]
    assert token.startswith("ct_")
    assert cart["subtotal_cents"] == "2500" and cart["item_count"] == 2
    [line] = cart["items"]
    assert (line["name"], line["unit_price_cents"], line["line_total_cents"]) == (
        mug["name"],
        "1250",
        "2500",
    )
    again = await api.post(
        "/api/cart/items",
        json={"product_id": mug["id"], "quantity": 3},
        headers={"X-Cart-Token": token},
    )
    assert again.json()["items"][0]["quantity"] == 5  # added to the line, no second line
    assert again.json()["cart_token"] == ""  # shown once
    seen = (await api.get("/api/cart", headers={"X-Cart-Token": token})).json()
    assert seen["item_count"] == 5 and seen["cart_token"] == ""
    # Without the token, or with one nobody issued, a guest has an empty cart.
    assert (await api.get("/api/cart")).json()["items"] == []
    other = await api.get("/api/cart", headers={"X-Cart-Token": "ct_guessed"})
    assert other.json()["items"] == []


async def test_quantities_are_1_to_99_and_never_above_stock(new_user, api, product) -> None:
    user = await new_user()
    scarce = await product(stock=3)
    for quantity in (0, -1, 100):
        refused = await api.post(
            "/api/cart/items", headers=user, json={"product_id": scarce["id"], "quantity": quantity}
        )
        assert refused.status_code == 400 and "quantity" in fields(refused), refused.text
    too_many = await api.post(
        "/api/cart/items", headers=user, json={"product_id": scarce["id"], "quantity": 4}
    )
    assert too_many.status_code == 400
    assert "quantity" in fields(too_many) and "OUT_OF_STOCK" in reasons(too_many)
    ok = await api.post(
        "/api/cart/items", headers=user, json={"product_id": scarce["id"], "quantity": 3}
    )
    assert ok.status_code == 200
    one_more = await api.post(
        "/api/cart/items", headers=user, json={"product_id": scarce["id"], "quantity": 1}
    )
    assert one_more.status_code == 400 and "OUT_OF_STOCK" in reasons(one_more)
    assert (await api.get("/api/cart", headers=user)).json()["item_count"] == 3  # unchanged
    line_id = ok.json()["items"][0]["id"]
    updated = await api.put(f"/api/cart/items/{line_id}", headers=user, json={"quantity": 9})
    assert updated.status_code == 400 and "quantity" in fields(updated)


async def test_unknown_or_hidden_products_cannot_be_added(new_user, api, product) -> None:
    user = await new_user()
    hidden = await product(active=False)
    for product_id in (str(uuid.uuid4()), hidden["id"], "not-a-uuid"):
        refused = await api.post(
            "/api/cart/items", headers=user, json={"product_id": product_id, "quantity": 1}
        )
        assert refused.status_code == 400 and "product_id" in fields(refused), refused.text
    assert (await api.get("/api/cart", headers=user)).json()["items"] == []


async def test_update_remove_clear_and_other_peoples_lines(new_user, api, product) -> None:
    user, stranger = await new_user(), await new_user()
    a, b = await product(price_cents=500), await product(price_cents=700)
    await api.post("/api/cart/items", headers=user, json={"product_id": a["id"], "quantity": 1})
    cart = (
        await api.post("/api/cart/items", headers=user, json={"product_id": b["id"], "quantity": 1})
    ).json()
    line_a, line_b = (line["id"] for line in cart["items"])  # oldest line first
    updated = await api.put(f"/api/cart/items/{line_a}", headers=user, json={"quantity": 4})
    assert updated.json()["subtotal_cents"] == str(4 * 500 + 700)
    # Someone else's line is not theirs to see or change.
    assert (await api.delete(f"/api/cart/items/{line_a}", headers=stranger)).status_code == 404
    put = await api.put(f"/api/cart/items/{line_a}", headers=stranger, json={"quantity": 1})
    assert put.status_code == 404
    removed = await api.delete(f"/api/cart/items/{line_b}", headers=user)
    assert [line["id"] for line in removed.json()["items"]] == [line_a]
    assert (await api.delete(f"/api/cart/items/{line_b}", headers=user)).status_code == 404
    cleared = await api.delete("/api/cart/clear", headers=user)
    assert cleared.json()["items"] == [] and cleared.json()["subtotal_cents"] == "0"


async def test_prices_are_the_catalogs_current_ones(new_user, api, admin, product) -> None:
    user = await new_user()
    mug = await product(price_cents=1000)
    await api.post("/api/cart/items", headers=user, json={"product_id": mug["id"], "quantity": 2})
    await api.put(f"/api/products/{mug['id']}", headers=admin, json={"price_cents": 1500})
    cart = (await api.get("/api/cart", headers=user)).json()
    assert cart["items"][0]["unit_price_cents"] == "1500" and cart["subtotal_cents"] == "3000"


async def test_a_product_that_leaves_the_catalog_drops_out_with_a_notice(
    new_user, api, admin, product
) -> None:
    user = await new_user()
    kept, deleted, hidden = await product(), await product(), await product()
    for p in (kept, deleted, hidden):
        await api.post("/api/cart/items", headers=user, json={"product_id": p["id"], "quantity": 1})
    await api.delete(f"/api/products/{deleted['id']}", headers=admin)
    await api.put(f"/api/products/{hidden['id']}", headers=admin, json={"active": False})
    cart = await api.get("/api/cart", headers=user)
    assert cart.status_code == 200
    assert [line["product_id"] for line in cart.json()["items"]] == [kept["id"]]
    notices = cart.json()["notices"]
    assert any(deleted["name"] in n for n in notices) and any(hidden["name"] in n for n in notices)
    again = (await api.get("/api/cart", headers=user)).json()
    assert again["notices"] == []  # said once: the lines are gone


async def test_a_cart_holds_one_currency(new_user, api, product) -> None:
    user = await new_user()
    dollars, euros = await product(), await product(currency="EUR")
    await api.post(
        "/api/cart/items", headers=user, json={"product_id": dollars["id"], "quantity": 1}
    )
    mixed = await api.post(
        "/api/cart/items", headers=user, json={"product_id": euros["id"], "quantity": 1}
    )
    assert mixed.status_code == 400 and "CURRENCY_MISMATCH" in reasons(mixed)


async def test_guest_cart_merges_into_the_users_cart_after_login(new_user, api, product) -> None:
    mug, scarce = await product(stock=10), await product(stock=4)
    guest = (
        await api.post("/api/cart/items", json={"product_id": mug["id"], "quantity": 2})
    ).json()
    token = guest["cart_token"]
    await api.post(
        "/api/cart/items",
        headers={"X-Cart-Token": token},
        json={"product_id": scarce["id"], "quantity": 3},
    )
    user = await new_user()
    await api.post("/api/cart/items", headers=user, json={"product_id": mug["id"], "quantity": 1})
    await api.post(
        "/api/cart/items", headers=user, json={"product_id": scarce["id"], "quantity": 2}
    )
    merged = await api.post("/api/cart/merge", headers=user, json={"cart_token": token})
    assert merged.status_code == 200, merged.text
    quantities = {line["product_id"]: line["quantity"] for line in merged.json()["items"]}
    assert quantities == {mug["id"]: 3, scarce["id"]: 4}  # added up; 5 capped at the stock
    assert any("only 4" in n for n in merged.json()["notices"])
    # The token is spent: the guest cart is empty, a retry answers the same, others are refused.
    assert (await api.get("/api/cart", headers={"X-Cart-Token": token})).json()["items"] == []
    retry = await api.post("/api/cart/merge", headers=user, json={"cart_token": token})
    assert {line["product_id"]: line["quantity"] for line in retry.json()["items"]} == quantities
    thief = await api.post("/api/cart/merge", headers=await new_user(), json={"cart_token": token})
    assert thief.status_code == 400 and "CART_TOKEN_INVALID" in reasons(thief)
    anonymous = await api.post("/api/cart/merge", json={"cart_token": token})
    assert anonymous.status_code == 401


async def test_concurrent_adds_of_one_product_all_count(new_user, api, product) -> None:
    user = await new_user()
    mug = await product(stock=50)
    answers = await asyncio.gather(
        *(
            api.post("/api/cart/items", headers=user, json={"product_id": mug["id"], "quantity": 1})
            for _ in range(10)
        )
    )
    assert [a.status_code for a in answers] == [200] * 10
    cart = (await api.get("/api/cart", headers=user)).json()
    assert len(cart["items"]) == 1 and cart["items"][0]["quantity"] == 10


async def test_an_api_key_has_no_cart(api, admin) -> None:
    created = await api.post("/api/auth/api-keys", headers=admin, json={"name": "cart"})
    response = await api.get("/api/cart", headers={"X-API-Key": created.json()["key"]})
    assert response.status_code == 403
