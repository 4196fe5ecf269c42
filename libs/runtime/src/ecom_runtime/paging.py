"""AIP-158 pagination: page_size (default 20, max 100) and opaque keyset page tokens."""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
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


# Longer than any token the API issues: the longest is a `name` sort key (200 characters,
# each at most 12 JSON bytes as a \u surrogate pair) in base64, about 3.3 KB. Checked before
# decoding, so an enormous token costs nothing.
MAX_TOKEN_LENGTH = 4096
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_NOT_OURS = "is not a token this API issued"


def foreign_token(why: str = _NOT_OURS) -> InvalidArgument:
    """The error for a page token the API did not issue (HTTP 400 naming page_token)."""
    return InvalidArgument({"page_token": why})


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a position")


def decode_token(token: str, *, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The position a token points at, or None for the first page.

    Only the shape is checked here (a JSON object with exactly `keys`); the caller types each
    value with the `position_*` helpers below before it reaches a query.
    """
    if not token:
        return None
    if (
        not isinstance(token, str)
        or len(token) > MAX_TOKEN_LENGTH
        or not _TOKEN_ALPHABET.fullmatch(token)
    ):
        raise foreign_token()
    try:
        body = token.rstrip("=")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        # NaN and Infinity are not JSON; deep nesting exhausts the parser's recursion.
        position = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError included
        raise foreign_token() from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise foreign_token()
    return position


def position_int(value: Any, *, low: int, high: int) -> int:
    """An integer key within [low, high] (a bool is not one)."""
    if type(value) is not int or not low <= value <= high:
        raise foreign_token()
    return value


def position_float(value: Any) -> float:
    """A finite number (a relevance score)."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise foreign_token()
    return float(value)


def position_str(value: Any, *, max_length: int) -> str:
    """A string a database can hold: no NUL, no lone surrogate, at most max_length long."""
    if type(value) is not str or len(value) > max_length or "\x00" in value:
        raise foreign_token()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise foreign_token() from None
    return value


def position_uuid(value: Any) -> uuid.UUID:
    """A row id, written as the API writes them (canonical lower-case UUID)."""
    if type(value) is not str or len(value) != 36:
        raise foreign_token()
    try:
        return uuid.UUID(value)
    except ValueError:
        raise foreign_token() from None


def position_timestamp(value: Any) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, as a UTC datetime."""
    if type(value) is not str or len(value) > 40:
        raise foreign_token()
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:  # tokens carry the offset; a naive one is not ours
            raise ValueError(value)
        return moment.astimezone(UTC)  # OverflowError: out of range once in UTC
    except (ValueError, OverflowError):
        raise foreign_token() from None


def position_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise foreign_token()
    return value


def encode_created_keyset(created_at: Any, row_id: Any) -> str:
    """Token for lists ordered newest first by (created_at, id): stable under inserts."""
    return encode_token({"c": created_at.isoformat(), "i": str(row_id)})


def decode_created_keyset(token: str) -> tuple[datetime, uuid.UUID] | None:
    position = decode_token(token, keys=("c", "i"))
    if position is None:
        return None
    return position_timestamp(position["c"]), position_uuid(position["i"])


@dataclass(frozen=True)
class Page:
    """One page of rows ordered newest first by (created_at, id)."""

    rows: list[Any]
    next_page_token: str
    total_size: int = 0


def created_keyset_page(rows: list[Any], limit: int, total: int = 0) -> Page:
    """`rows` were fetched with `limit + 1`: the extra row only says there is a next page."""
    if len(rows) <= limit:
        return Page(rows, "", total)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_created_keyset(last.created_at, last.id), total)
