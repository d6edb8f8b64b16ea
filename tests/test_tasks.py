"""MCP tasks, both protocol eras, as hosts speak them: raw JSON-RPC to `mj-mcp serve --transport http` (and
stdio) against the simulator over loopback.

- 2026-07-28, the `io.modelcontextprotocol/tasks` extension (no client speaks it yet): declared in
  `server/discover`; a generating call of a request that declares it and runs past the short wait is a
  `CreateTaskResult`, polled with `tasks/get` to a result equal to the tool call's own; never a task to a
  request that did not declare it; an upstream failure is `completed` with the tool error; `tasks/cancel`
  keeps the paid job; `notifications/tasks` on a listen stream.
- 2025-11-25, the revision's utility: the capability, `execution` on the generating tools only,
  `tools/call` with `task`, `tasks/get`, `tasks/result`, `tasks/list` (paginated), `tasks/cancel`, and
  the related-task `_meta` on the progress that follows the answer (stdio).
- A task belongs to its principal (a team file of two): another's id is unknown, in both eras.
- `kill -9` after the `CreateTaskResult`, a restart on the same store: `tasks/get` gives the result.
(Two replicas on one Redis: tests/test_replicas.py. The MCP Inspector's mcpdo: tests/test_interop.py.)

The short wait is 0.3 s here and a grid takes at least 1.7 s at the simulator's pace (time scale 0.15):
a call that declares tasks is always answered with one, whatever the machine's load.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time

import httpx
import pytest
from conftest import TOKEN, settings_for
from support import (
    TASKS_EXTENSION,
    HandshakeHttp,
    ModernHttp,
    RawClient,
    Replica,
    free_port,
    imagine_requests,
    server_env,
)

from mj_mcp.core.operations import TOOL, Effect
from mj_mcp.principals import token_hash

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40
SLOW = 0.15  # the simulator's time scale: a grid in ~1.7 s
NOT_FOUND = "Failed to retrieve task: Task not found (unknown or expired)"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def served(sim, tmp_path_factory):
    """One authenticated HTTP server (principals alice and bob) on the shared simulator."""
    base = tmp_path_factory.mktemp("tasks")
    team = base / "team.toml"
    team.write_text(
        f'[principals.alice]\ntokens = ["{token_hash(ALICE)}"]\n\n[principals.bob]\ntokens = ["{token_hash(BOB)}"]\n'
    )
    env = server_env(
        sim,
        MJ_MCP_AUTH_TOKENS_FILE=str(team),
        MJ_MCP_TASK_WAIT_SECONDS="0.3",
        MJ_MCP_LOG_LEVEL="INFO",
        MJ_MCP_CACHE_DIR=str(base / "cache"),
        MJ_MCP_CONFIRM="upscale_4x",
    )
    [replica] = Replica.start((env, base / "server.log"))
    yield replica
    replica.stop()
    assert TOKEN not in replica.log() and ALICE not in replica.log()


@pytest.fixture
def slow(fresh_sim):
    fresh_sim.state.configure(time_scale=SLOW)
    return fresh_sim


def until(check, what: str, deadline: float = 60.0):
    """Ask ``check`` until it returns something (a state, never a duration, is what is waited for)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {deadline} s")


def same_result(a: dict, b: dict) -> None:
    """Two tool results say the same: text, thumbnail, resource link, structured record, error flag."""
    keep = ("content", "structuredContent", "isError")
    assert {k: a.get(k) for k in keep} == {k: b.get(k) for k in keep}


def finished(client: ModernHttp, answer: dict) -> dict:
    """A tool call's result, from a task polled to its end when the answer was one."""
    if answer.get("resultType") != "task":
        return answer
    return modern_final(client, answer["taskId"])[0]["result"]


def modern_final(client: ModernHttp, task_id: str) -> tuple[dict, list[dict]]:
    """Poll tasks/get until the task ends: (its last answer, every answer on the way)."""
    seen: list[dict] = []

    def ended():
        answer = client.task("tasks/get", task_id)
        seen.append(answer)
        return answer if answer.get("status") != "working" else None

    return until(ended, f"end of task {task_id}"), seen


