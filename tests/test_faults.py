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
from support import PATIENCE, call, eventually, imagine_requests

from mj_mcp.server import build_server

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"
TASKS = "/midjourney/tasks"


async def settle(sim, client=None, tasks: int = 0) -> None:
    """Wait until the simulator has (at least ``tasks`` tasks and) finished every task and, given the
    client, until each of its records is final: a follower's last look upstream comes before that.
    (It used to wait for 0.1 s without a look, as long as a follower's poll interval grows to.)"""

    def finished():
        tasks_now = sim.state.tasks.values()
        return len(tasks_now) >= tasks and all("finished_at" in t for t in tasks_now)

    await eventually(finished, "the simulator to finish its tasks")
    if client is not None:

        async def all_final():
            # list_images reads the registry only, never upstream
            _, listing, _, _ = await call(client, "list_images", limit=200)
            return all(i["status"] != "running" for i in listing["images"])

        await eventually(all_final, "every record to be final")


async def assert_no_task_lost(client, sim) -> None:
    """Every task upstream accepted is final in the registry: get_task answers without a lookup."""
    await settle(sim, client)
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
    result, sc, text, events = await call(client, "get_task", ref="quiet-lake", wait_seconds=PATIENCE)
    assert sc["status"] == "completed" and sc["task_id"] and "is ready" in text and "get_task" not in text
    assert events[-1][0] == 100
    assert len(imagine_requests(fresh_sim)) == 1
    await assert_no_task_lost(client, fresh_sim)


async def test_a_cancelled_call_stops_waiting_not_the_paid_job(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.1)  # a grid takes 1.1 s after its submit
    answered = []
    async with anyio.create_task_group() as tg:

        async def the_call():
            answered.append(await client.call_tool("imagine", {"prompt": "a quiet lake"}))

        tg.start_soon(the_call)
        # cancelled once the job is paid for (its submit reached upstream), not at a fixed moment
        await eventually(lambda: imagine_requests(fresh_sim), "the submit to reach the simulator")
        tg.cancel_scope.cancel()
    assert answered == []
    result, sc, text, _ = await call(client, "get_task", ref="quiet-lake", wait_seconds=PATIENCE)
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
        await settle(fresh_sim, tasks=1)  # the record stays running: its follower gave up
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
            fresh_sim.state.inject(IMAGINE, "slow;delay=2, 400_bad_request")  # refused 2 s after it arrives
            with anyio.fail_after(PATIENCE):
                async with anyio.create_task_group() as tg:

                    async def first():
                        await call(c, "imagine", prompt="a refused lake")

                    tg.start_soon(first)
                    # The request is out (its name and lease are written); writes stop before its refusal.
                    await eventually(lambda: imagine_requests(fresh_sim), "the submit to reach the simulator")
                    admin.acl_setuser("default", enabled=True, nopass=True, commands=["-@write"])
                # The call answered: the follower tried to record the refusal, and could not.
                admin.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"], keys=["*"], channels=["*"])
                result, sc, text, _ = await call(c, "imagine", prompt="a quiet lake")
            assert not result.is_error and sc["status"] == "completed", text
    finally:
        admin.acl_setuser("default", enabled=True, nopass=True, commands=["+@all"], keys=["*"], channels=["*"])
        admin.close()
