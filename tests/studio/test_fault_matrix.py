"""The fault matrix (issue 3): every upstream fault the simulator can inject, through the studio, for a
grid and for the video jobs (animate, extend).

For each fault: the outcome (an error with its code, a failed record, or the recovered image), that
nothing was submitted twice (submits counted at the simulator), and that every task the simulator
accepted ends final in the store: a later look answers without asking upstream again. (What the model
reads of each outcome is the adapters' test, tests/test_faults.py and tests/test_errors.py.)
"""

from __future__ import annotations

import anyio
import pytest
from support import eventually, imagine_requests

from mj_mcp import errors
from mj_mcp.core.kinds import Kind
from mj_mcp.records import Record
from mj_mcp.studio import Call
from mj_mcp.studio.action import apply_action
from mj_mcp.studio.animate import animate
from mj_mcp.studio.describe import describe
from mj_mcp.studio.edit import edit_image
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.listing import list_images

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"
DESCRIBE = "/midjourney/describe"
EDITS = "/midjourney/edits"
VIDEOS = "/midjourney/videos"
TASKS = "/midjourney/tasks"

# fault id: (fault spec for the next submit, the outcome, submits the simulator sees)
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


async def settle(sim, call: Call | None = None, tasks: int = 0) -> None:
    """Wait until the simulator has (at least ``tasks`` tasks and) finished every task and, given the
    call, until each record of its workspace is final: a follower's last look upstream comes before that.
    (It used to wait for 0.1 s without a look, as long as a follower's poll interval grows to.)"""

    def finished():
        tasks_now = sim.state.tasks.values()
        return len(tasks_now) >= tasks and all("finished_at" in t for t in tasks_now)

    await eventually(finished, "the simulator to finish its tasks")
    if call is not None:

        async def all_final():
            # The store only, never upstream.
            return all(r.status != "running" for r in (await list_images(call, limit=200)).records)

        await eventually(all_final, "every record to be final")


async def assert_no_task_lost(call: Call, sim) -> None:
    """Every task upstream accepted is final in the store: a look answers without a lookup."""
    await settle(sim, call)
    for task_id in sim.state.tasks:
        lookups = len(sim.state.requests(TASKS))
        record = await get_task(call, ref=task_id)
        assert record.task_id == task_id and record.status in ("completed", "failed"), record
        assert len(sim.state.requests(TASKS)) == lookups, f"{task_id} was not in the store"


@pytest.mark.parametrize("case", list(MATRIX))
async def test_fault_matrix(call, progress, fresh_sim, case):
    spec, expected, submits = MATRIX[case]
    fresh_sim.state.inject(IMAGINE, spec, times=1)
    outcome, _, code = expected.partition(" ")
    if outcome == "error":
        with pytest.raises(errors.UpstreamError) as refused:
            await imagine(call, prompt="a quiet lake")
        assert refused.value.code == code and refused.value.next_step
        # nothing exists upstream
        assert fresh_sim.state.tasks == {}
    else:
        record = await imagine(call, prompt="a quiet lake")
        if outcome == "failed":
            assert record.status == "failed" and record.error and record.error.code == code, record
            assert record.name == "quiet-lake" and record.task_id
        else:
            assert record.status == "completed" and record.image_id and record.actions, record
            assert progress.values[-1] == 100
    assert len(imagine_requests(fresh_sim)) == submits
    assert len(fresh_sim.state.tasks) == (0 if outcome == "error" else 1)
    await assert_no_task_lost(call, fresh_sim)


# describe answers at once, and upstream keeps the answer as a task of type describe: the same faults on
# /describe, each with its outcome and the requests the simulator sees (no stream to cut).
DESCRIBE_MATRIX = {
    "401": ("401", "error invalid_token", 1),
    "403 used_up": ("403_used_up", "error used_up", 1),
    "429 then success": ("429;retry_after=0.05", "completed", 2),
    "500": ("500", "error api_error", 1),
    "504": ("504", "error timeout", 1),
    "reset before the task exists": ("reset", "error connection_lost", 1),
    "reset after the task exists": ("reset;after_submit=1", "completed", 1),
    "task failure": ("task_fail;code=api_error;message=fetch failed", "failed api_error", 1),
}


@pytest.mark.parametrize("case", list(DESCRIBE_MATRIX))
async def test_fault_matrix_of_describe(call, fresh_sim, case):
    spec, expected, submits = DESCRIBE_MATRIX[case]
    grid = await imagine(call, prompt="a quiet lake")
    fresh_sim.state.inject(DESCRIBE, spec, times=1)
    outcome, _, code = expected.partition(" ")
    if outcome == "error":
        with pytest.raises(errors.UpstreamError) as refused:
            await describe(call, image=grid.name)
        assert refused.value.code == code and refused.value.next_step
        # nothing exists upstream, and the name is free again
        assert [t for t in fresh_sim.state.tasks.values() if t["type"] == "describe"] == []
        assert await call.workspace.find("quiet-lake.prompts") is None
    else:
        record = await describe(call, image=grid.name)
        assert record.name == "quiet-lake.prompts" and record.task_id, record
        if outcome == "failed":
            assert record.status == "failed" and record.error and record.error.code == code, record
        else:
            assert record.status == "completed" and len(record.prompts) == 4, record
    assert len(fresh_sim.state.requests(DESCRIBE)) == submits