# --- 2026-07-28: the extension ------------------------------------------------------------------------


def test_a_slow_job_is_a_task_polled_to_exactly_the_tool_calls_result(served, slow):
    alice = ModernHttp(served.mcp, token=ALICE)
    discovered, _ = alice.request("server/discover")
    assert discovered["capabilities"]["extensions"][TASKS_EXTENSION] == {}
    created = alice.call("imagine", prompt="a red fox in snow")
    assert created["resultType"] == "task" and created["status"] == "working", created
    assert "content" not in created and re.fullmatch(r"[0-9a-f]{32}", created["taskId"])
    assert created["statusMessage"].startswith("fox-snow: generating")
    assert ISO.match(created["createdAt"]) and ISO.match(created["lastUpdatedAt"])
    assert created["ttlMs"] == 86_400_000 and created["pollIntervalMs"] == 2000
    final, seen = modern_final(alice, created["taskId"])
    assert final["status"] == "completed" and final["resultType"] == "complete" and final["taskId"] == created["taskId"]
    assert final["statusMessage"] == "fox-snow is ready."
    assert final["lastUpdatedAt"] > created["createdAt"]
    # while it ran, the message said how far it got
    assert all(re.match(r"fox-snow: generating \d+%", s["statusMessage"]) for s in seen[:-1])
    # exactly the result the call would have given: what get_task answers for the finished image
    result = final["result"]
    assert [c["type"] for c in result["content"]] == ["text", "image", "resource_link"]
    assert result["structuredContent"]["name"] == "fox-snow" and result["isError"] is False
    same_result(result, alice.call("get_task", ref="fox-snow"))
    assert len(imagine_requests(slow)) == 1


def test_a_request_that_did_not_declare_the_extension_never_gets_a_task(served, slow):
    plain = ModernHttp(served.mcp, token=ALICE, tasks=False)
    answer = plain.call("imagine", prompt="a heron at dawn")
    assert answer.get("resultType") == "complete" and answer["structuredContent"]["status"] == "completed", answer
    # the same job, asked with the extension: a task
    created = ModernHttp(served.mcp, token=ALICE).call("imagine", prompt="a heron at dusk")
    assert created["resultType"] == "task"
    for method in ("tasks/get", "tasks/cancel", "tasks/update"):
        refused = plain.task(method, created["taskId"])["error"]
        assert refused["code"] == -32021 and TASKS_EXTENSION in json.dumps(refused["data"]), (method, refused)
    # tasks/list and tasks/result are the 2025-11-25 revision's, not the extension's
    assert ModernHttp(served.mcp, token=ALICE).request("tasks/list")[0]["error"]["code"] == -32601


def test_an_upstream_failure_is_a_completed_task_carrying_the_tool_error(served, slow):
    slow.state.inject("/midjourney/imagine", "task_fail;at_progress=35;code=bad_request;message=bad flag")
    alice = ModernHttp(served.mcp, token=ALICE)
    created = alice.call("imagine", prompt="a broken kite")
    final, _ = modern_final(alice, created["taskId"])
    assert final["status"] == "completed" and "error" not in final
    result = final["result"]
    assert result["isError"] is True and "bad flag" in result["content"][0]["text"]
    assert result["structuredContent"]["status"] == "failed"


def test_cancel_is_acknowledged_and_the_paid_job_still_finishes(served, slow):
    alice = ModernHttp(served.mcp, token=ALICE)
    created = alice.call("imagine", prompt="a paper lantern")
    ack = alice.task("tasks/cancel", created["taskId"])
    assert set(ack) <= {"resultType", "_meta"} and ack["resultType"] == "complete", ack
    working = alice.task("tasks/get", created["taskId"])
    if working["status"] == "working":
        assert "never cancelled upstream" in working["statusMessage"] and "lantern" in working["statusMessage"]
    final, _ = modern_final(alice, created["taskId"])
    assert final["status"] == "completed" and final["result"]["structuredContent"]["status"] == "completed"
    assert len(imagine_requests(slow)) == 1
    # tasks/update: acknowledged (nothing is ever waited for); an unknown id is -32602
    assert (
        "error"
        not in alice.request(
            "tasks/update", {"taskId": created["taskId"], "inputResponses": {}}, name=created["taskId"]
        )[0]
    )
    assert alice.task("tasks/update", "0" * 32)["error"] == {"code": -32602, "message": NOT_FOUND}


