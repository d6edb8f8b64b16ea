"""Upstream error shapes and faults become tool errors the model can act on; nothing is billed twice;
the token appears in no output or log."""

from __future__ import annotations

import logging

import pytest

from conftest import TOKEN
from support import call, imagine_requests

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ("401", "invalid_token", "ACEDATACLOUD_API_TOKEN"),
        ("403_moderation", "forbidden", "rephrase"),
        ("403_used_up", "used_up", "balance"),
        ("500", "api_error", "Try again later"),
        ("504", "timeout", "get_task"),
        ("502_html", "http_502", "non-JSON reply"),
        ("400_bad_request", "bad_request", "Fix the request"),
    ],
)
async def test_refusals_become_tool_errors_with_code_message_and_next_step(client, fresh_sim, fault, code, words):
    fresh_sim.state.inject(IMAGINE, fault, times=1)
    result, sc, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert result.is_error and sc is None
    assert code in text and words in text, text
    assert "Traceback" not in text and TOKEN not in text
    assert len(imagine_requests(fresh_sim)) == 1  # a 5xx or timeout on a submit is reported, not retried
    # nothing was created upstream, so the name is free for the next try
    result, sc, _, _ = await call(client, "imagine", prompt="a quiet lake")
    assert not result.is_error and sc["name"] == "quiet-lake"


async def test_the_upstream_message_reaches_the_model_verbatim(client, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "401", times=1)
    result, _, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert "upstream 401 invalid_token: The specified token is invalid or wrong" in text


async def test_persistent_429_gives_up_after_the_retries(client, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "429", times=10)
    result, _, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert result.is_error and "too_many_requests" in text and "wait" in text
    assert len(imagine_requests(fresh_sim)) == 3  # the first try and MJ_MCP_RETRIES=2


async def test_a_failed_task_is_recorded_as_failed_with_its_error(client, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "task_fail", times=1, at_progress=35, code="api_error", message="fetch failed")
    result, sc, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert result.is_error
    assert "fetch failed" in text and "quiet-lake" in text
    assert sc["status"] == "failed" and sc["error"] == {"code": "api_error", "message": "fetch failed"}
    assert sc["task_id"]
    result, sc, text, _ = await call(client, "get_task", ref="quiet-lake")
    assert sc["status"] == "failed" and "failed" in text
    result, _, text, _ = await call(client, "apply_action", image="quiet-lake", action="upscale1")
    assert result.is_error and "no image to act on" in text


async def test_the_token_never_appears_in_results_or_logs(client, fresh_sim, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    quoting = f"error_string;status=401;message=token {TOKEN} is not valid"  # upstream quoting our token
    faults = ("401", "500", "stream_cut", "task_fail", quoting, f"stream_error_line;message=bad token {TOKEN}")
    for n, fault in enumerate(faults):
        fresh_sim.state.inject(IMAGINE, fault, times=1)
        result, sc, text, _ = await call(client, "imagine", prompt=f"a quiet lake number {n}")
        texts.append(text + repr(sc))
    assert "***" in texts[4] and "***" in texts[5]  # upstream's words reach the model, redacted
    texts.append(repr((await client.list_tools()).tools))
    assert all(TOKEN not in t for t in texts)
    assert TOKEN not in caplog.text
    from mj_mcp.settings import Settings

    settings = Settings.from_env({"ACEDATACLOUD_API_TOKEN": TOKEN})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings) and TOKEN not in settings.model_dump_json()
