import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ecom_stack.pytest_plugin import stack  # noqa: F401 (the fixture under test)


@pytest.fixture(scope="session")
def stack_options() -> dict[str, Any]:
    # The services and the gateway config are written elsewhere: test the infrastructure.
    return {"services": [], "edge": False}


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Directly under the temp dir, not tmp_path: PostgreSQL runs as `nobody` when we are
    # root and must traverse it.
    path = Path(tempfile.mkdtemp(prefix="ecom-stack-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