def test_notifications_tasks_reach_a_listen_stream_that_asked_for_the_task(served, slow):
    alice = ModernHttp(served.mcp, token=ALICE)
    created = alice.call("imagine", prompt="a night market")
    task_id = created["taskId"]
    heard: list[dict] = []
    done = threading.Event()

    def listen():
        body = {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "subscriptions/listen",
            "params": alice.envelope({"notifications": {"taskIds": [task_id, "0" * 32]}}),
        }
        headers = {**alice.headers, "mcp-method": "subscriptions/listen"}
        with httpx.stream("POST", served.mcp, json=body, headers=headers, timeout=60) as reply:
            for line in reply.iter_lines():
                if line.startswith("data:") and line[5:].strip():
                    heard.append(json.loads(line[5:]))
                    note = heard[-1]
                    if note.get("method") == "notifications/tasks" and note["params"]["status"] != "working":
                        break
        done.set()

    threading.Thread(target=listen, daemon=True).start()
    assert done.wait(60), heard
    ack = heard[0]
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"]["taskIds"] == [task_id]  # an unknown id is not honoured
    tasks = [n["params"] for n in heard if n.get("method") == "notifications/tasks"]
    assert tasks[-1]["status"] == "completed" and tasks[-1]["taskId"] == task_id
    assert all(t["_meta"]["io.modelcontextprotocol/subscriptionId"] == 99 for t in tasks)
    same_result(tasks[-1]["result"], alice.task("tasks/get", task_id)["result"])
    # a request without the extension may not listen for tasks
    plain = ModernHttp(served.mcp, token=ALICE, tasks=False)
    refused, _ = plain.request("subscriptions/listen", {"notifications": {"taskIds": [task_id]}})
    assert refused["error"]["code"] == -32021


def test_the_spend_guard_asks_in_rounds_before_the_task_exists(served, fresh_sim):
    alice = ModernHttp(served.mcp, token=ALICE, capabilities={"elicitation": {"form": {}}})
    finished(alice, alice.call("imagine", prompt="a snow owl"))
    finished(alice, alice.call("apply_action", image="snow-owl", action="upscale1"))
    fresh_sim.state.configure(time_scale=SLOW)
    sent = len(imagine_requests(fresh_sim))
    arguments = {"image": "snow-owl.u1", "action": "upscale_4x"}
    asked = alice.call("apply_action", **arguments)
    assert asked["resultType"] == "input_required" and len(imagine_requests(fresh_sim)) == sent
    [(key, question)] = asked["inputRequests"].items()
    assert question["method"] == "elicitation/create"
    assert question["params"]["message"] == (
        "Upscale (4x) snow-owl.u1: one upscaled image, billed to your AceDataCloud account. Go ahead?"
    )
    # the person says no: nothing sent, a tool error at once, no task
    no = {"name": "apply_action", "arguments": arguments, "inputResponses": {key: {"action": "decline"}}}
    refused, _ = alice.request("tools/call", no, name="apply_action")
    assert refused["isError"] is True and "declined" in refused["content"][0]["text"]
    assert len(imagine_requests(fresh_sim)) == sent
    # the person says yes: then the job is stored, sent, and goes on as a task
    yes = {**no, "inputResponses": {key: {"action": "accept", "content": {}}}}
    created, _ = alice.request("tools/call", yes, name="apply_action")
    assert created["resultType"] == "task"
    final, _ = modern_final(alice, created["taskId"])
    assert final["result"]["structuredContent"]["name"] == "snow-owl.u1.4x"
    assert len(imagine_requests(fresh_sim)) == sent + 1


