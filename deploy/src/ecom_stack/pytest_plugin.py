"""pytest plugin: one ephemeral local stack per test session, on free ports.

Enable it in the root `conftest.py`:

    pytest_plugins = ["ecom_stack.pytest_plugin"]

then request the `stack` fixture (a started `LocalStack`: `stack.database_url`,
`stack.service_env()`, ...). To run a subset, override `stack_options` in a conftest:

    @pytest.fixture(scope="session")
    def stack_options() -> dict[str, object]:
        return {"services": ["auth"], "edge": False}

The state dir (logs included) is removed at the end unless a test failed or the
stack did not start; then its path
is printed so the logs can be read.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecom_stack.stack import LocalStack


@pytest.fixture(scope="session")
def stack_options() -> dict[str, Any]:
    """Keyword arguments for `LocalStack` (besides the state dir, ports and ephemerality)."""
    return {}


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, stack_options: dict[str, Any]) -> Iterator[LocalStack]:
    # Not tmp_path_factory: its folders are 0700 under a root-only parent, which PostgreSQL
    # (run as `nobody` when we are root) could not traverse.
    state_dir = Path(tempfile.mkdtemp(prefix="ecom-stack-"))
    local = LocalStack(state_dir, free_ports=True, ephemeral=True, **stack_options)
    started = False
    try:
        local.start()
        started = True
        yield local
    finally:
        local.stop()
        if request.session.testsfailed or not started:
            print(f"\nlocal stack state and logs kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
