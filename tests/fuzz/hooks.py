"""Schemathesis hooks for the generated OpenAPI document (loaded through SCHEMATHESIS_HOOKS).

- 64-bit integers travel as decimal strings (`{type: string, format: int64}`); without a
  strategy for the format schemathesis would fill them with any text, which the edge rightly
  refuses, and never reach the services.
- `FUZZ_KEEP_IDS` (comma-separated) are ids the fuzzer must never put in a path: the test
  admin's own user id, so that `PUT`/`DELETE /api/users/{id}` cannot rename, demote or delete
  the account other tests sign in with, even when the fuzzer has learnt the id from a response.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("int64", st.integers(-(2**63), 2**63 - 1).map(str))
schemathesis.openapi.format("uint64", st.integers(0, 2**64 - 1).map(str))

KEEP_IDS = {value for value in os.environ.get("FUZZ_KEEP_IDS", "").split(",") if value}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    for name, value in (case.path_parameters or {}).items():
        if str(value).lower() in KEEP_IDS:
            case.path_parameters[name] = str(uuid.uuid4())
