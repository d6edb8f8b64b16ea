"""Shared fixtures: one real simulator over loopback HTTP for the whole session, at a fast time scale."""

from __future__ import annotations

import logging
import os
import tempfile

import mcp.client.stdio  # noqa: F401  (binds its default errlog=sys.stderr now, not to one test's capture)
import pytest

from mj_mcp.sim import SimConfig, SimServer

TOKEN = "test-token-3f9c2a7e51d04b8c"

# Whatever a test starts, the user's own data, cache and pictures folders are never touched: the
# platform's user dirs resolve inside a temporary home for the whole run.
_HOME = tempfile.mkdtemp(prefix="mj-mcp-tests-")
for _var, _sub in (("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"), ("XDG_CONFIG_HOME", "config")):
    os.environ[_var] = os.path.join(_HOME, _sub)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def no_token_in_any_output_or_log(caplog, capfd):
    """The scan of the whole suite: no test may see the token in a log record (ours at DEBUG) or in
    anything written to stdout or stderr, its own subprocesses' included."""
    caplog.set_level(logging.DEBUG, logger="mj_mcp")
    yield
    out, err = capfd.readouterr()
    assert TOKEN not in caplog.text, "the token reached a log record"
    assert TOKEN not in out + err, "the token reached stdout or stderr"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir_for_the_session(tmp_path_factory):
    """Servers started by tests (in process or as subprocesses) cache images in a temporary
    directory, never in the real user cache dir."""
    base = tmp_path_factory.mktemp("image-cache")
    os.environ["MJ_MCP_CACHE_DIR"] = str(base / "env")
    os.environ["MJ_MCP_STORE"] = "memory"  # subprocess servers: never the user's own store
    os.environ["MJ_MCP_EXPORT_DIR"] = str(base / "exports")
    yield base
    for name in ("MJ_MCP_CACHE_DIR", "MJ_MCP_STORE", "MJ_MCP_EXPORT_DIR"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def sim():
    """A running simulator; tests reset its state and config through ``sim.state`` as they need."""
    server = SimServer(SimConfig(tokens=[TOKEN], time_scale=0.01))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session (``support.RedisServer``): tests take a database each."""
    from support import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def fresh_sim(sim):
    """The shared simulator, with its log, tasks, queued faults and knobs reset for this test."""
    sim.state.reset(SimConfig(tokens=[TOKEN], time_scale=0.01))
    return sim


def settings_for(sim, **overrides):
    """Server settings pointing at the test simulator, with fast heartbeats and back-offs."""
    from pydantic import SecretStr

    from mj_mcp.settings import Settings

    # Previews off unless a test asks: a thumbnail means the simulator drawing a 2048 px PNG (~0.1 s of CPU).
    values = dict(
        api_token=SecretStr(TOKEN),
        base_url=sim.base_url,
        simulate=True,
        heartbeat_s=0.05,
        preview_px=None,
        retry_backoff_s=0.01,
        poll_interval_s=0.02,
        timeout_s=20.0,
        log_level="WARNING",
        store="memory",
        export_dir=os.environ["MJ_MCP_EXPORT_DIR"],
        cache_dir=tempfile.mkdtemp(prefix="server-", dir=os.path.dirname(os.environ["MJ_MCP_CACHE_DIR"])),
    )
    # Overrides skip validation: tests shrink limits (a follow limit of 50 ms) below what a user may set.
    return Settings(**values).model_copy(update=overrides)


@pytest.fixture(params=["auto", "legacy"])
async def client(request, fresh_sim):
    """An SDK client on the real server in memory, in both protocol eras (2026-07-28 and 2025-11-25)."""
    from mcp import Client

    from mj_mcp.server import build_server

    async with Client(build_server(settings_for(fresh_sim)), mode=request.param) as c:
        yield c


# xdist hands whole modules to workers (--dist loadscope) in collection order (--no-loadscope-reorder):
# the longest start first, so that the short ones fill the gaps at the end instead of one long module
# running alone there (mypy, 12 s of one core, was that one).
START_FIRST = [
    "test_typing.py",
    "test_replicas.py",
    "test_restart.py",
    "test_view.py",
    "test_sim_security.py",
    "test_fault_matrix.py",
    "test_faults.py",
    "test_transports.py",
    "test_tools.py",
    "test_images.py",
    "test_sim.py",
]


def pytest_collection_modifyitems(items):
    def rank(item):
        return START_FIRST.index(item.path.name) if item.path.name in START_FIRST else len(START_FIRST)

    items.sort(key=rank)  # stable: the order within a module stays
