"""Crafted page tokens are a 400 on page_token in every decoder, never a 500.

Table-driven: every decoder (auth's created keyset, the catalog's PostgreSQL and Elasticsearch
keysets, low stock) gets every malformed token (bad base64, not UTF-8, not an object, deep
nesting, NaN, enormous) and, key by key, every value of the wrong type or out of range. None of
these needs a server: decoding happens before any query.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from catalog_service.inventory import _decode_low_stock_token
from catalog_service.search_elasticsearch import decode_page_token
from catalog_service.search_postgres import _position_values
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.paging import (
    MAX_TOKEN_LENGTH,
    decode_created_keyset,
    decode_token,
    encode_created_keyset,
    encode_token,
)

ID = "0b0f2c55-8a0e-4b6e-9d39-0f6a9e4c1d2a"
WHEN = "2026-01-02T03:04:05.000006+00:00"
SORTS = ("relevance", "newest", "price_asc", "price_desc", "name")


def raw_token(data: bytes) -> str:
    """A token spelled like the API's (base64url, no padding) around any bytes at all."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# --- the decoders under test, one signature: token -> position -----------------------------


def postgres(sort: str) -> Callable[[str], Any]:
    return lambda token: _position_values(decode_token(token, keys=("s", "k", "f")), sort)


def elasticsearch(sort: str) -> Callable[[str], Any]:
    return lambda token: decode_page_token(token, sort)


DECODERS: dict[str, Callable[[str], Any]] = {
    "created_keyset": decode_created_keyset,
    "low_stock": _decode_low_stock_token,
    **{f"postgres_{sort}": postgres(sort) for sort in SORTS},
    **{f"elasticsearch_{sort}": elasticsearch(sort) for sort in SORTS},
}


