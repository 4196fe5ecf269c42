"""Generate the OpenAPI 3 document of the public REST API from the protos' descriptor set.

The edge serves exactly what the `google.api.http` annotations of the public services say (see
`envoy.py`), and this document describes the same routes as Envoy's transcoder speaks them:

- JSON names are the proto field names; 64-bit integers are printed as decimal strings and
  accepted as numbers or strings; enums travel by name; Timestamps are RFC 3339 strings.
- Responses print every field except unset message fields and unset proto3 `optional` fields
  (`always_print_primitive_fields`), so those are the `required` properties of a response
  schema. Requests require the fields marked `(google.api.field_behavior) = REQUIRED`.
  Objects list their fields only (`additionalProperties: false`); the transcoder also ignores
  unknown request fields and takes lowerCamelCase names, but that is not the contract.
- Path and query parameters named `id` or `*_id` are UUIDs (docs/rest-guide.md, Conventions).
- A message used in both directions gets two schemas, `<full name>` (as printed) and
  `<full name>Input` (as accepted); messages used one way only are named by full name alone.
- Errors are the API's `{code, message, details}` body. Which statuses a route documents is
  decided by `error_statuses` from the route's shape, its access level and its comments.
- Who may call what is decided in one place, `access`.

    python -m ecom_gateway.openapi            # rewrites the committed openapi.json
    python -m ecom_gateway.openapi -o -       # prints the document
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2

from ecom_gateway.envoy import (
    DESCRIPTOR_PATH,
    HEALTH_PATH,
    MAX_BODY_BYTES,
    load_descriptor,
    public_services,
)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
SERVER_URL = "http://127.0.0.1:8080"
Json = dict[str, Any]
FieldProto = descriptor_pb2.FieldDescriptorProto

# --- Who may call what -------------------------------------------------------------------


class Access(enum.Enum):
    PUBLIC = "public"
    PUBLIC_ADMIN_SEES_MORE = "public; an admin's credentials show more"
    USER_OR_GUEST = "a signed-in user, or a guest"
    USER = "signed-in user"
    ADMIN = "admin"


ADMIN_MARK = "(admin)"
# "(admin)" at the start of an RPC's comment, or of its service's comment, makes it ADMIN. Of
# the rest, these services or RPCs need a signed-in user, and these are public with extras for
# admins (inactive products). Everything else is public.
SIGNED_IN = {
    "ecommerce.auth.v1.AuthService.GetMe",
    "ecommerce.cart.v1.CartService.MergeCart",
    "ecommerce.orders.v1.OrderService",
}
# A user's cart with a Bearer token, a guest's with X-Cart-Token.
USER_OR_GUEST = {"ecommerce.cart.v1.CartService"}
ADMIN_SEES_MORE = {
    "ecommerce.catalog.v1.ProductService.ListProducts",
    "ecommerce.catalog.v1.ProductService.GetProduct",
}

SECURITY: dict[Access, list[Json]] = {
    Access.PUBLIC: [],
    Access.PUBLIC_ADMIN_SEES_MORE: [{}, {"bearerAuth": []}, {"apiKey": []}],
    Access.USER_OR_GUEST: [{}, {"bearerAuth": []}],
    Access.USER: [{"bearerAuth": []}],
    Access.ADMIN: [{"bearerAuth": []}, {"apiKey": []}],
}
ACCESS_NOTE = {
    Access.PUBLIC: "",
    Access.PUBLIC_ADMIN_SEES_MORE: "Public; with an admin's credentials it shows more.",
    Access.USER_OR_GUEST: "A signed-in user's cart (`Authorization: Bearer`), or a guest's "
    "(`X-Cart-Token`, from the answer that made the guest cart).",
    Access.USER: "Needs a signed-in user: `Authorization: Bearer <access_token>`.",
    Access.ADMIN: "Admin only: an admin's Bearer token, or an admin API key in `X-API-Key`.",
}

# --- Errors ------------------------------------------------------------------------------

# Every error body is {code, message, details}; `code` is the gRPC code behind the status.
ERROR_RESPONSES: dict[int, tuple[str, int, str]] = {
    400: ("BadRequest", 3, "Invalid input (INVALID_ARGUMENT, with google.rpc.BadRequest field "
          "violations), a refused state change (FAILED_PRECONDITION) or malformed JSON."),
    401: ("Unauthenticated", 16, "No valid credentials (UNAUTHENTICATED)."),
    403: ("PermissionDenied", 7, "Signed in, but not allowed (PERMISSION_DENIED)."),
    404: ("NotFound", 5, "No such resource (NOT_FOUND)."),
    409: ("Conflict", 6, "A unique value is taken, or an Idempotency-Key was reused with "
          "another body (ALREADY_EXISTS); or a concurrent change (ABORTED)."),
    413: ("PayloadTooLarge", 3, f"The request body is over {MAX_BODY_BYTES // 1024 // 1024} MiB."),
    429: ("TooManyRequests", 8, "Over the rate limit (RESOURCE_EXHAUSTED); retry after "
          "`Retry-After` seconds."),
    500: ("Internal", 13, "An unexpected error (INTERNAL); the body reveals nothing internal."),
    501: ("NotImplemented", 12, "Not implemented by this deployment yet (UNIMPLEMENTED)."),
    502: ("BadGateway", 14, "A service answered garbage or hung up (UNAVAILABLE)."),
    503: ("Unavailable", 14, "A service or one of its dependencies is down (UNAVAILABLE)."),
    504: ("GatewayTimeout", 4, "A service did not answer in time (DEADLINE_EXCEEDED)."),
}  # fmt: skip
ALWAYS = (429, 500, 501, 502, 503, 504)
# Statuses the comments do not spell out.
EXTRA_STATUSES: dict[str, tuple[int, ...]] = {
    "ecommerce.auth.v1.AuthService.Login": (401,),  # wrong email or password
    "ecommerce.auth.v1.AuthService.Refresh": (401,),  # spent, expired or revoked token
    "ecommerce.auth.v1.UserService.UpdateUser": (409,),  # the email is someone else's
    # An Idempotency-Key (the header below) reused with another amount.
    "ecommerce.payments.v1.PaymentService.RefundOrder": (409,),
}
# Words in a route's comments that add statuses: its RPC's comment, its request fields'
# comments and, for writes, those of the same-named fields of the resource it returns.
MENTIONS = {
    "NOT_FOUND": (404,),
    "PERMISSION_DENIED": (401, 403),
    "UNAUTHENTICATED": (401,),
}
MENTIONS_ON_WRITES = {"ALREADY_EXISTS": (409,), "unique": (409,), "Idempotency-Key": (409,)}

# --- Headers and hand-written examples ---------------------------------------------------


def _header(name: str, text: str, example: str, required: bool = False, **schema: Any) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": text,
        "schema": {"type": "string", **schema},
        "example": example,
    }


IDEMPOTENCY = "1 to 255 characters: the same key and body give the first result, once."
CART_TOKEN = _header(
    "X-Cart-Token",
    "A guest's cart token (`cart_token` of the answer that made the guest cart).",
    "ct_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
)
# Headers the transcoder passes on to an RPC as gRPC metadata.
HEADERS: dict[str, list[Json]] = {
    **{
        f"ecommerce.cart.v1.CartService.{name}": [CART_TOKEN]
        for name in ("GetCart", "AddCartItem", "UpdateCartItem", "DeleteCartItem", "ClearCart")
    },
    "ecommerce.orders.v1.OrderService.Checkout": [
        _header("Idempotency-Key", IDEMPOTENCY, "checkout-6f1c2d7e", minLength=1, maxLength=255)
    ],
    "ecommerce.orders.v1.OrderService.PayOrder": [
        _header("Idempotency-Key", IDEMPOTENCY, "pay-6f1c2d7e", minLength=1, maxLength=255)
    ],
    "ecommerce.payments.v1.PaymentService.RefundOrder": [
        _header(
            "Idempotency-Key",
            IDEMPOTENCY + " Without one, every call is a refund of its own.",
            "refund-6f1c2d7e",
            minLength=1,
            maxLength=255,
        )
    ],
    "ecommerce.payments.v1.PaymentService.HandleStripeWebhook": [
        _header(
            "Stripe-Signature",
            "Stripe's signature of the raw body (`t=<unix time>,v1=<hex>`).",
            "t=1764115200,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e1",
            required=True,
        )
    ],
}
BODY_EXAMPLES: dict[str, Any] = {
    "ecommerce.payments.v1.PaymentService.HandleStripeWebhook": {
        "id": "evt_1QbKz2",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_3QbKz2", "object": "payment_intent", "amount": 1250}},
    },
}

EXAMPLE_ID = "6f1c2d7e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"
EXAMPLE_TIME = "2026-11-25T10:00:00Z"
# Examples by field name; "Message.field" wins over "field".
STRING_EXAMPLES = {
    "email": "ada@example.com",
    "password": "correct horse battery",
    "new_password": "correct horse battery",
    "name": "Blue Mug",
    "User.name": "Ada Lovelace",
    "RegisterRequest.name": "Ada Lovelace",
    "UpdateUserRequest.name": "Ada Lovelace",
    "ApiKey.name": "Warehouse sync",
    "CreateApiKeyRequest.name": "Warehouse sync",
    "Category.name": "Kitchen",
    "CreateCategoryRequest.name": "Kitchen",
    "UpdateCategoryRequest.name": "Kitchen",
    "CategoryFacet.name": "Kitchen",
    "slug": "kitchen",
    "sku": "MUG-1",
    "description": "A 350 ml stoneware mug.",
    "currency": "USD",
    "q": "blue mug",
    "sort": "newest",
    "interval": "day",
    "content_type": "image/jpeg",
    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "refresh_token": "rt_9fKzQ2mVx7LbT0aW",
    "token": "rst_4Hq8ZpN1vC6sYe2J",
    "token_type": "Bearer",
    "page_token": "",
    "next_page_token": "",
    "key": "ek_3f9a1c5b7d2e4f60a8c1e3b5d7f9a2c4",
    "prefix": "ek_3f9a1c",
    "kid": "k1",
    "kty": "OKP",
    "crv": "Ed25519",
    "alg": "EdDSA",
    "use": "sig",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "line1": "12 St James's Square",
    "line2": "",
    "city": "London",
    "postal_code": "SW1Y 4LB",
    "country": "GB",
    "reason": "Ordered by mistake",
    "payment_intent_id": "pi_3QbKz2",
    "payment_method_id": "pm_card_visa",
    "client_secret": "pi_3QbKz2_secret_8Hx1",
    "Refund.id": "re_3QbKz3",
    "UpdateOrderStatusRequest.status": "ORDER_STATUS_FULFILLED",
    "ListAllOrdersRequest.status": "ORDER_STATUS_PAID",
    "upload_url": "http://127.0.0.1:9000/product-images/products/6f1c2d7e/1.jpg?X-Amz-Signature=…",
    "image_url": "https://cdn.example.com/products/6f1c2d7e/1.jpg",
    "image_urls": "https://cdn.example.com/products/6f1c2d7e/1.jpg",
}
INT_EXAMPLES = {
    "page_size": 20,
    "quantity": 2,
    "stock": 40,
    "on_hand": 40,
    "available": 38,
    "reserved": 2,
    "low_stock_threshold": 5,
    "limit": 10,
    "expires_in": 900,
    "total_size": 1,
}
TIME_EXAMPLES = {"from_time": "2026-11-01T00:00:00Z", "to_time": "2026-12-01T00:00:00Z"}
WKT_EXAMPLES: dict[str, Any] = {
    "google.protobuf.Duration": "1.5s",
    "google.protobuf.FieldMask": "name,price_cents",
    "google.protobuf.ListValue": [],
    "google.protobuf.Value": "any JSON",
}

# --- Proto types -------------------------------------------------------------------------

INT64 = {FieldProto.TYPE_INT64, FieldProto.TYPE_SINT64, FieldProto.TYPE_SFIXED64}
UINT64 = {FieldProto.TYPE_UINT64, FieldProto.TYPE_FIXED64}
INT32 = {FieldProto.TYPE_INT32, FieldProto.TYPE_SINT32, FieldProto.TYPE_SFIXED32}
UINT32 = {FieldProto.TYPE_UINT32, FieldProto.TYPE_FIXED32}
DECIMAL = r"^-?[0-9]+$"
INT_RANGES = {"int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1)}
INT32_RANGE = {"minimum": -(2**31), "maximum": 2**31 - 1}
UINT32_RANGE = {"minimum": 0, "maximum": 2**32 - 1}
WRAPPERS = {
    "google.protobuf.DoubleValue": FieldProto.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FieldProto.TYPE_FLOAT,
    "google.protobuf.Int64Value": FieldProto.TYPE_INT64,
    "google.protobuf.UInt64Value": FieldProto.TYPE_UINT64,
    "google.protobuf.Int32Value": FieldProto.TYPE_INT32,
    "google.protobuf.UInt32Value": FieldProto.TYPE_UINT32,
    "google.protobuf.BoolValue": FieldProto.TYPE_BOOL,
    "google.protobuf.StringValue": FieldProto.TYPE_STRING,
    "google.protobuf.BytesValue": FieldProto.TYPE_BYTES,
}
# Well-known types as their JSON mapping prints them; wrappers are added by `_wkt_schema`.
WELL_KNOWN: dict[str, Json] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
    },
}
HTTP_BODY = "google.api.HttpBody"
SCALAR_WKT = set(WRAPPERS) | {k for k, v in WELL_KNOWN.items() if v.get("type") == "string"}


class Direction(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"


@dataclass
class Rpc:
    service: str  # full name, e.g. "ecommerce.catalog.v1.ProductService"
    method: descriptor_pb2.MethodDescriptorProto

    @property
    def name(self) -> str:
        return f"{self.service}.{self.method.name}"

    @property
    def input(self) -> str:
        return self.method.input_type.lstrip(".")

    @property
    def output(self) -> str:
        return self.method.output_type.lstrip(".")


@dataclass
class Route:
    rpc: Rpc
    verb: str  # "get", "post", ...
    template: str  # as annotated, e.g. "/api/products/{id}"
    body: str  # "", "*" or a field name
    index: int = 0  # 0 for the main binding, 1.. for additional_bindings

    @property
    def path(self) -> str:  # OpenAPI path: "{id=shelves/*}" -> "{id}"
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", self.template)

    @property
    def path_fields(self) -> list[str]:
        return re.findall(r"\{([^}=]+)", self.template)


class Protos:
    """Messages, enums, services and their comments from a descriptor set, by full name."""

    def __init__(self, descriptor: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        for file in descriptor.file:
            self._index_file(file)

    def _index_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        located = {tuple(loc.path): _comment(loc) for loc in file.source_code_info.location}

        def note(name: str, path: tuple[int, ...]) -> None:
            if located.get(path):
                self.comments[name] = located[path]

        def add_enum(item: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple) -> None:
            self.enums[name] = item
            note(name, path)
            for i, value in enumerate(item.value):
                note(f"{name}.{value.name}", (*path, 2, i))

        def add_message(item: descriptor_pb2.DescriptorProto, name: str, path: tuple) -> None:
            self.messages[name] = item
            note(name, path)
            for i, one in enumerate(item.field):
                note(f"{name}.{one.name}", (*path, 2, i))
            for i, nested in enumerate(item.nested_type):
                add_message(nested, f"{name}.{nested.name}", (*path, 3, i))
            for i, nested_enum in enumerate(item.enum_type):
                add_enum(nested_enum, f"{name}.{nested_enum.name}", (*path, 4, i))

        prefix = f"{file.package}." if file.package else ""
        for i, message in enumerate(file.message_type):
            add_message(message, prefix + message.name, (4, i))
        for i, top_enum in enumerate(file.enum_type):
            add_enum(top_enum, prefix + top_enum.name, (5, i))
        for i, service in enumerate(file.service):
            self.services[prefix + service.name] = service
            note(prefix + service.name, (6, i))
            for j, method in enumerate(service.method):
                note(f"{prefix}{service.name}.{method.name}", (6, i, 2, j))

    def field_comment(self, message: str, one: FieldProto) -> str:
        return self.comments.get(f"{message}.{one.name}", "")

    def is_map(self, one: FieldProto) -> bool:
        entry = self.messages.get(one.type_name.lstrip("."))
        return entry is not None and entry.options.map_entry

    def routes(self, descriptor: descriptor_pb2.FileDescriptorSet) -> list[Route]:
        found = []
        for service in public_services(descriptor):
            for method in self.services[service.name].method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                rules = [rule, *rule.additional_bindings]
                for index, one in enumerate(rules):
                    verb, template = _pattern(one)
                    found.append(Route(Rpc(service.name, method), verb, template, one.body, index))
        return found


def _comment(location: descriptor_pb2.SourceCodeInfo.Location) -> str:
    text = location.leading_comments or location.trailing_comments
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(lines).strip()


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.lower(), rule.custom.path
    if kind is None:
        raise ValueError("an http rule without a pattern")
    return kind, getattr(rule, kind)


def _behaviors(one: FieldProto) -> list[int]:
    return list(one.options.Extensions[field_behavior_pb2.field_behavior])


def _required(one: FieldProto) -> bool:
    return field_behavior_pb2.REQUIRED in _behaviors(one)


def _output_only(one: FieldProto) -> bool:
    return field_behavior_pb2.OUTPUT_ONLY in _behaviors(one)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _query_name(one: FieldProto) -> str:
    """A custom json_name (e.g. `from` for from_time) is the documented parameter name."""
    return one.json_name if one.json_name and one.json_name != _camel(one.name) else one.name


def _humanize(method: str) -> str:
    words = re.findall(r"[A-Z][a-z0-9]*", method)
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else method


def _summary(comment: str, method: str) -> str:
    if not comment:
        return _humanize(method)
    first = comment.replace(ADMIN_MARK, "").strip().split("\n\n")[0].replace("\n", " ")
    sentence = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]
    return sentence.rstrip(".")


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _with_notes(schema: Json, description: str, read_only: bool) -> Json:
    """Adds a description (and readOnly) to a schema; a $ref gets them through allOf (3.0)."""
    extra: Json = {}
    if description:
        extra["description"] = description
    if read_only:
        extra["readOnly"] = True
    if not extra:
        return schema
    if "$ref" in schema:
        return {"allOf": [schema], **extra}
    return {**schema, **extra}


# --- Access and errors -------------------------------------------------------------------


def access(protos: Protos, rpc: Rpc) -> Access:
    """Who may call an RPC: the one place that decides (see ADMIN_MARK, SIGNED_IN, ...)."""
    for text in (protos.comments.get(rpc.name, ""), protos.comments.get(rpc.service, "")):
        if text.startswith(ADMIN_MARK):
            return Access.ADMIN
    if rpc.name in SIGNED_IN or rpc.service in SIGNED_IN:
        return Access.USER
    if rpc.service in USER_OR_GUEST:
        return Access.USER_OR_GUEST
    if rpc.name in ADMIN_SEES_MORE:
        return Access.PUBLIC_ADMIN_SEES_MORE
    return Access.PUBLIC


def _route_comments(protos: Protos, route: Route) -> str:
    rpc = route.rpc
    request = protos.messages[rpc.input]
    texts = [protos.comments.get(rpc.name, "")]
    texts += [protos.field_comment(rpc.input, one) for one in request.field]
    resource = protos.messages.get(rpc.output)
    if route.verb != "get" and resource is not None:
        asked = {one.name for one in request.field}
        texts += [protos.field_comment(rpc.output, f) for f in resource.field if f.name in asked]
    return "\n".join(texts)


def error_statuses(protos: Protos, route: Route) -> list[int]:
    """The error statuses a route documents (beyond 200)."""
    rpc = route.rpc
    statuses = set(ALWAYS)
    if protos.messages[rpc.input].field:
        statuses.add(400)  # any input can be invalid
    if route.body:
        statuses.add(413)
    if access(protos, rpc) in (Access.USER, Access.USER_OR_GUEST, Access.ADMIN):
        statuses |= {401, 403}
    if route.path_fields:
        statuses.add(404)
    comments = _route_comments(protos, route)
    mentions = MENTIONS if route.verb == "get" else MENTIONS | MENTIONS_ON_WRITES
    for word, codes in mentions.items():
        if word in comments:
            statuses.update(codes)
    statuses.update(EXTRA_STATUSES.get(rpc.name, ()))
    return sorted(statuses)


# --- Schemas and examples ----------------------------------------------------------------


@dataclass
class Builder:
    protos: Protos
    schemas: dict[str, Json] = field(default_factory=dict)
    both_ways: set[str] = field(default_factory=set)  # messages used in requests and responses

    def schema_name(self, message: str, direction: Direction) -> str:
        if direction is Direction.REQUEST and message in self.both_ways:
            return f"{message}Input"
        return message

    def message_ref(self, message: str, direction: Direction) -> Json:
        if message in WELL_KNOWN or message in WRAPPERS:
            return self._wkt_schema(message, direction)
        name = self.schema_name(message, direction)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive messages refer to themselves
            self.schemas[name] = self.message_schema(message, direction)
        return _ref(name)

    def message_schema(
        self, message: str, direction: Direction, leave_out: frozenset[str] = frozenset()
    ) -> Json:
        proto = self.protos.messages[message]
        properties: Json = {}
        required = []
        for one in proto.field:
            if one.name in leave_out:
                continue
            properties[one.name] = self.field_schema(message, one, direction)
            if direction is Direction.REQUEST and _required(one):
                required.append(one.name)
            if direction is Direction.RESPONSE and self._always_printed(one):
                required.append(one.name)
        schema: Json = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        # Responses carry exactly these fields. Requests should too: the transcoder ignores
        # unknown fields and also takes lowerCamelCase names, but neither is the contract.
        schema["additionalProperties"] = False
        return _with_notes(schema, self.protos.comments.get(message, ""), False)

    def _always_printed(self, one: FieldProto) -> bool:
        if one.label == FieldProto.LABEL_REPEATED:  # lists and maps, [] and {} when empty
            return True
        if one.proto3_optional or one.HasField("oneof_index"):
            return False  # printed only when set
        return one.type != FieldProto.TYPE_MESSAGE

    def field_schema(self, message: str, one: FieldProto, direction: Direction) -> Json:
        if self.protos.is_map(one):
            entry = self.protos.messages[one.type_name.lstrip(".")]
            schema: Json = {
                "type": "object",
                "additionalProperties": self.value_schema(entry.field[1], direction),
            }
        elif one.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": self.value_schema(one, direction)}
        else:
            schema = self.value_schema(one, direction)
        return _with_notes(schema, self.protos.field_comment(message, one), _output_only(one))

    def value_schema(self, one: FieldProto, direction: Direction) -> Json:
        """The schema of one value of a field (an item of a repeated field)."""
        if one.type == FieldProto.TYPE_MESSAGE:
            return self.message_ref(one.type_name.lstrip("."), direction)
        if one.type == FieldProto.TYPE_ENUM:
            return self.enum_ref(one.type_name.lstrip("."))
        return scalar_schema(one.type, direction)

    def enum_ref(self, name: str) -> Json:
        if name not in self.schemas:
            values = self.protos.enums[name].value
            notes = [self.protos.comments.get(name, "")]
            notes += [
                f"- `{v.name}`: {self.protos.comments[f'{name}.{v.name}']}".replace("\n", " ")
                for v in values
                if f"{name}.{v.name}" in self.protos.comments
            ]
            schema = {"type": "string", "enum": [v.name for v in values]}
            self.schemas[name] = _with_notes(schema, "\n".join(n for n in notes if n), False)
        return _ref(name)

    def _wkt_schema(self, message: str, direction: Direction) -> Json:
        if message in WRAPPERS:
            return {**scalar_schema(WRAPPERS[message], direction), "nullable": True}
        return dict(WELL_KNOWN[message])

    # Examples: a plausible value for every field, by name and type.

    def example(
        self,
        message: str,
        direction: Direction,
        leave_out: frozenset[str] = frozenset(),
        depth: int = 0,
    ) -> Json:
        proto = self.protos.messages[message]
        fields = [one for one in proto.field if one.name not in leave_out]
        if direction is Direction.REQUEST:
            fields = [one for one in fields if not _output_only(one)]
            if any(_required(one) for one in fields):
                fields = [one for one in fields if _required(one)]
        return {one.name: self.field_example(message, one, direction, depth) for one in fields}

    def field_example(self, message: str, one: FieldProto, direction: Direction, depth: int) -> Any:
        if self.protos.is_map(one):
            entry = self.protos.messages[one.type_name.lstrip(".")]
            return {"key": self.value_example(entry.name, entry.field[1], direction, depth)}
        if one.label != FieldProto.LABEL_REPEATED:
            return self.value_example(message, one, direction, depth)
        if one.type == FieldProto.TYPE_MESSAGE and depth >= 1:
            return []  # lists of lists of ... (a category tree) stop here
        return [self.value_example(message, one, direction, depth)]

    def value_example(self, message: str, one: FieldProto, direction: Direction, depth: int) -> Any:
        short = message.rsplit(".", 1)[-1]
        named = STRING_EXAMPLES.get(f"{short}.{one.name}", STRING_EXAMPLES.get(one.name))
        type_name = one.type_name.lstrip(".")
        if type_name in WRAPPERS:
            return scalar_example(WRAPPERS[type_name], one.name, named)
        if type_name == "google.protobuf.Timestamp":
            return TIME_EXAMPLES.get(one.name, EXAMPLE_TIME)
        if type_name in WELL_KNOWN or type_name == HTTP_BODY:
            return WKT_EXAMPLES.get(type_name, {})
        if one.type == FieldProto.TYPE_MESSAGE:
            return self.example(type_name, direction, depth=depth + 1)
        if one.type == FieldProto.TYPE_ENUM:
            values = self.protos.enums[type_name].value
            return named or next((v.name for v in values if v.number != 0), values[0].name)
        return scalar_example(one.type, one.name, named)


def scalar_example(kind: int, name: str, named: str | None) -> Any:
    if kind == FieldProto.TYPE_STRING:
        if named is not None:
            return named
        return EXAMPLE_ID if name == "id" or name.endswith("_id") else name.replace("_", " ")
    if kind in INT64 | UINT64:
        return "1250" if name.endswith("_cents") else "3"
    if kind in INT32 | UINT32:
        return INT_EXAMPLES.get(name, 3)
    if kind == FieldProto.TYPE_BOOL:
        return name in ("active", "in_stock")
    if kind == FieldProto.TYPE_BYTES:
        return "AAEC"
    return 1.5  # float, double


def scalar_schema(kind: int, direction: Direction) -> Json:
    """A proto scalar as the transcoder prints it (responses) or accepts it (requests)."""
    if kind in INT64 | UINT64:
        name = "int64" if kind in INT64 else "uint64"
        low, high = INT_RANGES[name]
        text = {"type": "string", "format": name, "pattern": DECIMAL}
        if direction is Direction.RESPONSE:
            return text
        number = {"type": "integer", "format": name, "minimum": low, "maximum": high}
        return {"oneOf": [number, text]}
    if kind in INT32:
        return {"type": "integer", "format": "int32", **INT32_RANGE}
    if kind in UINT32:
        return {"type": "integer", "format": "int64", **UINT32_RANGE}
    if kind in (FieldProto.TYPE_DOUBLE, FieldProto.TYPE_FLOAT):
        return {"type": "number", "format": "double" if kind == FieldProto.TYPE_DOUBLE else "float"}
    if kind == FieldProto.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldProto.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    return {"type": "string"}


# --- Operations --------------------------------------------------------------------------


def _messages_used(protos: Protos, roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in protos.messages:
            continue
        seen.add(name)
        stack += [f.type_name.lstrip(".") for f in protos.messages[name].field if f.type_name]
    return seen


def _query_parameters(
    builder: Builder, message: str, bound: set[str], prefix: str = "", depth: int = 0
) -> Iterator[Json]:
    """Fields neither in the path nor in the body, as query parameters (nested ones dotted)."""
    protos = builder.protos
    for one in protos.messages[message].field:
        if one.name in bound or _output_only(one) or protos.is_map(one):
            continue
        type_name = one.type_name.lstrip(".")
        nested = one.type == FieldProto.TYPE_MESSAGE and type_name not in SCALAR_WKT
        if nested:
            if depth < 3 and one.label != FieldProto.LABEL_REPEATED and type_name != message:
                yield from _query_parameters(
                    builder, type_name, set(), f"{prefix}{one.name}.", depth + 1
                )
            continue
        value = _parameter_schema(builder, one)
        example = builder.field_example(message, one, Direction.REQUEST, depth)
        if one.type in INT64 | UINT64:  # documented as integers in a query string
            example = [int(x) for x in example] if isinstance(example, list) else int(example)
        repeated = one.label == FieldProto.LABEL_REPEATED
        yield {
            "name": prefix + _query_name(one),
            "in": "query",
            "required": _required(one),
            "schema": {"type": "array", "items": value} if repeated else value,
            **_description(protos.field_comment(message, one)),
            "example": example,
        }


def _parameter_schema(builder: Builder, one: FieldProto) -> Json:
    """A path or query parameter's schema: 64-bit integers as integers (it is all text in a
    URL anyway), and IDs as UUIDs (docs/rest-guide.md, Conventions)."""
    schema = builder.value_schema(one, Direction.REQUEST)
    if "oneOf" in schema:
        schema = schema["oneOf"][0]
    if one.type == FieldProto.TYPE_STRING and (one.name == "id" or one.name.endswith("_id")):
        schema = {**schema, "format": "uuid"}
    return schema


def _description(text: str) -> Json:
    return {"description": text} if text else {}


def _path_parameters(builder: Builder, route: Route) -> list[Json]:
    found = []
    for name in route.path_fields:
        message, one = route.rpc.input, None
        for part in name.split("."):
            one = next(f for f in builder.protos.messages[message].field if f.name == part)
            message = one.type_name.lstrip(".") or message
        assert one is not None
        schema = _parameter_schema(builder, one)
        comment = builder.protos.field_comment(route.rpc.input, one) if "." not in name else ""
        found.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": schema,
                **_description(comment),
                "example": EXAMPLE_ID if schema.get("format") == "uuid" else "1",
            }
        )
    return found


def _request_body(builder: Builder, route: Route) -> Json | None:
    rpc, protos = route.rpc, builder.protos
    if not route.body:
        return None
    if route.body != "*":  # one field is the body, e.g. a google.api.HttpBody
        one = next(f for f in protos.messages[rpc.input].field if f.name == route.body)
        if one.type_name.lstrip(".") == HTTP_BODY:
            schema: Json = {"description": "The raw body, passed on byte for byte."}
            example = BODY_EXAMPLES.get(rpc.name, {})
        else:
            schema = builder.field_schema(rpc.input, one, Direction.REQUEST)
            example = builder.field_example(rpc.input, one, Direction.REQUEST, 0)
        return {
            "required": _required(one),
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    leave_out = frozenset(name.split(".")[0] for name in route.path_fields)
    if leave_out:
        schema = builder.message_schema(rpc.input, Direction.REQUEST, leave_out)
    else:
        schema = builder.message_ref(rpc.input, Direction.REQUEST)
    fields = [f for f in protos.messages[rpc.input].field if f.name not in leave_out]
    example = BODY_EXAMPLES.get(rpc.name) or builder.example(
        rpc.input, Direction.REQUEST, leave_out
    )
    return {
        "required": any(_required(f) for f in fields),
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _ok_response(builder: Builder, rpc: Rpc) -> Json:
    if rpc.output == HTTP_BODY:
        return {
            "description": "The raw response body.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    if rpc.output in WELL_KNOWN:  # google.protobuf.Empty and friends
        schema, example = builder.message_ref(rpc.output, Direction.RESPONSE), {}
    else:
        schema = builder.message_ref(rpc.output, Direction.RESPONSE)
        example = builder.example(rpc.output, Direction.RESPONSE)
    return {
        "description": "OK",
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def operation(builder: Builder, route: Route) -> Json:
    rpc, protos = route.rpc, builder.protos
    comment = protos.comments.get(rpc.name, "")
    level = access(protos, rpc)
    notes = [comment, ACCESS_NOTE[level], f"gRPC: `/{rpc.service}/{rpc.method.name}`."]
    path_fields = {name.split(".")[0] for name in route.path_fields}
    parameters = _path_parameters(builder, route)
    if route.body != "*":
        bound = path_fields | ({route.body} if route.body else set())
        parameters += _query_parameters(builder, rpc.input, bound)
    parameters += HEADERS.get(rpc.name, [])
    responses: Json = {"200": _ok_response(builder, rpc)}
    for status in error_statuses(protos, route):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
    op: Json = {
        "operationId": rpc.name + (f"_{route.index}" if route.index else ""),
        "tags": [rpc.service.rsplit(".", 1)[-1]],
        "summary": _summary(comment, rpc.method.name),
        "description": "\n\n".join(n for n in notes if n),
        "security": SECURITY[level],
        "responses": responses,
    }
    if parameters:
        op["parameters"] = parameters
    body = _request_body(builder, route)
    if body is not None:
        op["requestBody"] = body
    return op


def _health_operation() -> Json:
    return {
        "operationId": "healthz",
        "tags": ["Edge"],
        "summary": "Whether every service answers its gRPC health check",
        "description": "Answered by the edge itself: 200 (empty body) only when every service "
        "passes its gRPC health check, else 503.",
        "security": [],
        "responses": {
            "200": {"description": "Every service is healthy (empty body)."},
            "503": {
                "description": "At least one service is unhealthy.",
                "content": {
                    "application/json": {
                        "schema": _ref("Error"),
                        "example": {"code": 14, "message": "service unavailable", "details": []},
                    }
                },
            },
        },
    }


def _components(builder: Builder) -> Json:
    error_schema = {
        "type": "object",
        "description": "Every error: the gRPC status code and message, and google.rpc details "
        "(BadRequest field violations, ErrorInfo with a stable `reason`, ...).",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "gRPC status code"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {"@type": {"type": "string"}},
                },
            },
        },
    }
    responses: Json = {}
    for status, (name, code, description) in ERROR_RESPONSES.items():
        example: Json = {"code": code, "message": description.split(" (")[0], "details": []}
        if status == 400:
            example = {
                "code": 3,
                "message": "email: is not a valid email address",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "field_violations": [
                            {"field": "email", "description": "is not a valid email address"}
                        ],
                    }
                ],
            }
        responses[name] = {
            "description": description,
            "content": {"application/json": {"schema": _ref("Error"), "example": example}},
        }
    responses["TooManyRequests"]["headers"] = {
        name: {"schema": {"type": "integer"}, "description": text}
        for name, text in (
            ("Retry-After", "Seconds until a retry may succeed."),
            ("X-RateLimit-Limit", "Requests allowed in the window."),
            ("X-RateLimit-Remaining", "Requests left in the window."),
            ("X-RateLimit-Reset", "Seconds until the window resets."),
        )
    }
    return {
        "schemas": {"Error": error_schema, **builder.schemas},
        "responses": responses,
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from /api/auth/login, /register or /refresh.",
            },
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "An admin API key from POST /api/auth/api-keys.",
            },
        },
    }


INFO_DESCRIPTION = """\
The public REST API of the e-commerce backend, served by the Envoy edge, which transcodes it to
the services' gRPC APIs. Generated from the protos (`python -m ecom_gateway.openapi`): do not
edit by hand.

