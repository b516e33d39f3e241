from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatd.backends import BACKENDS
from tests.helpers import RunningServer, running_server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(backend: str) -> Iterator[RunningServer]:
    with running_server(backend) as running:
        yield running
