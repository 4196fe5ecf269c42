"""Small helpers that collect field violations, so one response names every bad field."""

from __future__ import annotations

import uuid

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
