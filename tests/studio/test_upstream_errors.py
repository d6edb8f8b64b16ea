"""Upstream's refusals become errors the model can act on (the code, the message, the next step), and
only what provably started nothing is sent again; through the studio against the simulator's faults."""

from __future__ import annotations

import pytest
from support import imagine_requests

from mj_mcp import errors
from mj_mcp.studio.imagine import imagine

pytestmark = pytest.mark.anyio

IMAGINE = "/midjourney/imagine"


def sent(sim, prompt: str) -> list[dict]:
    """The imagine requests of ``prompt`` the simulator took."""
    return [r for r in imagine_requests(sim) if r["body"].get("prompt") == prompt]


@pytest.mark.parametrize(
    ("fault", "cls", "code", "words"),
    [
        ("401", errors.AuthError, "invalid_token", "ACEDATACLOUD_API_TOKEN"),
        ("403_moderation", errors.ModerationError, "forbidden", "rephrase"),
        ("403_used_up", errors.BalanceError, "used_up", "balance"),
        ("500", errors.ServerError, "api_error", "Try again later"),
        ("504", errors.UpstreamTimeout, "timeout", "get_task"),
        ("502_html", errors.ServerError, "http_502", "non-JSON reply"),
        ("400_bad_request", errors.BadRequest, "bad_request", "Fix the request"),
    ],
)
async def test_a_refusal_is_an_error_with_its_code_message_and_next_step(call, fresh_sim, fault, cls, code, words):
    fresh_sim.state.inject(IMAGINE, fault, times=1)
    with pytest.raises(errors.UpstreamError) as refused:
        await imagine(call, prompt="a quiet lake")
    assert type(refused.value) is cls and refused.value.code == code and words in str(refused.value)
    # a 5xx or timeout on a submit is reported, not resent: it may follow the task's creation. Counted by
    # prompt: the simulator is shared, and a request another test's server left in flight may land now.
    assert len(sent(fresh_sim, "a quiet lake")) == 1, [r["body"] for r in imagine_requests(fresh_sim)]
    # nothing was created upstream, so the name is free for the next try
    assert (await imagine(call, prompt="a quiet lake")).name == "quiet-lake"


async def test_a_persistent_429_gives_up_after_the_retries(call, fresh_sim):
    fresh_sim.state.inject(IMAGINE, "429", times=10)
    with pytest.raises(errors.RateLimited) as limited:
        await imagine(call, prompt="a quiet lake")
    assert "wait" in limited.value.next_step
    # the first try and MJ_MCP_RETRIES=2: a rejection started nothing, so it is sent again
    assert len(sent(fresh_sim, "a quiet lake")) == 3, [r["body"] for r in imagine_requests(fresh_sim)]
