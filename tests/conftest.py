"""Fixtures every test may use: a real PostgreSQL server, and a store on either engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store
from tests.services import PostgresCluster, find_server_bindir, scratch_database


@pytest.fixture(scope="session")
async def postgres_server() -> AsyncIterator[str]:
    """URL of a PostgreSQL server for this run: ``GATEWAY_TEST_PG_URL``, or a private cluster."""
    url = os.environ.get("GATEWAY_TEST_PG_URL")
    if url:
        yield url
        return
    bindir = find_server_bindir()
    if bindir is None:
        pytest.fail(
            "no PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin or on PATH: "
            "install the postgresql package (scripts/test does) or set GATEWAY_TEST_PG_URL"
        )
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        await cluster.ready()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
async def postgres_database(postgres_server: str) -> AsyncIterator[str]:
    """URL of a fresh, empty database, dropped after the test."""
    async with scratch_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store, once per engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def store(store_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(store_url, data_dir=tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