def refused(decode: Callable[[str], Any], token: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        decode(token)
    assert [field for field, _ in caught.value.violations] == ["page_token"]
    return caught.value


# --- tokens that are not even a position ---------------------------------------------------

MALFORMED: dict[str, str] = {
    "not base64": "not base64 !!",
    "base64 with +/": "ab+/cd",
    "padding inside": "e3=0",
    "one char short": "a",
    "only padding": "==",
    "non-ascii": "€uro",
    "percent-encoded": "eyJ%3D",
    "not utf-8": raw_token(b"\xff\xfe\xfd{}"),
    "utf-16 json": raw_token('{"c":1}'.encode("utf-16")),
    "utf-8 bom": raw_token(b'\xef\xbb\xbf{"c":"x","i":"y"}'),
    "truncated json": raw_token(b'{"c":"2026'),
    "empty json": raw_token(b" "),
    "json array": raw_token(b'["2026-01-02T03:04:05+00:00","x"]'),
    "json string": raw_token(b'"eyJ4IjoxfQ"'),
    "json number": raw_token(b"12"),
    "json null": raw_token(b"null"),
    "json true": raw_token(b"true"),
    "NaN": raw_token(b"NaN"),
    "Infinity": raw_token(b"-Infinity"),
    "empty object": raw_token(b"{}"),
    "object, wrong keys": encode_token({"x": 1, "y": 2}),
    "huge int": raw_token(b"9" * 2_500),
    "more digits than int() takes": raw_token(b"9" * 4_400),
    # Under the length cap, yet json.loads raises RecursionError (not a ValueError).
    "nested 1,500 arrays": raw_token(b"[" * 1_500 + b"]" * 1_500),
    "nested arrays in a key": raw_token(b'{"c":' + b"[" * 1_400 + b"]" * 1_400 + b',"i":"x"}'),
    "nested 10,000 arrays": raw_token(b"[" * 10_000 + b"]" * 10_000),
    "nested 10,000 objects": raw_token(b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    "just over the cap": "A" * (MAX_TOKEN_LENGTH + 4),
    "a megabyte": "A" * 1_000_000,
}


def test_the_nesting_cases_reach_the_parser_and_overflow_it() -> None:
    for name in ("nested 1,500 arrays", "nested arrays in a key"):
        token = MALFORMED[name]
        assert len(token) <= MAX_TOKEN_LENGTH
        with pytest.raises(RecursionError):
            json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_tokens_are_refused(decoder: str, token: str) -> None:
    refused(DECODERS[decoder], token)


# --- objects of the right shape with values of the wrong type ------------------------------

DEEP = nested(500)  # parses, but is no key of any token
NAN, INF = float("nan"), float("inf")
# Each list holds values that are not of the named type; JSON numbers, strings, containers.
NOT_STRINGS: list[Any] = [0, 1, -1, 1.5, 10**30, True, False, None, [], ["x"], {}]
NOT_STRINGS += [{"x": 1}, NAN, INF, -INF, DEEP]
NOT_INTS: list[Any] = [1.5, 1.0, -0.0, "1", "", True, False, None, [], [1], {}, {"a": 1}]
NOT_INTS += [NAN, INF, -INF, DEEP]
NOT_FLOATS: list[Any] = ["1.5", "", "NaN", True, False, None, [], [1.0], {}, NAN, INF, -INF, DEEP]
NOT_BOOLS: list[Any] = [0, 1, "true", "", None, [], [True], {}, NAN, DEEP]
BAD_STRINGS: list[Any] = ["\x00", "a\x00b", "\ud800", "x\udfff"]  # no database takes these
BAD_IDS = [*NOT_STRINGS, *BAD_STRINGS, "", "x", "not-a-uuid", "0" * 36, ID + "0", ID[:-1]]
BAD_IDS += [uuid.UUID(ID).hex, "{" + ID + "}", f"urn:uuid:{ID}", ID.replace("-", "x")]
BAD_TIMES = [*NOT_STRINGS, *BAD_STRINGS, "", "yesterday", "2026-01-02T03:04:05"]  # naive
BAD_TIMES += ["2026-01-02", "2026-13-01T00:00:00+00:00", "2026-01-02T03:04:05+25:00"]
BAD_TIMES += ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", WHEN + " " * 50]
BAD_PRICES = [*NOT_INTS, -1, 2**63, -(2**63) - 1, 10**30]
BAD_AVAILABLE = [*NOT_INTS, -1, 2**31, 2**63]
BAD_NAMES = [*NOT_STRINGS, *BAD_STRINGS, "x" * 1_001]

GOOD_KEY: dict[str, Any] = {
    "relevance": 0.0607927,
    "newest": WHEN,
    "price_asc": 1250,
    "price_desc": 1250,
    "name": "blue mug",
}
BAD_KEY: dict[str, list[Any]] = {
    "relevance": NOT_FLOATS,
    "newest": BAD_TIMES,
    "price_asc": BAD_PRICES,
    "price_desc": BAD_PRICES,
    "name": BAD_NAMES,
}
# Elasticsearch's own sort values: dates are epoch milliseconds, ids any keyword.
ES_GOOD_KEY = {**GOOD_KEY, "newest": 1_767_323_045_000}
ES_BAD_KEY = {**BAD_KEY, "newest": [*NOT_INTS, 2**63, -(2**63) - 1]}
ES_BAD_PRICE = [*NOT_INTS, 2**63, 10**30]
ES_BAD_KEY["price_asc"] = ES_BAD_KEY["price_desc"] = ES_BAD_PRICE
ES_BAD_IDS = [*NOT_STRINGS, *BAD_STRINGS, "x" * 65]


def cases() -> list[Any]:
    """(decoder, token) pairs: a valid position with exactly one value spoilt."""
    out: list[Any] = []

    def add(decoder: str, what: str, position: dict[str, Any]) -> None:
        token = encode_token(position)
        out.append(pytest.param(decoder, token, id=f"{decoder}-{what}"))

    for i, bad in enumerate(BAD_TIMES):
        add("created_keyset", f"c{i}", {"c": bad, "i": ID})
    for i, bad in enumerate(BAD_IDS):
        add("created_keyset", f"i{i}", {"c": WHEN, "i": bad})
    for i, bad in enumerate(BAD_AVAILABLE):
        add("low_stock", f"a{i}", {"a": bad, "i": ID})
    for i, bad in enumerate(BAD_IDS):
        add("low_stock", f"i{i}", {"a": 3, "i": bad})
    for sort in SORTS:
        pg, es = f"postgres_{sort}", f"elasticsearch_{sort}"
        for i, bad in enumerate(BAD_KEY[sort]):
            add(pg, f"k0-{i}", {"s": sort, "k": [bad, ID], "f": False})
        for i, bad in enumerate(BAD_IDS):
            add(pg, f"k1-{i}", {"s": sort, "k": [GOOD_KEY[sort], bad], "f": False})
        for i, bad in enumerate(NOT_BOOLS):
            add(pg, f"f{i}", {"s": sort, "k": [GOOD_KEY[sort], ID], "f": bad})
        for i, bad in enumerate([*NOT_STRINGS, "", "NEWEST", "newest "]):
            add(pg, f"s{i}", {"s": bad, "k": [GOOD_KEY[sort], ID], "f": False})
            add(es, f"s{i}", {"s": bad, "k": [ES_GOOD_KEY[sort], ID]})
        for i, bad in enumerate([None, "x", 1, {}, [], [ID], [GOOD_KEY[sort], ID, ID], DEEP]):
            add(pg, f"k{i}", {"s": sort, "k": bad, "f": False})
            add(es, f"k{i}", {"s": sort, "k": bad})
        for i, bad in enumerate(ES_BAD_KEY[sort]):
            add(es, f"k0-{i}", {"s": sort, "k": [bad, ID]})
        for i, bad in enumerate(ES_BAD_IDS):
            add(es, f"k1-{i}", {"s": sort, "k": [ES_GOOD_KEY[sort], bad]})
    return out


@pytest.mark.parametrize(("decoder", "token"), cases())
def test_wrongly_typed_values_are_refused(decoder: str, token: str) -> None:
    refused(DECODERS[decoder], token)


def test_numbers_too_large_for_a_float_are_refused() -> None:
    # 1e999 is valid JSON that Python reads as inf (no NaN/Infinity literal needed).
    for sort in ("relevance", "price_asc", "newest"):
        big = raw_token(f'{{"s":"{sort}","k":[1e999,"{ID}"],"f":false}}'.encode())
        refused(postgres(sort), big)
        refused(elasticsearch(sort), raw_token(f'{{"s":"{sort}","k":[-1e999,"{ID}"]}}'.encode()))
    refused(_decode_low_stock_token, raw_token(f'{{"a":1e999,"i":"{ID}"}}'.encode()))


# --- tokens of another list or another sort ------------------------------------------------

OTHER_SORT = {
    "relevance": "name",
    "newest": "price_asc",
    "price_asc": "newest",
    "price_desc": "price_asc",
    "name": "relevance",
}


@pytest.mark.parametrize("sort", SORTS)
def test_a_token_of_another_sort_is_refused(sort: str) -> None:
    other = OTHER_SORT[sort]
    # Well-formed for the sort it came from, so only the sort itself gives it away.
    token = encode_token({"s": other, "k": [GOOD_KEY[other], ID], "f": False})
    error = refused(postgres(sort), token)
    assert "sort" in error.message
    refused(elasticsearch(sort), encode_token({"s": other, "k": [ES_GOOD_KEY[other], ID]}))


def test_a_token_of_another_list_is_refused() -> None:
    search = encode_token({"s": "newest", "k": [WHEN, ID], "f": False})
    low = encode_token({"a": 3, "i": ID})
    keyset = encode_created_keyset(datetime.now(UTC), uuid.UUID(ID))
    for decoder, token in [
        ("created_keyset", search),
        ("created_keyset", low),
        ("low_stock", keyset),
        ("low_stock", search),
        ("postgres_newest", keyset),
        ("postgres_newest", low),
        ("elasticsearch_newest", search),  # the fuzzy flag is PostgreSQL's only
        ("elasticsearch_newest", keyset),
    ]:
        refused(DECODERS[decoder], token)


# --- what the API itself issues still decodes ----------------------------------------------


def test_issued_tokens_still_decode_to_typed_values() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    at, row = decode_created_keyset(encode_created_keyset(created, uuid.UUID(ID)))  # type: ignore[misc]
    assert (at, row) == (created, uuid.UUID(ID)) and at.utcoffset() == timedelta(0)

    assert _decode_low_stock_token(encode_token({"a": 0, "i": ID})) == (0, uuid.UUID(ID))

    expected = {
        "relevance": 0.0607927,
        "newest": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        "price_asc": 1250,
        "price_desc": 1250,
        "name": "blue mug",
    }
    for sort in SORTS:
        for fuzzy in (False, True):
            token = encode_token({"s": sort, "k": [GOOD_KEY[sort], ID], "f": fuzzy})
            assert postgres(sort)(token) == [expected[sort], uuid.UUID(ID)]
        token = encode_token({"s": sort, "k": [ES_GOOD_KEY[sort], ID]})
        assert elasticsearch(sort)(token) == [ES_GOOD_KEY[sort], ID]
    # Tokens issued before the timestamp was written with isoformat() (str() has a space).
    old = encode_token({"s": "newest", "k": ["2026-01-02 03:04:05.000006+00:00", ID], "f": False})
    assert postgres("newest")(old) == [expected["newest"], uuid.UUID(ID)]
    top = encode_token({"s": "price_asc", "k": [2**63 - 1, ID], "f": False})
    assert postgres("price_asc")(top) == [2**63 - 1, uuid.UUID(ID)]


def test_the_longest_token_the_api_issues_is_under_the_cap() -> None:
    """A 200-character name of astral characters: 12 JSON bytes each, as \\u surrogate pairs."""
    name = "\U0001f375" * 200
    token = encode_token({"s": "name", "k": [name, ID], "f": True})
    assert len(token) <= MAX_TOKEN_LENGTH
    assert postgres("name")(token) == [name, uuid.UUID(ID)]
    assert elasticsearch("name")(encode_token({"s": "name", "k": [name, ID]})) == [name, ID]


def test_padding_is_tolerated() -> None:
    token = encode_token({"a": 3, "i": ID})
    padded = token + "=" * (-len(token) % 4)
    assert _decode_low_stock_token(padded) == (3, uuid.UUID(ID))


def test_an_empty_token_is_the_first_page() -> None:
    for decoder in DECODERS.values():
        assert decoder("") is None
    assert json.loads(base64.urlsafe_b64decode(encode_token({"a": 1}) + "=="))["a"] == 1
