"""Upstream errors reach the model as tool errors, in both protocol eras: its words verbatim, a failed
task with its record, and the token in no output or log. (Which fault becomes which error, and what is
sent again, is the studio tier's: tests/studio/test_upstream_errors.py.)"""

from __future__ import annotations

import logging

import pytest
from conftest import TOKEN
from support import call

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"


async def test_the_upstream_message_reaches_the_model_verbatim(client, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "401", times=1)
    result, _, text, _ = await call(client, "imagine", prompt="a quiet lake")
    assert "upstream 401 invalid_token: The specified token is invalid or wrong" in text


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