@pytest.mark.anyio
async def test_an_instant_answer_stays_synchronous_for_a_client_that_takes_tasks(fresh_sim):
    """A job done within the short wait answers as it always did (the SDK client advertises the extension
    but cannot read a task: were one sent, this call would fail)."""
    from mcp import Client
    from mcp.client.extension import advertise

    from mj_mcp.server import build_server

    server = build_server(settings_for(fresh_sim, task_wait_s=60.0))
    async with Client(server, extensions=[advertise(TASKS_EXTENSION)]) as client:
        assert TASKS_EXTENSION in client.server_capabilities.extensions
        result = await client.call_tool("imagine", {"prompt": "a cup of tea"})
        assert not result.is_error and result.structured_content["status"] == "completed"


# --- 2025-11-25: the revision's utility ---------------------------------------------------------------


def test_the_handshake_declares_tasks_and_marks_the_generating_tools(served):
    session = HandshakeHttp(served.mcp, token=ALICE)
    assert session.initialized["capabilities"]["tasks"] == {
        "list": {},
        "cancel": {},
        "requests": {"tools": {"call": {}}},
    }
    tools, _ = session.request("tools/list")
    support = {t["name"]: t.get("execution") for t in tools["tools"]}
    # the operation table says which: every tool that starts a job, and only those
    assert support == {
        name: {"taskSupport": "optional"} if TOOL[name].effect is Effect.GENERATES else None for name in support
    }
    assert {"imagine", "apply_action", "blend", "inpaint_region"} <= {n for n, e in support.items() if e}
    assert support["get_task"] is None and support["list_images"] is None
    # an older revision has no tasks
    older = HandshakeHttp(served.mcp, token=ALICE, version="2025-06-18")
    assert "tasks" not in older.initialized["capabilities"]
    assert all("execution" not in t for t in older.request("tools/list")[0]["tools"])


def test_a_task_call_answers_at_once_and_tasks_result_waits_for_the_tool_calls_result(served, slow):
    session = HandshakeHttp(served.mcp, token=ALICE)
    created, _ = session.request(
        "tools/call", {"name": "imagine", "arguments": {"prompt": "a copper kettle"}, "task": {"ttl": 120_000}}
    )
    task = created["task"]
    assert task["status"] == "working" and task["ttl"] == 3_600_000 and task["pollInterval"] == 2000
    assert "kettle" in created["_meta"]["io.modelcontextprotocol/model-immediate-response"]
    got, _ = session.request("tasks/get", {"taskId": task["taskId"]})
    assert got["taskId"] == task["taskId"] and got["status"] in ("working", "completed")
    result, _ = session.request("tasks/result", {"taskId": task["taskId"]})
    # One submit, counted once the job is over: the task's answer may leave before the submit does.
    assert len(imagine_requests(slow)) == 1
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
    assert [c["type"] for c in result["content"]] == ["text", "image", "resource_link"]
    got, _ = session.request("tasks/get", {"taskId": task["taskId"]})
    assert got["status"] == "completed" and got["statusMessage"] == "copper-kettle is ready."
    looked, _ = session.request("tools/call", {"name": "get_task", "arguments": {"ref": "copper-kettle"}})
    same_result(result, looked)
    # the finished task cannot be cancelled (terminal)
    refused, _ = session.request("tasks/cancel", {"taskId": task["taskId"]})
    assert refused["error"] == {"code": -32602, "message": "Cannot cancel task: already in terminal status 'completed'"}


def test_a_failed_job_is_a_failed_task_whose_result_is_the_tool_error(served, slow):
    slow.state.inject("/midjourney/imagine", "task_fail;at_progress=35;code=bad_request;message=bad flag")
    session = HandshakeHttp(served.mcp, token=ALICE)
    created, _ = session.request("tools/call", {"name": "imagine", "arguments": {"prompt": "a torn sail"}, "task": {}})
    result, _ = session.request("tasks/result", {"taskId": created["task"]["taskId"]})
    assert result["isError"] is True and "bad flag" in result["content"][0]["text"]
    got, _ = session.request("tasks/get", {"taskId": created["task"]["taskId"]})
    assert got["status"] == "failed" and "bad flag" in got["statusMessage"]


