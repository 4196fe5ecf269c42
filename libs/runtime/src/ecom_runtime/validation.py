"""Small helpers that collect field violations, so one response names every bad field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ecom_runtime.errors import InvalidArgument


class Violations:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, why: str) -> None:
        self.items.append((field, why))

    def require(self, field: str, value: str) -> None:
        if not value or not value.strip():
            self.add(field, "is required")

    def check_length(self, field: str, value: str, low: int, high: int) -> None:
        size = len(value.strip())
        if not value.strip():
            self.add(field, "is required")
        elif size < low or size > high:
            self.add(field, f"must be {low} to {high} characters")

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def parse_uuid(field: str, value: str) -> uuid.UUID:
    """A path or body id; a malformed one is a 400 naming the field, not a 404 or a 500."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument({field: "must be a UUID"}) from None


def reject_nul(message: Message) -> None:
    """A NUL character in any string field (nested, repeated, map) is a 400 naming the field.

    PostgreSQL cannot store NUL in text, and no name, email or SKU needs one.
    """
    # A message without a single zero byte in its encoding has no NUL in its strings: the
    # walk below is for the few requests that do.
    if b"\x00" not in message.SerializeToString():
        return
    found = list(_nul_fields(message, ""))
    if found:
        raise InvalidArgument([(name, "must not contain the NUL character") for name in found])


def _nul_fields(message: Message, prefix: str) -> Iterator[str]:
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    yield f"{name}[{key!r}]"
                if isinstance(item, str) and "\x00" in item:
                    yield f"{name}[{key!r}]"
                elif isinstance(item, Message):
                    yield from _nul_fields(item, f"{name}[{key!r}].")
        elif field.type == FieldDescriptor.TYPE_STRING:
            items = value if field.is_repeated else [value]
            for i, text in enumerate(items):
                if "\x00" in text:
                    yield f"{name}[{i}]" if field.is_repeated else name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for i, item in enumerate(value):
                    yield from _nul_fields(item, f"{name}[{i}].")
            else:
                yield from _nul_fields(value, f"{name}.")
