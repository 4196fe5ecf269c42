"""The OpenAPI document generated from the protos: valid, complete, faithful to the transcoder's
JSON (checked against real responses through Envoy), and committed up to date."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ecom_gateway import openapi
from ecom_gateway.envoy import DESCRIPTOR_PATH, load_descriptor, public_services
from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator
from openapi_spec_validator import validate as validate_spec

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, tag, unique_email

DESCRIPTOR = load_descriptor(DESCRIPTOR_PATH)
DOC = openapi.build_document(DESCRIPTOR)
SCHEMAS = DOC["components"]["schemas"]
METHODS = {"get", "put", "post", "delete", "patch"}
Field = descriptor_pb2.FieldDescriptorProto

# The contract's admin routes, written out by hand so the generator's rule is checked against it.
ADMIN_ROUTES = """
POST /api/auth/api-keys
GET /api/auth/api-keys
DELETE /api/auth/api-keys/{id}
GET /api/users
GET /api/users/{id}
PUT /api/users/{id}
DELETE /api/users/{id}
POST /api/products
PUT /api/products/{id}
DELETE /api/products/{id}
POST /api/products/{id}/images
POST /api/categories
PUT /api/categories/{id}
PUT /api/products/{id}/stock
GET /api/inventory/low-stock
GET /api/admin/orders
PUT /api/admin/orders/{id}/status
POST /api/admin/orders/{id}/refund
GET /api/admin/analytics/sales
GET /api/admin/analytics/top-products
GET /api/admin/analytics/summary
GET /api/admin/jobs
GET /api/admin/notifications/dead-letters
POST /api/admin/notifications/dead-letters/{id}/replay
"""
# A user's cart with a Bearer token, a guest's with X-Cart-Token.
USER_OR_GUEST_ROUTES = """
GET /api/cart
POST /api/cart/items
PUT /api/cart/items/{id}
DELETE /api/cart/items/{id}
DELETE /api/cart/clear
"""
USER_ROUTES = """
GET /api/auth/me
POST /api/cart/merge
POST /api/orders/checkout
POST /api/orders/{id}/pay
GET /api/orders
GET /api/orders/{id}
PUT /api/orders/{id}/cancel
"""


def routes(text: str) -> set[tuple[str, str]]:
    return {
        (verb.lower(), path) for verb, path in (line.split() for line in text.split("\n") if line)
    }


def operations(doc: dict[str, Any] = DOC) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def resolve(node: dict[str, Any], doc: dict[str, Any] = DOC) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = doc["components"][section][name]
    return node


def properties(schema: dict[str, Any]) -> dict[str, Any]:
    return resolve(schema)["properties"]


def body_schema(method: str, path: str) -> dict[str, Any]:
    return operations()[(method, path)]["requestBody"]["content"]["application/json"]["schema"]


def validator(schema: dict[str, Any], cls: Any = OAS30ReadValidator) -> Any:
    """An OpenAPI 3.0 schema validator whose `#/components/...` refs resolve in the document."""
    return cls({**schema, "components": DOC["components"]})


def test_the_document_is_valid_openapi_3() -> None:
    validate_spec(DOC)
    assert DOC["openapi"].startswith("3.")
    assert DOC["servers"] == [
        {"url": "http://127.0.0.1:8080", "description": DOC["servers"][0]["description"]}
    ]
    assert DOC["info"]["title"] and DOC["info"]["version"]


def test_the_committed_document_is_up_to_date() -> None:
    assert openapi.OPENAPI_PATH.read_text() == openapi.render(), (
        "gateway/src/ecom_gateway/openapi.json is stale: run `make openapi`"
    )
    assert openapi.render() == openapi.render()  # deterministic


def test_every_annotated_rpc_is_an_operation_with_its_method_and_path() -> None:
    expected = {("get", "/healthz"): "healthz"}
    for service in public_services(DESCRIPTOR):
        for file in DESCRIPTOR.file:
            for proto in file.service:
                if f"{file.package}.{proto.name}" != service.name:
                    continue
                for method in proto.method:
                    if not method.options.HasExtension(annotations_pb2.http):
                        continue
                    rule = method.options.Extensions[annotations_pb2.http]
                    verb = rule.WhichOneof("pattern")
                    expected[(verb, getattr(rule, verb))] = f"{service.name}.{method.name}"
    found = {key: op["operationId"] for key, op in operations().items()}
    assert found == expected
    assert not any("InternalService" in op_id for op_id in found.values())


def test_path_parameters_come_from_the_template_and_leave_the_body() -> None:
    op = operations()[("put", "/api/products/{id}")]
    assert [(p["name"], p["in"], p["required"]) for p in op["parameters"]] == [("id", "path", True)]
    assert op["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}
    assert "id" not in properties(body_schema("put", "/api/products/{id}"))
    assert "sku" in properties(body_schema("put", "/api/products/{id}"))
    stock = body_schema("put", "/api/products/{id}/stock")
    assert set(properties(stock)) == {"on_hand", "low_stock_threshold"}
    assert stock["required"] == ["on_hand"]  # REQUIRED, although proto3 `optional`


def test_get_and_delete_take_the_other_fields_as_query_parameters() -> None:
    params = {p["name"]: p for p in operations()[("get", "/api/products")]["parameters"]}
    assert list(params) == [
        "page_size",
        "page_token",
        "category_id",
        "min_price_cents",
        "max_price_cents",
        "in_stock",
        "sort",
        "include_inactive",
    ]
    assert all(p["in"] == "query" and not p["required"] for p in params.values())
    assert params["min_price_cents"]["schema"]["type"] == "integer"
    assert params["min_price_cents"]["schema"]["format"] == "int64"
    assert params["in_stock"]["schema"] == {"type": "boolean"}
    search = {p["name"]: p for p in operations()[("get", "/api/products/search")]["parameters"]}
    assert search["q"]["required"] is True
    sales = {
        p["name"]: p for p in operations()[("get", "/api/admin/analytics/sales")]["parameters"]
    }
    assert set(sales) == {"from", "to", "interval"}  # json_name "from" for field from_time
    assert sales["from"]["schema"] == {"type": "string", "format": "date-time"}
    status = {p["name"]: p for p in operations()[("get", "/api/admin/orders")]["parameters"]}
    assert resolve(status["status"]["schema"])["enum"][1] == "ORDER_STATUS_PENDING_PAYMENT"
    assert "requestBody" not in operations()[("delete", "/api/products/{id}")]


def test_64_bit_integers_are_strings_out_and_numbers_or_strings_in() -> None:
    product = properties({"$ref": "#/components/schemas/ecommerce.catalog.v1.Product"})
    assert product["price_cents"] == {
        "type": "string",
        "format": "int64",
        "pattern": "^-?[0-9]+$",
        "description": "Unit price in minor units of `currency`, >= 0.",
    }
    assert product["stock"]["type"] == "integer" and product["stock"]["format"] == "int32"
    create = properties(body_schema("post", "/api/products"))
    kinds = [branch["type"] for branch in create["price_cents"]["oneOf"]]
    assert kinds == ["integer", "string"]
    check = validator(body_schema("post", "/api/products"), OAS30WriteValidator)
    for price in (1250, "1250"):
        assert check.is_valid({"sku": "A", "name": "B", "price_cents": price})
    assert not check.is_valid({"sku": "A", "name": "B", "price_cents": "12.5"})


def test_enums_are_their_value_names() -> None:
    enum = {
        e.name: e
        for f in DESCRIPTOR.file
        if f.package == "ecommerce.orders.v1"
        for e in f.enum_type
    }
    assert SCHEMAS["ecommerce.orders.v1.OrderStatus"]["type"] == "string"
    assert SCHEMAS["ecommerce.orders.v1.OrderStatus"]["enum"] == [
        v.name for v in enum["OrderStatus"].value
    ]
    assert SCHEMAS["ecommerce.auth.v1.Role"]["enum"] == [
        "ROLE_UNSPECIFIED",
        "ROLE_CUSTOMER",
        "ROLE_ADMIN",
    ]


def test_response_schemas_require_what_the_transcoder_always_prints() -> None:
    product = SCHEMAS["ecommerce.catalog.v1.Product"]
    assert set(product["required"]) == {
        "id",
        "sku",
        "name",
        "description",
        "price_cents",
        "currency",
        "category_id",
        "stock",
        "image_urls",
        "active",
    }  # not the timestamps: messages are printed only when set
    assert product["additionalProperties"] is False
    assert properties(product)["created_at"]["format"] == "date-time"
    band = SCHEMAS["ecommerce.catalog.v1.PriceBandFacet"]
    assert "max_price_cents" not in band["required"]  # proto3 optional, absent on the top band
    assert "children" in SCHEMAS["ecommerce.catalog.v1.Category"]["required"]  # [] when empty
    assert properties(product)["id"]["readOnly"] is True  # OUTPUT_ONLY


def test_messages_used_both_ways_get_an_input_schema() -> None:
    address = SCHEMAS["ecommerce.common.v1.Address"]
    address_input = SCHEMAS["ecommerce.common.v1.AddressInput"]
    assert set(address["required"]) == {"line1", "line2", "city", "postal_code", "country"}
    assert address_input["required"] == ["line1", "city", "postal_code", "country"]
    checkout = properties(body_schema("post", "/api/orders/checkout"))
    assert "AddressInput" in json.dumps(checkout["shipping_address"])


def test_comments_become_summaries_and_descriptions() -> None:
    op = operations()[("get", "/api/products")]
    assert op["summary"].startswith("Lists active products")
    assert "`newest` first by default" in op["description"]
    assert operations()[("get", "/api/users")]["summary"] == "List users"  # no comment
    assert operations()[("post", "/api/products")]["summary"] == "Creates a product"
    sku = properties(body_schema("post", "/api/products"))["sku"]
    assert "ALREADY_EXISTS" in sku["description"]
    assert "Lowest available first" in json.dumps(
        SCHEMAS["ecommerce.catalog.v1.ListLowStockProductsResponse"]
    )


def test_security_follows_who_may_call_each_route() -> None:
    admin, user = routes(ADMIN_ROUTES), routes(USER_ROUTES)
    user_or_guest = routes(USER_OR_GUEST_ROUTES)
    for key, op in operations().items():
        if key in admin:
            assert op["security"] == [{"bearerAuth": []}, {"apiKey": []}], key
            assert "Admin only" in op["description"], key
        elif key in user:
            assert op["security"] == [{"bearerAuth": []}], key
        elif key in user_or_guest:
            assert op["security"] == [{}, {"bearerAuth": []}], key
            assert "X-Cart-Token" in {p.get("name") for p in op.get("parameters", [])}, key
        elif key in {("get", "/api/products"), ("get", "/api/products/{id}")}:
            assert op["security"] == [{}, {"bearerAuth": []}, {"apiKey": []}], key
        else:
            assert op["security"] == [], key
        if key in admin | user | user_or_guest:
            assert {"401", "403"} <= set(op["responses"]), key
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "in": "header", "name": "X-API-Key"}


def test_each_route_documents_the_errors_it_can_give() -> None:
    for (_, path), op in operations().items():
        statuses = set(op["responses"])
        if path == "/healthz":
            assert statuses == {"200", "503"}
            continue
        assert {"200", "429", "500", "503", "504"} <= statuses, path
        assert ("404" in statuses) == ("{" in path), path
        assert ("413" in statuses) == ("requestBody" in op), path
        for status, response in op["responses"].items():
            if status != "200":
                body = resolve(response)["content"]["application/json"]
                assert body["schema"] == {"$ref": "#/components/schemas/Error"}
    conflicts = {(m, p) for (m, p), op in operations().items() if "409" in op["responses"]}
    assert conflicts == {
        ("post", "/api/auth/register"),
        ("post", "/api/products"),
        ("put", "/api/products/{id}"),
        ("post", "/api/categories"),
        ("put", "/api/categories/{id}"),
        ("put", "/api/users/{id}"),
        ("post", "/api/orders/checkout"),
        ("post", "/api/orders/{id}/pay"),
        ("post", "/api/admin/orders/{id}/refund"),
    }
    assert "401" in operations()[("post", "/api/auth/login")]["responses"]
    assert "400" not in operations()[("get", "/api/categories")]["responses"]  # no input
    assert "403" in operations()[("get", "/api/products")]["responses"]  # include_inactive
    error = SCHEMAS["Error"]
    assert error["required"] == ["code", "message", "details"]
    assert error["properties"]["details"]["items"]["required"] == ["@type"]


def test_every_route_has_an_example_that_fits_its_schemas() -> None:
    for (method, path), op in operations().items():
        examples = 0
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body and "example" in body:
            examples += 1
            check = validator(body["schema"], OAS30WriteValidator)
            assert not list(check.iter_errors(body["example"])), (method, path)
        for status, response in op["responses"].items():
            for content in resolve(response).get("content", {}).values():
                if "example" in content:
                    examples += status == "200" or path == "/healthz"
                    errors = list(validator(content["schema"]).iter_errors(content["example"]))
                    assert not errors, (method, path, status, errors[:1])
        for param in op.get("parameters", []):
            assert "example" in param, (method, path, param["name"])
            assert validator(param["schema"], OAS30WriteValidator).is_valid(param["example"])
        assert examples, (method, path)
    register = operations()[("post", "/api/auth/register")]["requestBody"]["content"]
    assert register["application/json"]["example"]["email"] == "ada@example.com"
    product = operations()[("get", "/api/products/{id}")]["responses"]["200"]["content"]
    assert product["application/json"]["example"]["price_cents"] == "1250"
    uuid.UUID(product["application/json"]["example"]["id"])


def test_the_webhook_takes_a_raw_body_and_a_signature_header() -> None:
    op = operations()[("post", "/api/payments/webhook")]
    assert op["security"] == []
    assert op["parameters"][0]["name"] == "Stripe-Signature" and op["parameters"][0]["required"]
    content = op["requestBody"]["content"]
    assert list(content) == ["application/json"] and "$ref" not in content["application/json"]
    assert "google.api.HttpBody" not in SCHEMAS
    checkout = {p["name"] for p in operations()[("post", "/api/orders/checkout")]["parameters"]}
    assert checkout == {"Idempotency-Key"}


def _field(name: str, number: int, kind: Any, **options: Any) -> Field:
    return Field(name=name, number=number, type=kind, **{"label": Field.LABEL_OPTIONAL, **options})


def test_bindings_maps_nested_queries_and_empty_replies_of_a_synthetic_service() -> None:
    """What the real protos do not use yet: additional_bindings, maps, nested query fields,
    repeated query fields, google.protobuf.Empty and HttpBody replies, custom json_name."""
    proto = descriptor_pb2.FileDescriptorProto(name="shop.proto", package="ecommerce.shop.v1")
    proto.dependency.extend(["google/protobuf/empty.proto", "google/api/httpbody.proto"])
    filt = proto.message_type.add(name="Filter")
    filt.field.append(_field("color", 1, Field.TYPE_STRING))
    filt.field.append(_field("sizes", 2, Field.TYPE_INT32, label=Field.LABEL_REPEATED))
    req = proto.message_type.add(name="FindRequest")
    req.field.append(_field("shelf_id", 1, Field.TYPE_STRING))
    req.field.append(_field("filter", 2, Field.TYPE_MESSAGE, type_name=".ecommerce.shop.v1.Filter"))
    req.field.append(_field("tags", 3, Field.TYPE_STRING, label=Field.LABEL_REPEATED))
    req.field.append(_field("weight", 4, Field.TYPE_UINT64, json_name="kg"))
    entry = req.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, Field.TYPE_STRING))
    entry.field.append(_field("value", 2, Field.TYPE_INT64))
    labels = _field(
        "labels", 5, Field.TYPE_MESSAGE, type_name=".ecommerce.shop.v1.FindRequest.LabelsEntry"
    )
    labels.label = Field.LABEL_REPEATED
    req.field.append(labels)
    required = _field("note", 6, Field.TYPE_STRING)
    required.options.Extensions[field_behavior_pb2.field_behavior].append(
        field_behavior_pb2.REQUIRED
    )
    req.field.append(required)
    service = proto.service.add(name="ShopService")
    find = service.method.add(
        name="Find",
        input_type=".ecommerce.shop.v1.FindRequest",
        output_type=".google.protobuf.Empty",
    )
    rule = http_pb2.HttpRule(get="/api/shelves/{shelf_id}/things")
    rule.additional_bindings.add(post="/api/shelves/{shelf_id}/things:find", body="*")
    find.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    raw = service.method.add(
        name="Raw", input_type=".ecommerce.shop.v1.Filter", output_type=".google.api.HttpBody"
    )
    raw.options.Extensions[annotations_pb2.http].CopyFrom(http_pb2.HttpRule(get="/api/raw"))
    doc = openapi.build_document(descriptor_pb2.FileDescriptorSet(file=[proto]))
    validate_spec(doc)

    ops = operations(doc)
    get = ops[("get", "/api/shelves/{shelf_id}/things")]
    params = {p["name"]: p for p in get["parameters"]}
    assert params["shelf_id"]["in"] == "path" and params["shelf_id"]["schema"]["format"] == "uuid"
    assert params["filter.color"]["in"] == "query"
    assert params["filter.sizes"]["schema"]["type"] == "array"
    assert params["tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert params["kg"]["schema"]["format"] == "uint64"
    assert params["note"]["required"] is True
    assert "labels" not in params  # maps cannot be query parameters
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "object"}

    post = ops[("post", "/api/shelves/{shelf_id}/things:find")]
    assert post["operationId"] == "ecommerce.shop.v1.ShopService.Find_1"
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert "shelf_id" not in body["properties"] and body["required"] == ["note"]
    labels_schema = body["properties"]["labels"]["additionalProperties"]
    assert [b["type"] for b in labels_schema["oneOf"]] == ["integer", "string"]
    assert post["requestBody"]["content"]["application/json"]["example"]["note"]

    reply = ops[("get", "/api/raw")]["responses"]["200"]["content"]
    assert reply == {"*/*": {"schema": {"type": "string", "format": "binary"}}}


# --- Against the live stack: the schemas describe what Envoy really prints ---------------


@pytest.fixture(scope="module")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=10, trust_env=False) as client:
        yield client


def response_schema(method: str, template: str, status: int) -> dict[str, Any]:
    response = resolve(operations()[(method, template)]["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


async def test_real_responses_match_the_generated_schemas(api) -> None:
    checked: list[str] = []

    async def call(method: str, template: str, status: int = 200, **kwargs: Any) -> Any:
        path = template
        for name, value in kwargs.pop("path", {}).items():
            path = path.replace(f"{{{name}}}", value)
        response = await api.request(method.upper(), path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json")
        errors = list(
            validator(response_schema(method, template, status)).iter_errors(response.json())
        )
        assert not errors, (method, path, status, [e.message for e in errors[:3]], response.text)
        checked.append(f"{method.upper()} {template} {status}")
        return response.json()

    session = await call(
        "post",
        "/api/auth/register",
        json={"email": unique_email("openapi"), "password": "long enough pw", "name": "Ada"},
    )
    user = {"Authorization": f"Bearer {session['access_token']}"}
    admin_session = await call(
        "post", "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    admin = {"Authorization": f"Bearer {admin_session['access_token']}"}
    await call("get", "/api/auth/me", headers=user)
    await call("get", "/.well-known/jwks.json")
    await call("post", "/api/auth/logout", json={"refresh_token": session["refresh_token"]})
    key = await call("post", "/api/auth/api-keys", headers=admin, json={"name": "openapi test"})
    await call("get", "/api/auth/api-keys", headers={"X-API-Key": key["key"]})
    await call("get", "/api/users", headers=admin, params={"page_size": 2})
    await call("get", "/api/users/{id}", headers=admin, path={"id": session["user"]["id"]})

    root = await call(
        "post", "/api/categories", headers=admin, json={"name": "Root", "slug": f"root-{tag()}"}
    )
    await call(
        "post",
        "/api/categories",
        headers=admin,
        json={"name": "Leaf", "slug": f"leaf-{tag()}", "parent_id": root["id"]},
    )
    await call("get", "/api/categories")
    word = f"zq{tag()}"
    product = await call(
        "post",
        "/api/products",
        headers=admin,
        json={"sku": f"OA-{tag()}", "name": f"{word} mug", "price_cents": "1250", "stock": 2},
    )  # no description, no images, no category: empty values are printed
    await call("get", "/api/products/{id}", path={"id": product["id"]})
    await call("put", "/api/products/{id}", headers=admin, path={"id": product["id"]}, json={})
    await call(
        "put",
        "/api/products/{id}/stock",
        headers=admin,
        path={"id": product["id"]},
        json={"on_hand": 1, "low_stock_threshold": 5},
    )
    await call("get", "/api/inventory/low-stock", headers=admin)
    await call("get", "/api/products", params={"page_size": 1})
    await call("get", "/api/products/search", params={"q": word})  # facets, open top band
    await call("get", "/api/categories/{id}/products", path={"id": root["id"]})
    await call("delete", "/api/products/{id}", headers=admin, path={"id": product["id"]})

    # Errors, from the services and from Envoy itself.
    await call("get", "/api/products/{id}", 404, path={"id": str(uuid.uuid4())})
    await call("get", "/api/products/{id}", 400, path={"id": "not-a-uuid"})
    await call("get", "/api/auth/me", 401)
    await call("get", "/api/users", 403, headers=user)
    await call("post", "/api/auth/register", 400, content=b"{not json")
    await call("post", "/api/auth/register", 413, content=b"x" * (1024 * 1024 + 1))
    await call(
        "post",
        "/api/auth/register",
        409,
        json={"email": session["user"]["email"], "password": "long enough pw", "name": "Ada"},
    )
    print(f"{len(checked)} responses matched their schemas")
