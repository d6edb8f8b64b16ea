"""The fault matrix (issue 3): every upstream fault the simulator can inject, through the real server.

For each fault: the outcome the model sees (a tool error with its code, or the recovered image), that
nothing was submitted twice (submits counted at the simulator), and that every task the simulator
accepted ends final in the registry: answered by get_task without asking upstream again.
"""

from __future__ import annotations

import anyio
import pytest
from mcp import Client

from conftest import TOKEN, settings_for
from mj_mcp.server import build_server
from support import PATIENCE, call, eventually, imagine_requests

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"
TASKS = "/midjourney/tasks"

# fault id: (fault spec for the next submit, what the model gets, submits the simulator sees)
MATRIX = {
    "401": ("401", "error invalid_token", 1),
    "403 moderation": ("403_moderation", "error forbidden", 1),
    "403 used_up": ("403_used_up", "error used_up", 1),
    "429 then success": ("429;retry_after=0.05", "completed", 2),
    "500": ("500", "error api_error", 1),
    "504": ("504", "error timeout", 1),
    "reset before the task exists": ("reset", "error connection_lost", 1),
    "reset after the task exists": ("reset;after_submit=1", "completed", 1),
    "stream cut before any line": ("stream_cut;after_lines=0", "completed", 1),
    "stream cut after 1 line": ("stream_cut;after_lines=1", "completed", 1),
    "stream cut after 2 lines, mid-line": ("stream_cut;after_lines=2;mid_line=1", "completed", 1),
    "malformed line": ("stream_malformed;line=1", "completed", 1),
    "success false line": ("stream_error_line;code=api_error;message=render crashed", "failed api_error", 1),
    "task failure": ("task_fail;at_progress=35;code=bad_request;message=bad flag", "failed bad_request", 1),
}


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
            _, listing, _, _ = await call(client, "list_images", limit=200)  # the registry only, never upstream
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


@pytest.mark.parametrize("case", list(MATRIX))
async def test_fault_matrix(client, fresh_sim, case):
    spec, expected, submits = MATRIX[case]
    fresh_sim.state.inject(IMAGINE, spec, times=1)
    result, sc, text, events = await call(client, "imagine", prompt="a quiet lake")
    outcome, _, code = expected.partition(" ")
    if outcome == "error":
        assert result.is_error and sc is None, text
        assert code in text and "Next:" in text, text
        assert fresh_sim.state.tasks == {}  # nothing exists upstream
    elif outcome == "failed":
        assert result.is_error and sc["status"] == "failed" and sc["error"]["code"] == code, text
        assert "Recorded as quiet-lake" in text
    else:
        assert not result.is_error, text
        assert sc["status"] == "completed" and sc["image_id"] and sc["actions"], sc
        assert events[-1][0] == 100
    assert TOKEN not in text
    assert len(imagine_requests(fresh_sim)) == submits
    assert len(fresh_sim.state.tasks) == (0 if outcome == "error" else 1)
    await assert_no_task_lost(client, fresh_sim)


async def test_a_lost_submit_is_found_among_recent_tasks_not_resubmitted(client, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=1)
    result, sc, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert not result.is_error, text
    [task_id] = fresh_sim.state.tasks
    assert sc["task_id"] == task_id
    searches = [r["body"] for r in fresh_sim.state.requests(TASKS) if r["body"].get("action") == "retrieve_batch"]
    assert searches and all(s["created_at_min"] <= fresh_sim.state.tasks[task_id]["created_at"] for s in searches)


async def test_recovery_never_adopts_a_task_another_job_follows(client, fresh_sim):
    """Two identical prompts at once, one loses its connection: each ends with its own task."""
    fresh_sim.state.configure(time_scale=0.05)
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=1)
    out = []

    async def one():
        out.append(await call(client, "imagine", prompt="a quiet lake"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    ids = {sc["task_id"] for _, sc, _, _ in out}
    assert len(ids) == 2 and ids == set(fresh_sim.state.tasks)
    assert len(imagine_requests(fresh_sim)) == 2
    await assert_no_task_lost(client, fresh_sim)


async def test_two_identical_lost_submits_each_find_their_own_task(client, fresh_sim):
    """Both connections drop after upstream created the tasks: each job adopts a different one (in
    one process too), so neither paid task is left without a record."""
    fresh_sim.state.configure(time_scale=0.05)
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=2)
    fresh_sim.state.inject(TASKS, "slow;delay=0.3", times=2)  # both searches answered together, both tasks in each
    out = []

    async def one():
        out.append(await call(client, "imagine", prompt="a quiet lake"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    ids = [sc["task_id"] for _, sc, _, _ in out]
    assert sorted(ids) == sorted(fresh_sim.state.tasks), out
    assert len(imagine_requests(fresh_sim)) == 2
    await assert_no_task_lost(client, fresh_sim)


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


async def test_a_record_left_running_completes_on_its_own(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.05)
    result, sc, _, _ = await call(client, "imagine", prompt="a quiet lake", wait_seconds=0)
    assert sc["status"] == "running"
    await settle(fresh_sim, client, tasks=1)
    result, sc, text, _ = await call(client, "get_task", ref="quiet-lake")  # no wait: the record is final
    assert sc["status"] == "completed", text


async def test_get_task_with_a_deadline_answers_running_when_it_passes(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.4)  # a grid takes 4.4 s: running still, however slow the two calls
    await call(client, "imagine", prompt="a quiet lake", wait_seconds=0)
    result, sc, text, events = await call(client, "get_task", ref="quiet-lake", wait_seconds=0.2)
    assert sc["status"] == "running" and "wait_seconds" in text and events
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
