"""AIP-158 pagination: page_size (default 20, max 100) and opaque keyset page tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

from ecom_runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument({"page_size": "must not be negative"})
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)  # AIP-158: larger values are coerced to the maximum


def encode_token(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, *, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The position a token points at, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = json.loads(raw)
    except ValueError:
        raise InvalidArgument({"page_token": "is not a token this API issued"}) from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise InvalidArgument({"page_token": "is not a token this API issued"})
    return position


def encode_created_keyset(created_at: Any, row_id: Any) -> str:
    """Token for lists ordered newest first by (created_at, id): stable under inserts."""
    return encode_token({"c": created_at.isoformat(), "i": str(row_id)})


def decode_created_keyset(token: str) -> tuple[Any, Any] | None:
    import uuid
    from datetime import datetime

    position = decode_token(token, keys=("c", "i"))
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except (TypeError, ValueError):
        raise InvalidArgument({"page_token": "is not a token this API issued"}) from None
