"""What outlives the process: a server killed mid-job and started again finds its names and finishes
its paid jobs without a second submit; two processes share one store file; workspaces never mix.

Every server here is a real ``mj-mcp serve`` subprocess on stdio, on a SQLite store in a temporary
file, against the simulator over loopback; ``kill -9`` is a real SIGKILL."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from support import PATIENCE, SERVER, RawClient, server_env, wait_until

from mj_mcp.records import Record, Submission
from mj_mcp.store import SqliteStore

IMAGINE, EDITS, TASKS = "/midjourney/imagine", "/midjourney/edits", "/midjourney/tasks"
DESCRIBE, SEED = "/midjourney/describe", "/midjourney/seed"


@pytest.fixture
def servers(tmp_path):
    """Start stdio servers on one store file; every one is stopped at the end."""
    started: list[RawClient] = []

    def start(sim, **extra) -> RawClient:
        env = server_env(sim, MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}", **extra)
        c = RawClient(env)
        started.append(c)
        c.initialize()
        return c

    start.db = tmp_path / "store.db"  # type: ignore[attr-defined]
    yield start
    for c in started:
        if c.proc.poll() is None:
            c.close()


def kill9(c: RawClient) -> None:
    os.kill(c.proc.pid, signal.SIGKILL)
    c.proc.wait(timeout=PATIENCE)  # reaped: the pid is gone, so its leases are void at once


def structured(result):
    assert "structuredContent" in result, result
    return result["structuredContent"]


def test_a_job_killed_mid_way_finishes_after_a_restart_with_one_submit(servers, fresh_sim):
    fresh_sim.state.configure(time_scale=0.5)  # this grid takes 5.5 s: it runs on when the server dies
    a = servers(fresh_sim)
    result, _ = a.call("imagine", prompt="a lighthouse in a storm", wait_seconds=0)
    running = structured(result)
    assert running["status"] == "running", result
    [lighthouse] = wait_until(lambda: list(fresh_sim.state.tasks), "the submit to reach the simulator")
    fresh_sim.state.configure(time_scale=0.01)  # each task keeps the pace it was submitted at
    done, _ = a.call("imagine", prompt="a quiet harbour", wait_seconds=PATIENCE)
    assert structured(done)["status"] == "completed"
    kill9(a)
    assert "finished_at" not in fresh_sim.state.tasks[lighthouse], "the job ended before its server was killed"

    b = servers(fresh_sim)
    result, progress = b.call("get_task", ref=running["name"], wait_seconds=PATIENCE)
    final = structured(result)
    assert final["status"] == "completed" and final["name"] == "lighthouse-storm", result
    assert len(fresh_sim.state.requests(IMAGINE)) == 2  # never resubmitted
    # yesterday's names are listed, and their resources read
    listed, _ = b.call("list_images")
    assert {i["name"] for i in structured(listed)["images"]} == {"lighthouse-storm", "quiet-harbour"}
    read, _ = b.request("resources/read", {"uri": "mj://images/quiet-harbour"})
    blob = base64.b64decode(read["contents"][0]["blob"])
    assert blob.startswith(b"\x89PNG")
    # and the names chain on: "upscale the lighthouse from yesterday"
    result, _ = b.call("apply_action", image="lighthouse-storm", action="upscale2", wait_seconds=PATIENCE)
    assert structured(result)["name"] == "lighthouse-storm.u2"


def test_a_kill_between_the_submit_and_upstreams_first_line_finds_the_task(servers, fresh_sim):
    # The stream's headers wait 30 s after the task exists: the server dies not knowing the task id.
    fresh_sim.state.configure(stream_header_delay_s=30.0 / 0.01)
    a = servers(fresh_sim)
    a.send(
        {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "imagine", "arguments": {"prompt": "a red kite over dunes"}},
        }
    )
    wait_until(lambda: fresh_sim.state.tasks, "the task to exist upstream")
    assert len(fresh_sim.state.tasks) == 1
    kill9(a)
    fresh_sim.state.configure(stream_header_delay_s=0.0)

    b = servers(fresh_sim)
    result, _ = b.call("get_task", ref="kite-dunes", wait_seconds=PATIENCE)
    record = structured(result)
    assert record["status"] == "completed" and record["task_id"] == next(iter(fresh_sim.state.tasks)), result
    assert len(fresh_sim.state.requests(IMAGINE)) == 1


def test_a_describe_killed_mid_way_finishes_after_a_restart_once_and_texts_and_seeds_outlive_it(servers, fresh_sim):
    a = servers(fresh_sim)
    done, _ = a.call("imagine", prompt="a lighthouse in a storm", wait_seconds=20)
    assert structured(done)["status"] == "completed", done
    seeded, _ = a.call("get_task", ref="lighthouse-storm", seed=True)
    seed = structured(seeded)["seed"]
    short, _ = a.call("rewrite_prompt", prompt="a lighthouse in a storm, ultra detailed, dramatic sky --ar 16:9")
    short_texts = structured(short)["prompts"]
    # A describe takes about 6 s now: the server dies after upstream took it, before the answer.
    fresh_sim.state.configure(time_scale=2.0)
    a.send(
        {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "describe", "arguments": {"image": "lighthouse-storm"}},
        }
    )
    wait_until(lambda: fresh_sim.state.requests(DESCRIBE), "the describe to reach the simulator")
    [describing] = [t for t in fresh_sim.state.tasks.values() if t["type"] == "describe"]
    assert "finished_at" not in describing
    kill9(a)

    b = servers(fresh_sim)
    result, _ = b.call("get_task", ref="lighthouse-storm.prompts", wait_seconds=25)
    words = structured(result)
    assert words["status"] == "completed" and len(words["prompts"]) == 4, result
    assert words["task_id"] == next(t for t, v in fresh_sim.state.tasks.items() if v["type"] == "describe")
    assert len(fresh_sim.state.requests(DESCRIBE)) == 1  # found upstream, never sent again
    # texts read as text, listed as text, by name
    for name, texts in (("lighthouse-storm.prompts", words["prompts"]), (structured(short)["name"], short_texts)):
        read, _ = b.request("resources/read", {"uri": f"mj://images/{name}"})
        assert read["contents"][0]["mimeType"] == "text/plain", read
        assert read["contents"][0]["text"].splitlines() == texts
    listed, _ = b.request("resources/list")
    kinds = {r["name"]: r["mimeType"] for r in listed["resources"]}
    assert kinds["lighthouse-storm.prompts"] == "text/plain" and kinds["lighthouse-storm"] == "image/png", kinds
    # the seed was kept: asked for again, nothing is sent
    again, _ = b.call("get_task", ref="lighthouse-storm", seed=True)
    assert structured(again)["seed"] == seed and len(fresh_sim.state.requests(SEED)) == 1


def test_an_edit_killed_mid_way_finishes_after_a_restart_with_its_results_and_one_submit(servers, fresh_sim):
    a = servers(fresh_sim)
    done, _ = a.call("imagine", prompt="a quiet harbour", wait_seconds=20)
    assert structured(done)["status"] == "completed"
    fresh_sim.state.configure(time_scale=0.15)
    result, _ = a.call("edit_image", image="quiet-harbour", prompt="a harbour at night", wait_seconds=0.3)
    assert structured(result)["status"] == "running", result
    kill9(a)

    b = servers(fresh_sim)
    result, _ = b.call("get_task", ref="quiet-harbour.edit", wait_seconds=20)
    edit = structured(result)
    names = [f"quiet-harbour.edit.{n}" for n in range(1, 5)]
    assert (edit["status"], edit["results"]) == ("completed", names), result
    assert len(fresh_sim.state.requests(EDITS)) == 1  # never resubmitted
    listed, _ = b.call("list_images")
    assert set(names) <= {i["name"] for i in structured(listed)["images"]}
    read, _ = b.request("resources/read", {"uri": "mj://images/quiet-harbour.edit.2"})
    assert base64.b64decode(read["contents"][0]["blob"]).startswith(b"\x89PNG")


def test_a_kill_between_an_edits_submit_and_its_first_line_finds_the_task(servers, fresh_sim):
    a = servers(fresh_sim)
    done, _ = a.call("imagine", prompt="a red kite over dunes", wait_seconds=20)
    assert structured(done)["status"] == "completed"
    fresh_sim.state.configure(stream_header_delay_s=3.0 / 0.01)
    a.send(
        {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "edit_image", "arguments": {"image": "kite-dunes", "prompt": "a blue kite"}},
        }
    )
    wait_until(lambda: len(fresh_sim.state.tasks) >= 2, "the edit's task upstream")
    [edit_task] = [t for t, task in fresh_sim.state.tasks.items() if task["type"] == "edits"]
    kill9(a)
    fresh_sim.state.configure(stream_header_delay_s=0.0)

    b = servers(fresh_sim)
    result, _ = b.call("get_task", ref="kite-dunes.edit", wait_seconds=20)
    record = structured(result)
    assert (record["status"], record["task_id"], len(record["results"])) == ("completed", edit_task, 4), result
    assert len(fresh_sim.state.requests(EDITS)) == 1


async def _leave_a_record_running(db, *, sent_ago: float) -> None:
    """What a server killed before its request reached upstream leaves in the store."""
    store = await SqliteStore(db).open()
    record = Record(
        name="lost-comet",
        prompt="a lost comet",
        submission=Submission(action="generate", prompt="a lost comet", at=time.time() - sent_ago),
    )
    await store.add(record)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    await store.lease(record.id, f"{os.uname().nodename}:{proc.pid}:dead", 3600)
    await store.close()


def test_a_submit_that_never_reached_upstream_is_failed_as_maybe_billed_never_resent(servers, fresh_sim):
    a = servers(fresh_sim)  # creates and migrates the file
    a.close()
    anyio.run(lambda: _leave_a_record_running(servers.db, sent_ago=120))
    b = servers(fresh_sim)
    result, _ = b.call("get_task", ref="lost-comet")
    record = structured(result)
    assert record["status"] == "failed" and record["error"]["code"] == "connection_lost", result
    assert "billed" in record["error"]["message"]
    assert fresh_sim.state.requests(IMAGINE) == []  # nothing was sent again
    assert fresh_sim.state.requests(TASKS)  # it looked


def test_two_processes_share_one_store_and_one_follower_per_job(servers, fresh_sim):
    fresh_sim.state.configure(time_scale=0.1)
    a, b = servers(fresh_sim), servers(fresh_sim)
    result, _ = a.call("imagine", prompt="a paper boat on a pond", wait_seconds=0.2)
    name = structured(result)["name"]
    # B waits on A's job through the store: progress, then the image; nobody polls upstream for it
    result, progress = b.call("get_task", ref=name, wait_seconds=PATIENCE)
    assert structured(result)["status"] == "completed", result
    assert progress and progress[-1]["progress"] == 100
    assert fresh_sim.state.requests(TASKS) == []
    # the same prompt from both at once: two names, both kept
    a.send(
        {
            "jsonrpc": "2.0",
            "id": 501,
            "method": "tools/call",
            "params": {"name": "imagine", "arguments": {"prompt": "a brass compass"}},
        }
    )
    result_b, _ = b.call("imagine", prompt="a brass compass", wait_seconds=PATIENCE)

    def both_listed_and_done():
        listed, _ = b.call("list_images", limit=50)
        names = {i["name"]: i["status"] for i in structured(listed)["images"]}
        return {"brass-compass", "brass-compass-2"} <= set(names) and "running" not in names.values()

    wait_until(both_listed_and_done, "both compasses listed and done", interval=0.1)
    assert len(fresh_sim.state.requests(IMAGINE)) == 3


def test_workspaces_never_see_each_others_images_or_tasks(servers, fresh_sim):
    alice = servers(fresh_sim, MJ_MCP_WORKSPACE="alice")
    bob = servers(fresh_sim, MJ_MCP_WORKSPACE="bob")
    result, _ = alice.call("imagine", prompt="a secret garden", wait_seconds=PATIENCE)
    mine = structured(result)
    for ref in (mine["name"], mine["task_id"], mine["image_id"]):
        result, _ = bob.call("get_task", ref=ref)
        assert result["isError"] and "no image or task" in result["content"][0]["text"], result
        result, _ = bob.call("apply_action", image=ref, action="upscale1")
        assert result["isError"], result
    listed, _ = bob.call("list_images")
    assert structured(listed)["images"] == []
    read, _ = bob.request("resources/read", {"uri": f"mj://images/{mine['name']}"})
    assert "contents" not in read
    asked = " ".join(str(r["body"]) for r in fresh_sim.state.requests(TASKS))
    assert mine["task_id"] not in asked and mine["image_id"] not in asked  # held by alice: never asked for


def test_a_bad_setting_stops_the_server_before_initialize_naming_the_variable():
    env = server_env(None, MJ_MCP_CACHE_MB="abc", MJ_MCP_MAX_IMAGES="0")
    proc = subprocess.run(SERVER, env=env, input="", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "MJ_MCP_CACHE_MB='abc'" in proc.stderr and "valid integer" in proc.stderr
    assert "MJ_MCP_MAX_IMAGES='0'" in proc.stderr and "greater than or equal to 10" in proc.stderr


@pytest.mark.anyio
async def test_yesterdays_simulated_images_work_after_a_restart_and_a_kill_9(tmp_path):
    """No token, so the embedded simulator (what a new user runs first): its images outlive the server
    that made them, whatever the new port, like real ones: read, preview, export, and act on them."""
    from mcp import Client, StdioServerParameters

    cache = tmp_path / "cache"
    env = server_env(
        None,
        MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}",
        MJ_MCP_CACHE_DIR=str(cache),
        MJ_MCP_EXPORT_DIR=str(tmp_path / "exports"),
    )

    def read(c: RawClient, name: str) -> bytes:
        result, _ = c.request("resources/read", {"uri": f"mj://images/{name}"})
        assert "contents" in result, result
        return base64.b64decode(result["contents"][0]["blob"])

    # Yesterday: a grid and an upscale, and the server stops as a host stops it
    a = RawClient(env)
    a.initialize()
    for tool, args in (
        ("imagine", {"prompt": "a lighthouse in a storm"}),
        ("apply_action", {"image": "lighthouse-storm", "action": "upscale2"}),
    ):
        result, _ = a.call(tool, **args)
        assert structured(result)["status"] == "completed", result
    pictures = {name: read(a, name) for name in ("lighthouse-storm", "lighthouse-storm.u2")}
    a.close()

    # A restart: the cached copies are found again (under the same keys), and a job is left running by a kill -9
    cached = sorted(p.name for p in cache.iterdir())
    b = RawClient({**env, "MJ_MCP_SIM_TIME_SCALE": "0.5"})  # a grid takes about 5 s
    b.initialize()
    assert read(b, "lighthouse-storm") == pictures["lighthouse-storm"]
    assert sorted(p.name for p in cache.iterdir()) == cached  # nothing downloaded again
    result, _ = b.call("imagine", prompt="a red kite over dunes", wait_seconds=0.5)
    assert structured(result)["status"] == "running", result
    kill9(b)

    # Another restart, with the image cache gone: everything comes from the simulator again
    shutil.rmtree(cache)
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)
    async with Client(params) as c:
        kite = await c.call_tool("get_task", {"ref": "kite-dunes", "wait_seconds": PATIENCE})
        assert kite.structured_content["status"] == "completed", kite.content
        for name, png in pictures.items():
            read_back = await c.read_resource(f"mj://images/{name}")
            assert base64.b64decode(read_back.contents[0].blob) == png, name
            shown = await c.call_tool("get_task", {"ref": name})
            assert not shown.is_error and any(block.type == "image" for block in shown.content), shown.content
            assert "preview unavailable" not in shown.content[0].text
        saved = await c.call_tool("export_image", {"image": "lighthouse-storm.u2", "path": "lighthouse.png"})
        assert not saved.is_error, saved.content
        assert Path(saved.structured_content["path"]).read_bytes() == pictures["lighthouse-storm.u2"]
        for image, action in (
            ("lighthouse-storm", "upscale3"),
            ("lighthouse-storm.u2", "zoom_out_2x"),
            ("kite-dunes", "variation1"),
        ):
            made = await c.call_tool("apply_action", {"image": image, "action": action})
            assert not made.is_error and made.structured_content["status"] == "completed", made.content


@pytest.mark.anyio
async def test_a_simulated_edit_and_its_results_outlive_a_restart(tmp_path):
    """The embedded simulator (no token): an edit made yesterday reads as its four named results today,
    each previewed, read, exported and edited again, whatever the new port."""
    from mcp import Client, StdioServerParameters

    env = server_env(
        None,
        MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}",
        MJ_MCP_CACHE_DIR=str(tmp_path / "c"),
        MJ_MCP_EXPORT_DIR=str(tmp_path / "exports"),
    )
    a = RawClient(env)
    a.initialize()
    result, _ = a.call("imagine", prompt="a lighthouse in a storm")
    assert structured(result)["status"] == "completed", result
    result, _ = a.call(
        "edit_image",
        image="lighthouse-storm",
        prompt="a lighthouse at noon",
        region={"shape": "ellipse", "box": [0.2, 0.2, 0.8, 0.8]},
    )
    names = structured(result)["results"]
    assert names == [f"lighthouse-storm.edit.{n}" for n in range(1, 5)], result
    read, _ = a.request("resources/read", {"uri": f"mj://images/{names[1]}"})
    yesterday = base64.b64decode(read["contents"][0]["blob"])
    a.close()

    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env)
    async with Client(params) as c:
        edit = await c.call_tool("get_task", {"ref": "lighthouse-storm.edit"})
        assert edit.structured_content["results"] == names, edit.content
        assert any(block.type == "image" for block in edit.content), edit.content
        read_back = await c.read_resource(f"mj://images/{names[1]}")
        assert base64.b64decode(read_back.contents[0].blob) == yesterday
        saved = await c.call_tool("export_image", {"image": names[1], "path": "noon.png"})
        assert Path(saved.structured_content["path"]).read_bytes() == yesterday, saved.content
        again = await c.call_tool(
            "edit_image",
            {"image": names[3], "prompt": "a lighthouse at dusk", "region": {"shape": "rect", "box": [0, 0.5, 1, 1]}},
        )
        assert again.structured_content["status"] == "completed", again.content
        prompted = await c.call_tool("imagine", {"prompt": "a painting of it", "images": [names[0]]})
        assert prompted.structured_content["status"] == "completed", prompted.content


def test_a_nan_setting_stops_the_server_saying_it_is_not_a_number():
    env = server_env(None, MJ_MCP_WAIT_SECONDS="nan", MJ_MCP_LEASE_SECONDS="inf")
    proc = subprocess.run(SERVER, env=env, input="", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "MJ_MCP_WAIT_SECONDS='nan': not a number" in proc.stderr and "from 0 to 3600" in proc.stderr
    assert "MJ_MCP_LEASE_SECONDS='inf': not a number" in proc.stderr and "less than" not in proc.stderr


@pytest.mark.parametrize("era", ["auto", "legacy"])
@pytest.mark.anyio
async def test_a_video_killed_mid_way_is_taken_over_after_a_restart_and_its_clips_outlive_it(fresh_sim, tmp_path, era):
    """A video is a paid job like any other: a server killed while it runs, started again, follows it to
    its clips without a second submit; then, through an SDK client in each protocol era, its poster, a
    clip read as an MP4, an extension and an export."""
    import io

    import av
    from mcp import Client, StdioServerParameters

    videos = "/midjourney/videos"
    env = server_env(
        fresh_sim,
        MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}",
        MJ_MCP_CACHE_DIR=str(tmp_path / "c"),
        MJ_MCP_EXPORT_DIR=str(tmp_path / "exports"),
    )
    a = RawClient(env)
    a.initialize()
    for tool, args in (
        ("imagine", {"prompt": "a red kite over dunes"}),
        ("apply_action", {"image": "kite-dunes", "action": "upscale1"}),
    ):
        result, _ = a.call(tool, wait_seconds=20, **args)
        assert structured(result)["status"] == "completed", result
    # a video takes about 5 s now: the server dies while it runs
    fresh_sim.state.configure(time_scale=0.15)
    result, _ = a.call("animate", image="kite-dunes.u1", prompt="the kite dips and climbs", wait_seconds=0.3)
    assert structured(result)["status"] == "running" and structured(result)["kind"] == "videos", result
    kill9(a)
    assert len(fresh_sim.state.requests(videos)) == 1

    async with Client(StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env), mode=era) as c:
        done = await c.call_tool("get_task", {"ref": "kite-dunes.u1.vid", "wait_seconds": 30})
        video = done.structured_content
        assert video["status"] == "completed" and len(video["clips"]) == 4, done.content
        assert [b.type for b in done.content] == ["text", "image", *["resource_link"] * 4]
        assert len(fresh_sim.state.requests(videos)) == 1  # taken over, never resubmitted
        read = await c.read_resource(video["clips"][1])
        assert read.contents[0].mime_type == "video/mp4"
        with av.open(io.BytesIO(base64.b64decode(read.contents[0].blob)), format="mp4") as clip:
            assert next(clip.decode(video=0)).width == video["width"]
        fresh_sim.state.configure(time_scale=0.01)
        longer = await c.call_tool("apply_action", {"image": "kite-dunes.u1.vid", "action": "extend1"})
        assert longer.structured_content["status"] == "completed", longer.content
        saved = await c.call_tool("export_image", {"image": "kite-dunes.u1.vid.e1", "clip": 4, "path": "kite.mp4"})
        assert not saved.is_error and Path(saved.structured_content["path"]).read_bytes()[4:8] == b"ftyp"
    assert len(fresh_sim.state.requests(videos)) == 2
