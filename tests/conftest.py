from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from chatd.backends import BACKENDS
from tests.helpers import REDIS_SERVER, RedisServer, RunningServer, running_server

# Property tests judge what the code does, not how fast a loaded 2-core machine runs it.
settings.register_profile("chatd", deadline=None)
settings.load_profile("chatd")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(backend: str) -> Iterator[RunningServer]:
    with running_server(backend) as running:
        yield running


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port (the test is skipped where there is none)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