def test_a_cancelled_task_stays_cancelled_while_the_paid_job_is_made_and_kept(served, slow):
    session = HandshakeHttp(served.mcp, token=ALICE)
    created, _ = session.request("tools/call", {"name": "imagine", "arguments": {"prompt": "a glass harp"}, "task": {}})
    task_id = created["task"]["taskId"]
    cancelled, _ = session.request("tasks/cancel", {"taskId": task_id})
    assert cancelled["status"] == "cancelled" and "still made" in cancelled["statusMessage"]
    again, _ = session.request("tasks/cancel", {"taskId": task_id})
    assert again["error"]["code"] == -32602
    # the job goes on: get_task waits for it and finds the image
    looked, _ = session.request(
        "tools/call", {"name": "get_task", "arguments": {"ref": "glass-harp", "wait_seconds": 60}}
    )
    assert looked["structuredContent"]["status"] == "completed"
    got, _ = session.request("tasks/get", {"taskId": task_id})
    assert got["status"] == "cancelled"
    assert len(imagine_requests(slow)) == 1


def test_what_is_not_a_task_answers_as_it_always_did(served, fresh_sim):
    session = HandshakeHttp(served.mcp, token=ALICE)
    # a tool that starts no job, asked as a task: -32601
    refused, _ = session.request("tools/call", {"name": "list_images", "arguments": {}, "task": {}})
    assert refused["error"]["code"] == -32601
    # refused before any job existed: no task was accepted, so an error (-32602) in the tool error's words
    before = len(imagine_requests(fresh_sim))
    local, _ = session.request("tools/call", {"name": "imagine", "arguments": {"prompt": "x -c"}, "task": {}})
    assert local["error"]["code"] == -32602 and "did you mean --c?" in local["error"]["message"]
    assert len(imagine_requests(fresh_sim)) == before
    # a client of 2025-06-18 sending `task` gets the plain result: that revision has no tasks
    older = HandshakeHttp(served.mcp, token=ALICE, version="2025-06-18")
    plain, _ = older.request("tools/call", {"name": "imagine", "arguments": {"prompt": "an old clock"}, "task": {}})
    assert plain["structuredContent"]["status"] == "completed" and "task" not in plain
    assert session.request("tasks/get", {"taskId": "not a task id"})[0]["error"] == {
        "code": -32602,
        "message": NOT_FOUND,
    }


def test_tasks_list_is_the_callers_tasks_newest_first_a_page_at_a_time(served, fresh_sim):
    session = HandshakeHttp(served.mcp, token=BOB)
    made = []
    for n in range(22):
        created, _ = session.request(
            "tools/call", {"name": "imagine", "arguments": {"prompt": f"pebble {n}"}, "task": {}}
        )
        made.append(created["task"]["taskId"])
        # one at a time: a principal runs at most 10 jobs at once
        session.request("tasks/result", {"taskId": made[-1]})
    first, _ = session.request("tasks/list")
    assert len(first["tasks"]) == 20 and "nextCursor" in first
    second, _ = session.request("tasks/list", {"cursor": first["nextCursor"]})
    assert "nextCursor" not in second
    listed = [t["taskId"] for t in first["tasks"] + second["tasks"]]
    assert listed[:22] == made[::-1]
    bad = base64.urlsafe_b64encode(json.dumps({"after": "0" * 32}).encode()).decode()
    assert session.request("tasks/list", {"cursor": bad})[0]["error"]["code"] == -32602


