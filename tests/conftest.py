from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from chatd.backends import BACKENDS
from tests.helpers import REDIS_SERVER, RedisServer, RunningServer, running_server
from tests.postgres import POSTGRES_MISSING, Database, PostgresCluster
from tests.redis_cluster import RedisClusterServers

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


@pytest.fixture(params=["single", "cluster"], ids=["redis", "redis-cluster"])
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer | RedisClusterServers]:
    """A fresh redis-server on a free loopback port, or a fresh three-master Redis Cluster
    (the test is skipped where redis-server is not installed)."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    if request.param == "single":
        server = RedisServer()
        try:
            server.start()
            yield server
        finally:
            server.kill()
    else:
        servers = RedisClusterServers()
        try:
            servers.start()
            yield servers
        finally:
            servers.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per test process (skipped where PostgreSQL is not installed)."""
    if POSTGRES_MISSING:
        pytest.skip(POSTGRES_MISSING)
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of a new, empty database in the test process's PostgreSQL cluster."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """Where a test keeps history and accounts: an SQLite file in ``tmp_path``, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return Database(str(tmp_path))
    return Database(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Database | None:
    """History in memory only (None), or in one of the two databases (as ``database``)."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return Database(str(tmp_path))
    return Database(request.getfixturevalue("postgres_url"))
