"""Shared fixtures: one real simulator over loopback HTTP for the whole session, at a fast time scale."""

from __future__ import annotations

import pytest

from mj_mcp.sim import SimConfig, SimServer

TOKEN = "test-token-3f9c2a7e51d04b8c"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def sim():
    """A running simulator; tests reset its state and config through ``sim.state`` as they need."""
    server = SimServer(SimConfig(tokens=[TOKEN], time_scale=0.01))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sim(sim):
    """The shared simulator, with its log, tasks, queued faults and knobs reset for this test."""
    sim.state.reset(SimConfig(tokens=[TOKEN], time_scale=0.01))
    return sim
