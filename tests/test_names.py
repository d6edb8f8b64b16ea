"""Concurrent calls all get names: an agent fanning out variations sends many ``imagine`` calls at once
with similar prompts, and every one is named (``fox-snow``, ``fox-snow-2``, ...), each name once, on
the default SQLite store and on Redis, through a real MCP client over stdio. A name the caller asks
for is still refused when taken, however many ask at once."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import SERVER, imagine_requests, server_env

from mj_mcp.core import naming

pytestmark = pytest.mark.anyio
REDIS_DB = 9  # this module's database on the session's redis-server
AT_ONCE = 48


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("redis_server")
    server.flush(REDIS_DB)
    return server.url(REDIS_DB)


async def test_many_unnamed_calls_at_once_over_stdio_all_get_distinct_names(fresh_sim, store_url):
    params = StdioServerParameters(
        command=SERVER[0], args=SERVER[1:], env=server_env(fresh_sim, MJ_MCP_STORE=store_url)
    )
    names: list[str] = []
    refused: list[str] = []
    async with Client(params) as c:

        async def one(i: int) -> None:
            # Similar prompts: the same words, so the same base name; only the seed differs.
            r = await c.call_tool("imagine", {"prompt": f"a red fox in the snow --seed {i}", "wait_seconds": 0})
            if r.is_error:
                refused.append(r.content[0].text)
            else:
                names.append(r.structured_content["name"])

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(AT_ONCE):
                    tg.start_soon(one, i)
        assert refused == [], f"{len(refused)} of {AT_ONCE} refused: {refused[:3]}"
        # Every name once, and they are the base's first candidates: no gaps, nothing odd.
        assert sorted(names) == sorted(_first(naming.candidates("fox-snow"), AT_ONCE))
        # A requested name taken: refused, many times at once; one submit per named call only.
        taken: list[bool] = []

        async def ask(i: int) -> None:
            r = await c.call_tool("imagine", {"prompt": f"an owl {i}", "name": "fox-snow-2", "wait_seconds": 0})
            taken.append(bool(r.is_error) and "taken" in r.content[0].text)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(ask, i)
        assert taken == [True] * 8
        listed = await c.call_tool("list_images", {"limit": 100})
        assert sorted(i["name"] for i in listed.structured_content["images"]) == sorted(names)
    assert len(imagine_requests(fresh_sim)) == AT_ONCE


def _first(candidates, n: int) -> list[str]:
    return [name for name, _ in zip(candidates, range(n), strict=False)]