def test_progress_after_the_answer_carries_the_related_task_on_stdio(slow):
    client = RawClient(server_env(slow))
    try:
        client.initialize(version="2025-11-25")
        created, _ = client.request(
            "tools/call",
            {"name": "imagine", "arguments": {"prompt": "a tin robot"}, "task": {}, "_meta": {"progressToken": "p-1"}},
        )
        task_id = created["task"]["taskId"]
        result, notes = client.request("tasks/result", {"taskId": task_id}, timeout=60)
        assert result["structuredContent"]["status"] == "completed"
        later = []
        # the end of the task is told after its last progress (both may follow the result)
        until(
            lambda: (
                any(n.get("method") == "notifications/tasks/status" for n in notes + later)
                or later.extend(_drain(client))
            ),
            "notifications/tasks/status",
        )
        notes += later
        progress = [n["params"] for n in notes if n.get("method") == "notifications/progress"]
        assert progress and all(p["progressToken"] == "p-1" for p in progress)
        assert all(p["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id} for p in progress)
        values = [p["progress"] for p in progress]
        assert values == sorted(set(values)) and values[-1] == 100
        [status] = [n["params"] for n in notes if n.get("method") == "notifications/tasks/status"]
        assert status["taskId"] == task_id and status["status"] == "completed"
    finally:
        client.close()


def _drain(client: RawClient) -> list[dict]:
    out = []
    while not client.inbox.empty():
        out.append(client.inbox.get_nowait())
    return out


# --- a task is its principal's ------------------------------------------------------------------------


def test_another_principals_task_id_is_unknown_in_both_eras(served, slow):
    alice, bob = ModernHttp(served.mcp, token=ALICE), ModernHttp(served.mcp, token=BOB)
    task_id = alice.call("imagine", prompt="a secret garden")["taskId"]
    unknown = {"code": -32602, "message": NOT_FOUND}
    for method in ("tasks/get", "tasks/cancel", "tasks/update"):
        assert bob.task(method, task_id)["error"] == unknown, method
        assert bob.task(method, "f" * 32)["error"] == unknown, method
    bob_session = HandshakeHttp(served.mcp, token=BOB)
    for method in ("tasks/get", "tasks/result", "tasks/cancel"):
        assert bob_session.request(method, {"taskId": task_id})[0]["error"] == unknown, method
    assert task_id not in json.dumps(bob_session.request("tasks/list")[0])
    # alice's own, in either era: the same task, not cancelled by anything bob did
    final, _ = modern_final(alice, task_id)
    assert final["status"] == "completed"
    assert HandshakeHttp(served.mcp, token=ALICE).request("tasks/get", {"taskId": task_id})[0]["status"] == "completed"


# --- kill -9 ---------------------------------------------------------------------------------------


def test_a_task_answered_before_a_kill_9_gives_its_result_after_a_restart(slow, tmp_path):
    env = server_env(
        slow,
        MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}",
        MJ_MCP_TASK_WAIT_SECONDS="0.3",
        MJ_MCP_CACHE_DIR=str(tmp_path / "cache"),
    )
    port = free_port()
    [first] = Replica.start((env, tmp_path / "first.log", port))
    try:
        created = ModernHttp(first.mcp).call("imagine", prompt="a lighthouse in a gale")
        assert created["resultType"] == "task"
        legacy = HandshakeHttp(first.mcp).request(
            "tools/call", {"name": "imagine", "arguments": {"prompt": "a ship in a bottle"}, "task": {}}
        )[0]["task"]
        # 2025-11-25 answers as soon as the job is stored: killed once its request has reached upstream (a
        # job killed before that may never have been sent, and fails saying so)
        until(lambda: len(imagine_requests(slow)) == 2, "the second submit")
    finally:
        first.kill9()
    [second] = Replica.start((env, tmp_path / "second.log", port))
    try:
        final, _ = modern_final(ModernHttp(second.mcp), created["taskId"])
        assert final["status"] == "completed" and final["result"]["structuredContent"]["name"] == "lighthouse-gale"
        session = HandshakeHttp(second.mcp)
        result, _ = session.request("tasks/result", {"taskId": legacy["taskId"]})
        assert result["structuredContent"]["status"] == "completed"
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": legacy["taskId"]}
        # each job was submitted once, however many processes followed it
        assert len(imagine_requests(slow)) == 2
    finally:
        second.stop()
