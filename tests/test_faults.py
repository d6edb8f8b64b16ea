"""Long generations and faults as the model sees them, through the real server in both protocol eras:
a slow upstream answers running then completes, a cancelled call stops waiting and not the paid job, a
follower that gives up leaves the record for get_task, a store refusing writes fails one call and not the
server. (The fault matrix itself runs in the studio tier: tests/studio/test_fault_matrix.py.)
"""

from __future__ import annotations

import anyio
import pytest
from conftest import settings_for
from mcp import Client
from support import call, imagine_requests

from mj_mcp.server import build_server

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"
TASKS = "/midjourney/tasks"

async def settle(sim, tasks: int = 0) -> None:
    """Wait until the simulator has (at least ``tasks`` tasks and) finished every task, and our
    followers stopped asking about them."""
    with anyio.fail_after(15):
        while len(sim.state.tasks) < tasks or any("finished_at" not in t for t in sim.state.tasks.values()):
            await anyio.sleep(0.02)
        seen = -1
        while seen != len(sim.state.requests(TASKS)):
            seen = len(sim.state.requests(TASKS))
            await anyio.sleep(0.1)  # followers poll every 20 ms here: 0.1 s quiet means done


async def assert_no_task_lost(client, sim) -> None:
    """Every task upstream accepted is final in the registry: get_task answers without a lookup."""
    await settle(sim)
    for task_id in sim.state.tasks:
        lookups = len(sim.state.requests(TASKS))
        result, sc, text, _ = await call(client, "get_task", ref=task_id)
        assert not result.is_error, text
        assert sc["task_id"] == task_id and sc["status"] in ("completed", "failed"), sc
        assert len(sim.state.requests(TASKS)) == lookups, f"{task_id} was not in the registry"


async def test_a_slow_upstream_beyond_the_deadline_answers_running_then_completes(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.15)  # a grid takes about 1.5 s
    result, sc, text, events = await call(client, "imagine", prompt="a quiet lake", wait_seconds=0.3)
    assert not result.is_error, text
    assert sc["status"] == "running" and sc["name"] == "quiet-lake", sc
    assert "get_task" in text and "wait_seconds" in text and events
    result, sc, text, events = await call(client, "get_task", ref="quiet-lake", wait_seconds=20)
    assert sc["status"] == "completed" and sc["task_id"] and "is ready" in text and "get_task" not in text
    assert events[-1][0] == 100
    assert len(imagine_requests(fresh_sim)) == 1
    await assert_no_task_lost(client, fresh_sim)


async def test_a_cancelled_call_stops_waiting_not_the_paid_job(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.1)
    with anyio.move_on_after(0.3) as scope:
        await client.call_tool("imagine", {"prompt": "a quiet lake"})
    assert scope.cancelled_caught
    result, sc, text, _ = await call(client, "get_task", ref="quiet-lake", wait_seconds=20)
    assert not result.is_error and sc["status"] == "completed", text
    assert len(imagine_requests(fresh_sim)) == 1
    await assert_no_task_lost(client, fresh_sim)


async def test_polling_that_gives_up_leaves_the_record_running_for_get_task(fresh_sim):
    """Past follow_limit_s the background follower stops, without marking the task failed."""
    fresh_sim.state.configure(time_scale=0.15)
    fresh_sim.state.inject(IMAGINE, "stream_cut;after_lines=1", times=1)
    settings = settings_for(fresh_sim, follow_limit_s=0.05)
    async with Client(build_server(settings)) as client:
        result, sc, text, _ = await call(client, "imagine", prompt="a quiet lake", wait_seconds=5)
        assert sc["status"] == "running", text
        await settle(fresh_sim, tasks=1)
        result, sc, text, _ = await call(client, "get_task", ref="quiet-lake")  # asks upstream again
        assert sc["status"] == "completed", text
        assert len(imagine_requests(fresh_sim)) == 1


async def test_a_store_refusing_writes_as_upstream_refuses_fails_that_call_not_the_server(fresh_sim, redis_server):
    """Upstream refuses a submit just as the store refuses writes (a real Redis): the
    follower cannot record the failure, but nothing escapes it; the server answers and goes on.
    (Redis refuses the writes through its ACL: the default user loses @write for a moment.)"""
    import redis

    redis_server.flush(20)
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    server = build_server(settings_for(fresh_sim, store=redis_server.url(20)))
    try:
        async with Client(server) as c:
            fresh_sim.state.inject(IMAGINE, "slow;delay=0.4, 400_bad_request")
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    async def first():
                        await call(c, "imagine", prompt="a refused lake")

                    tg.start_soon(first)
                    await anyio.sleep(0.2)  # the request is out; its refusal comes after writes stop
                    admin.acl_setuser("default", enabled=True, nopass=True, commands=["-@write"])
                await anyio.sleep(0.2)
                admin.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"], keys=["*"], channels=["*"])
                result, sc, text, _ = await call(c, "imagine", prompt="a quiet lake")
            assert not result.is_error and sc["status"] == "completed", text
    finally:
        admin.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"], keys=["*"], channels=["*"])
        admin.close()
