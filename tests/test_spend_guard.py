"""The spend guard (MJ_MCP_CONFIRM): a job of a guarded kind is asked about, where the client can ask the
person, before anything is stored or sent; a refusal sends nothing and says so; a client without
elicitation gets the job as before. Through the SDK client in both eras: elicitation/create on the
handshake era's back-channel, input_required rounds on 2026-07-28 (the client drives them itself).
The guard is built on the operation table and the action catalogue, tested here on upscale_4x; videos
are guarded by default (their kind, whichever operation makes them)."""

from __future__ import annotations

import subprocess

import pytest
from conftest import settings_for
from mcp import Client
from mcp.types import ElicitResult
from support import SERVER, imagine_requests, server_env

from mj_mcp.core.kinds import Kind
from mj_mcp.errors import SettingsError
from mj_mcp.records import Record
from mj_mcp.server import build_server
from mj_mcp.settings import Settings
from mj_mcp.studio import Plan, consent
from mj_mcp.upstream import requests as endpoints
from mj_mcp.upstream.requests import ImagineBody

pytestmark = pytest.mark.anyio
QUESTION = "Upscale (4x) fox-snow.u2: one upscaled image, on the simulator (nothing is billed). Go ahead?"


class Person:
    """Answers every question the same way, and remembers them."""

    def __init__(self, action: str) -> None:
        self.action, self.asked = action, []

    async def __call__(self, context, params):
        self.asked.append(params.message)
        return ElicitResult(action=self.action, content={} if self.action == "accept" else None)


async def upscaled_source(client) -> None:
    await client.call_tool("imagine", {"prompt": "a red fox in snow"})
    await client.call_tool("apply_action", {"image": "fox-snow", "action": "upscale2"})


@pytest.fixture(params=["auto", "legacy"])
def era(request):
    return request.param


async def test_a_guarded_job_is_asked_about_and_sent_once_the_person_agrees(era, fresh_sim):
    person = Person("accept")
    server = build_server(settings_for(fresh_sim, confirm=["upscale_4x"]))
    async with Client(server, mode=era, elicitation_callback=person) as client:
        await upscaled_source(client)
        assert person.asked == []  # a grid and a U2 are not guarded
        sent = len(imagine_requests(fresh_sim))
        result = await client.call_tool("apply_action", {"image": "fox-snow.u2", "action": "upscale_4x"})
    assert person.asked == [QUESTION]
    assert not result.is_error and result.structured_content["name"] == "fox-snow.u2.4x"
    assert len(imagine_requests(fresh_sim)) == sent + 1


async def test_a_refusal_sends_nothing_keeps_nothing_and_says_so(era, fresh_sim):
    person = Person("decline")
    server = build_server(settings_for(fresh_sim, confirm=["upscale_4x"]))
    async with Client(server, mode=era, elicitation_callback=person) as client:
        await upscaled_source(client)
        sent = len(imagine_requests(fresh_sim))
        result = await client.call_tool("apply_action", {"image": "fox-snow.u2", "action": "upscale_4x"})
        text = result.content[0].text
        assert result.is_error and person.asked == [QUESTION]
        assert "not sent: the person declined when asked (Upscale (4x) fox-snow.u2" in text
        assert text.endswith("Nothing was sent upstream.")
        assert len(imagine_requests(fresh_sim)) == sent
        listed = await client.call_tool("list_images", {})
        assert [i["name"] for i in listed.structured_content["images"]] == ["fox-snow.u2", "fox-snow"]
        # the person cancelling the question is no too
        person.action = "cancel"
        again = await client.call_tool("apply_action", {"image": "fox-snow.u2", "action": "upscale_4x"})
        assert again.is_error and len(imagine_requests(fresh_sim)) == sent


async def test_a_client_that_cannot_ask_gets_the_job_as_before(era, fresh_sim):
    server = build_server(settings_for(fresh_sim, confirm=["upscale_4x"]))
    async with Client(server, mode=era) as client:
        await upscaled_source(client)
        sent = len(imagine_requests(fresh_sim))
        result = await client.call_tool("apply_action", {"image": "fox-snow.u2", "action": "upscale_4x"})
    assert not result.is_error and result.structured_content["name"] == "fox-snow.u2.4x"
    assert len(imagine_requests(fresh_sim)) == sent + 1


async def test_by_default_only_videos_are_asked_about(era, fresh_sim):
    person = Person("decline")
    settings = settings_for(fresh_sim, confirm=Settings().confirm)
    async with Client(build_server(settings), mode=era, elicitation_callback=person) as client:
        await upscaled_source(client)
        result = await client.call_tool("apply_action", {"image": "fox-snow.u2", "action": "upscale_4x"})
    assert not result.is_error and person.asked == []


def test_what_is_guarded_follows_the_kind_an_operation_makes():
    """Any operation that makes videos is asked about by default, whatever its tool or endpoint; a name
    in MJ_MCP_CONFIRM may be a kind, an action or an operation of the table."""
    videos = Plan(
        Record(name="fox-snow.u2.video", kind=Kind.VIDEOS, parent="fox-snow.u2", action="generate"),
        endpoints.VIDEOS,
        ImagineBody(prompt="x"),
        summary="four 5-second 720p videos",
    )
    assert consent.guarded(Settings().confirm, videos, tool=None)
    assert consent.question(videos, None, simulated=False).endswith(
        "fox-snow.u2: four 5-second 720p videos, billed to your AceDataCloud account. Go ahead?"
    )
    grid = Plan(Record(name="red-fox", kind=Kind.GRID, prompt="a red fox"), endpoints.IMAGINE, ImagineBody(prompt="x"))
    assert not consent.guarded(Settings().confirm, grid, tool="imagine")
    assert consent.guarded(["imagine"], grid, tool="imagine") and consent.guarded(["grid"], grid, tool="imagine")
    assert consent.question(grid, "imagine", simulated=False) == (
        'Imagine "a red fox": a 2x2 grid, billed to your AceDataCloud account. Go ahead?'
    )


def test_a_name_no_job_has_stops_the_start(tmp_path):
    with pytest.raises(SettingsError, match="MJ_MCP_CONFIRM names video, which no job"):
        consent.check(["video"])
    proc = subprocess.run(
        [*SERVER],
        env=server_env(MJ_MCP_CONFIRM="upscale_8x"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "MJ_MCP_CONFIRM names upscale_8x" in proc.stderr and proc.stdout == ""