- JSON field names are the proto field names (snake_case); requests also accept lowerCamelCase.
  Fields with default values are printed.
- Money is integer minor units in `*_cents` fields beside a `currency`. 64-bit integers are
  printed as strings (`"1250"`); requests accept a number or a string.
- IDs are UUIDs, timestamps RFC 3339, enums their names (`ORDER_STATUS_PAID`).
- Users send `Authorization: Bearer <access_token>`; admin integrations `X-API-Key: <key>`.
- Errors are `{"code", "message", "details"}`: `code` is the gRPC status code.
- Lists take `page_size` (default 20, max 100) and `page_token`, and answer `next_page_token`
  (empty on the last page).
"""


def build_document(descriptor: descriptor_pb2.FileDescriptorSet) -> Json:
    protos = Protos(descriptor)
    routes = protos.routes(descriptor)
    builder = Builder(protos)
    builder.both_ways = _messages_used(protos, [r.rpc.input for r in routes]) & _messages_used(
        protos, [r.rpc.output for r in routes]
    )
    clashes = {f"{m}Input" for m in builder.both_ways} & set(protos.messages)
    if clashes:
        raise ValueError(f"schema names clash with messages: {sorted(clashes)}")
    paths: Json = {HEALTH_PATH: {"get": _health_operation()}}
    for route in routes:
        paths.setdefault(route.path, {})[route.verb] = operation(builder, route)
    services = sorted({r.rpc.service for r in routes})
    tags = [{"name": "Edge", "description": "Served by Envoy itself."}]
    tags += [
        {"name": s.rsplit(".", 1)[-1], **_description(protos.comments.get(s, ""))} for s in services
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "E-commerce backend REST API",
            "version": _version(),
            "description": INFO_DESCRIPTION,
        },
        "servers": [{"url": SERVER_URL, "description": "The local stack (`make dev`)."}],
        "tags": tags,
        "paths": paths,
        "components": _components(builder),
    }


def _version() -> str:
    try:
        return metadata.version("ecom-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "0.0.0"


def render(descriptor_path: Path | None = None) -> str:
    """The document as deterministic JSON text (sorted keys, so staleness checks work)."""
    document = build_document(load_descriptor(descriptor_path or DESCRIPTOR_PATH))
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the OpenAPI document of the REST API.")
    parser.add_argument("--descriptor", type=Path, help="descriptor set (default: the bundled one)")
    parser.add_argument(
        "-o", "--output", default=str(OPENAPI_PATH), help="file to write, or - for stdout"
    )
    args = parser.parse_args(argv)
    text = render(args.descriptor)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
