"""The studio tier: the product's rules through ``Studio.open`` against the simulator over loopback,
with no MCP server or client in the way (the adapters have their own tests, one per protocol era)."""

from __future__ import annotations

import pytest
from conftest import settings_for

from mj_mcp.studio import Call, Studio


class Progress:
    """What a call reported: (job name, figure out of 100, message), in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, str]] = []

    async def __call__(self, name: str, progress: float, message: str) -> None:
        self.events.append((name, progress, message))

    @property
    def values(self) -> list[float]:
        return [p for _, p, _ in self.events]


@pytest.fixture
async def studio(fresh_sim):
    async with Studio.open(settings_for(fresh_sim)) as s:
        yield s


@pytest.fixture
def progress() -> Progress:
    return Progress()


@pytest.fixture
def call(studio, progress) -> Call:
    """A call in the local user's workspace, its progress recorded."""
    c = studio.call()
    c.progress = progress
    return c