@pytest.mark.parametrize("case", list(MATRIX))
async def test_fault_matrix_of_edits(call, progress, fresh_sim, case):
    """The same faults on /edits, a billed endpoint run as a task: the same outcomes, one submit, no task
    lost; a completed edit has its four results, stored with it."""
    grid = await imagine(call, prompt="a quiet lake")
    spec, expected, submits = MATRIX[case]
    fresh_sim.state.inject(EDITS, spec, times=1)
    outcome, _, code = expected.partition(" ")
    if outcome == "error":
        with pytest.raises(errors.UpstreamError) as refused:
            await edit_image(call, image=grid.name, prompt="a lake at night")
        assert refused.value.code == code and refused.value.next_step
        # nothing exists upstream, and the name is free again
        assert await call.workspace.find("quiet-lake.edit") is None
    else:
        record = await edit_image(call, image=grid.name, prompt="a lake at night")
        assert record.name == "quiet-lake.edit" and record.task_id, record
        made = await call.workspace.results(record)
        if outcome == "failed":
            assert record.status == "failed" and record.error and record.error.code == code, record
            assert made == []
        else:
            assert record.status == "completed" and len(record.sub_images) == 4, record
            assert [r.kind for r in made] == [Kind.EDITED] * 4 and progress.values[-1] == 100
    assert len(fresh_sim.state.requests(EDITS)) == submits
    edits = [t for t in fresh_sim.state.tasks.values() if t["type"] == "edits"]
    assert len(edits) == (0 if outcome == "error" else 1)


@pytest.mark.parametrize("job", ["animate", "extend"])
@pytest.mark.parametrize("case", list(MATRIX))
async def test_fault_matrix_of_video_jobs(call, progress, fresh_sim, job, case):
    """The same faults on /midjourney/videos, for a new video and for an extension of one: the same
    outcomes, no second submit, no task lost."""
    spec, expected, submits = MATRIX[case]
    before = 0
    if job == "extend":
        await imagine(call, prompt="a quiet lake")
        await animate(call, image="quiet-lake", prompt="ripples spread")
        before = len(fresh_sim.state.tasks)
    fresh_sim.state.inject(VIDEOS, spec, times=1)
    outcome, _, code = expected.partition(" ")

    async def start() -> Record:
        if job == "animate":
            return await animate(call, image="https://cdn.example/lake.png", prompt="the water ripples", name="lake")
        return await apply_action(call, image="quiet-lake.vid", action="extend3", name="lake")

    sent = len(fresh_sim.state.requests(VIDEOS))
    if outcome == "error":
        with pytest.raises(errors.UpstreamError) as refused:
            await start()
        assert refused.value.code == code and refused.value.next_step
        # nothing exists upstream, and the name is free again
        assert len(fresh_sim.state.tasks) == before
        assert await call.workspace.find("lake") is None
    else:
        record = await start()
        if outcome == "failed":
            assert record.status == "failed" and record.error and record.error.code == code, record
            assert record.name == "lake" and record.task_id
        else:
            assert record.status == "completed" and record.video_id and len(record.videos) == 4, record
            assert progress.values[-1] == 100
    assert len(fresh_sim.state.requests(VIDEOS)) - sent == submits
    assert len(fresh_sim.state.tasks) == before + (0 if outcome == "error" else 1)
    await assert_no_task_lost(call, fresh_sim)


async def test_a_lost_submit_is_found_among_recent_tasks_not_resubmitted(call, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=1)
    record = await imagine(call, prompt="a quiet lake")
    [task_id] = fresh_sim.state.tasks
    assert record.task_id == task_id
    searches = [r["body"] for r in fresh_sim.state.requests(TASKS) if r["body"].get("action") == "retrieve_batch"]
    assert searches and all(s["created_at_min"] <= fresh_sim.state.tasks[task_id]["created_at"] for s in searches)


async def _twice(call: Call) -> list[Record]:
    out: list[Record] = []

    async def one() -> None:
        out.append(await imagine(call, prompt="a quiet lake"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    return out


async def test_recovery_never_adopts_a_task_another_job_follows(call, fresh_sim):
    """Two identical prompts at once, one loses its connection: each ends with its own task."""
    fresh_sim.state.configure(time_scale=0.05)
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=1)
    ids = {r.task_id for r in await _twice(call)}
    assert len(ids) == 2 and ids == set(fresh_sim.state.tasks)
    assert len(imagine_requests(fresh_sim)) == 2
    await assert_no_task_lost(call, fresh_sim)


async def test_two_identical_lost_submits_each_find_their_own_task(call, fresh_sim):
    """Both connections drop after upstream created the tasks: each job adopts a different one (in
    one process too), so neither paid task is left without a record."""
    fresh_sim.state.configure(time_scale=0.05)
    fresh_sim.state.inject(IMAGINE, "reset;after_submit=1", times=2)
    # Both searches answered together, both tasks in each.
    fresh_sim.state.inject(TASKS, "slow;delay=0.3", times=2)
    out = await _twice(call)
    assert sorted(r.task_id or "" for r in out) == sorted(fresh_sim.state.tasks), out
    assert len(imagine_requests(fresh_sim)) == 2
    await assert_no_task_lost(call, fresh_sim)


async def test_a_record_left_running_completes_on_its_own(call, fresh_sim):
    fresh_sim.state.configure(time_scale=0.05)
    assert (await imagine(call, prompt="a quiet lake", wait_seconds=0)).status == "running"
    await settle(fresh_sim, call, tasks=1)
    # No wait: the record is final.
    assert (await get_task(call, ref="quiet-lake")).status == "completed"


async def test_get_task_with_a_deadline_answers_running_when_it_passes(call, progress, fresh_sim):
    # A grid takes 4.4 s: running still when the deadline passes, however slow the two calls.
    fresh_sim.state.configure(time_scale=0.4)
    await imagine(call, prompt="a quiet lake", wait_seconds=0)
    progress.events.clear()
    record = await get_task(call, ref="quiet-lake", wait_seconds=0.2)
    assert record.status == "running" and progress.events
    await assert_no_task_lost(call, fresh_sim)
