import uuid
from datetime import UTC, datetime

import pytest
from ecom_runtime.errors import InvalidArgument
from ecom_runtime.paging import (
    decode_created_keyset,
    encode_created_keyset,
    encode_token,
    page_size,
)


def test_page_size_defaults_caps_and_refuses_negative() -> None:
    assert page_size(0) == 20
    assert page_size(7) == 7
    assert page_size(1000) == 100
    with pytest.raises(InvalidArgument) as caught:
        page_size(-1)
    assert caught.value.violations == [("page_size", "must not be negative")]


def test_keyset_token_round_trips() -> None:
    created, row_id = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), uuid.uuid4()
    assert decode_created_keyset(encode_created_keyset(created, row_id)) == (created, row_id)
    assert decode_created_keyset("") is None


@pytest.mark.parametrize(
    "token",
    ["not base64 !!", "e30", encode_token({"c": "yesterday", "i": "x"}), encode_token({"x": 1})],
)
def test_foreign_tokens_are_a_400_on_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_created_keyset(token)
    assert caught.value.violations[0][0] == "page_token"
