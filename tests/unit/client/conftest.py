"""Fixtures for the SDK tests: a fake clock, a fake gateway, and clients wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from iwork_mc.client import AsyncClient, AsyncTopClient, Client, TopClient

from ._support import APP_KEY, SECRET, URL, FakeClock, FakeGateway


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="gateway")
def _gateway(clock: FakeClock) -> FakeGateway:
    return FakeGateway(clock)


@pytest.fixture(name="top_client")
def _top_client(gateway: FakeGateway, clock: FakeClock) -> Iterator[TopClient]:
    with TopClient(URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock) as client:
        yield client


@pytest.fixture(name="client")
def _client(gateway: FakeGateway, clock: FakeClock) -> Iterator[Client]:
    with Client(
        URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock, sleep=clock.sleep
    ) as client:
        yield client


@pytest.fixture(name="async_top_client")
async def _async_top_client(
    gateway: FakeGateway, clock: FakeClock
) -> AsyncIterator[AsyncTopClient]:
    async with AsyncTopClient(
        URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock
    ) as client:
        yield client


@pytest.fixture(name="async_client")
async def _async_client(gateway: FakeGateway, clock: FakeClock) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        URL, APP_KEY, SECRET, transport=gateway.transport(), clock=clock, sleep=clock.asleep
    ) as client:
        yield client
