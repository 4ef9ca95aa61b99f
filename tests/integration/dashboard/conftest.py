"""The dashboard's browser tests: the world of ``world.py`` on a scratch schema, served by a
real ``roadledger api serve`` process, and Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from playwright.async_api import Browser

from roadledger.settings import Settings
from tests.integration.api.conftest import api_pool  # noqa: F401 - the cast's scratch schema
from tests.integration.api.ledger_support import api_settings  # noqa: F401 - log key in tmp
from tests.integration.dashboard.browser import chromium
from tests.integration.dashboard.world import World, build_world, through_the_api
from tests.support.served import served_api


@dataclass(frozen=True)
class Served:
    """The world and the URL of the API serving it."""

    world: World
    url: str


@pytest.fixture
async def served(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[Served]:  # noqa: F811
    world = await build_world(api_pool, api_settings)
    env = {"ROADLEDGER_LOG_KEY_FILE": str(api_settings.log_key_file)}
    async with served_api(api_settings, api_pool, env) as url:
        await through_the_api(url, api_pool)
        yield Served(world, url)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched
