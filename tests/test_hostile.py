"""Hostile input and bad days (issue 9), through the real server against an odd upstream.

The odd upstream is a real HTTP server on loopback whose replies each test scripts: task records with
fields of the wrong type, a token quoted back in every escaping encoders use, a finished image too
large to decode. The simulator is not used: these are replies it would never send.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote as percent

import httpx
import pytest
from conftest import settings_for
from mcp import Client
from PIL import Image
from pydantic import SecretStr, TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support import PATIENCE, ThreadedApp, call, eventually, imagine_requests

from mj_mcp import errors
from mj_mcp.core import masks
from mj_mcp.core.redact import Redactor
from mj_mcp.errors import InvalidInput
from mj_mcp.server import build_server
from mj_mcp.settings import Settings

SHAPES = TypeAdapter(list[masks.Shape])

pytestmark = pytest.mark.anyio

# A token with the characters encoders escape: "/" (\/), "+" (\u002B in .NET), "<>&" (\u003c in Go), "=".
SECRET = "mj/Tok+en=9<x>&y/Zq2"
TASK = "7d1c-odd-task"
ACTIONS = [
    "upscale1",
    "upscale2",
    "upscale3",
    "upscale4",
    "reroll",
    "variation1",
    "variation2",
    "variation3",
    "variation4",
]


@functools.cache
def png(width: int, height: int, *, rgba: bool = False) -> bytes:
    """A valid black PNG of any size (1-bit grey, or 8-bit RGBA), built without allocating its
    pixels: rows of zeros compress about 1000:1."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    depth, colour, row = (8, 6, bytes(1 + 4 * width)) if rgba else (1, 0, bytes(1 + (width + 7) // 8))
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
        + chunk(b"IDAT", body)
        + chunk(b"IEND", b"")
    )


class OddUpstream:
    """What each endpoint answers: ``imagine(body)`` and ``tasks(body)`` return a Response; ``images``
    maps a path under /img/ to bytes. Tests replace them; ``tasks_seen`` counts the lookups."""

    def __init__(self) -> None:
        self.imagine: Callable[[dict], Response] = lambda body: ndjson(line(progress=0), final())
        self.videos: Callable[[dict], Response] = lambda body: Response(status_code=404)
        self.tasks: Callable[[dict], Response] = lambda body: JSONResponse({})
        self.images: dict[str, bytes] = {"grid.png": png(64, 64)}
        self.tasks_seen = 0
        self.base_url = ""

    def app(self) -> Starlette:
        async def imagine(request: Request) -> Response:
            return self.imagine(await request.json())

        async def tasks(request: Request) -> Response:
            self.tasks_seen += 1
            return self.tasks(await request.json())

        async def videos(request: Request) -> Response:
            return self.videos(await request.json())

        async def image(request: Request) -> Response:
            data = self.images.get(request.path_params["name"])
            return Response(data, media_type="image/png") if data else Response(status_code=404)

        return Starlette(
            routes=[
                Route("/midjourney/imagine", imagine, methods=["POST"]),
                Route("/midjourney/tasks", tasks, methods=["POST"]),
                Route("/midjourney/videos", videos, methods=["POST"]),
                Route("/img/{name}", image),
            ]
        )


def ndjson(*lines: dict | str) -> Response:
    text = "\r\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    return Response(text + "\r\n", media_type="application/x-ndjson")


def line(**fields) -> dict:
    return {"task_id": TASK, "success": True} | fields


def final(odd: OddUpstream | None = None, image: str = "grid.png", **fields) -> dict:
    url = f"{odd.base_url if odd else ''}/img/{image}"
    return line(
        **{
            "progress": 100,
            "image_id": "1234567890123",
            "image_url": url,
            "raw_image_url": url,
            "image_width": 1024,
            "image_height": 1024,
            "raw_image_width": 2048,
            "raw_image_height": 2048,
            "actions": ACTIONS,
        }
        | fields
    )


@pytest.fixture(scope="module")
def upstream_server():
    odd = OddUpstream()
    with ThreadedApp(odd.app()) as server:
        odd.base_url = server.base_url
        yield odd


@pytest.fixture
def odd(upstream_server):
    """The odd upstream with its default script: every test sets what it needs."""
    base_url = upstream_server.base_url
    upstream_server.__init__()
    upstream_server.base_url = base_url
    return upstream_server


def settings(base_url: str, tmp_path, **overrides) -> Settings:
    values = dict(
        api_token=SecretStr(SECRET),
        base_url=base_url,
        heartbeat_s=0.05,
        retry_backoff_s=0.01,
        poll_interval_s=0.02,
        timeout_s=PATIENCE,
        retries=0,
        cache_dir=tmp_path / "cache",
        export_dir=tmp_path / "exports",
        store="memory",
    )
    values.update(overrides)
    return Settings(**values)


def assert_secret_nowhere(*texts: str) -> None:
    """Not the token, nor any spelling of it (the scan matches every escaping the redactor knows)."""
    scan = Redactor([SECRET])
    for text in texts:
        assert SECRET not in text
        assert scan.text(text) == text, f"a spelling of the token: {scan.text(text)[:200]}"


# --- the token never leaks ---------------------------------------------------------------------


def escaped_forms(secret: str) -> dict[str, str]:
    """The token as encoders spell it inside a JSON string (already escaped: put it in raw JSON text)."""
    return {
        "u-escaped": "".join(f"\\u{ord(c):04x}" for c in secret),
        "slash-escaped": secret.replace("/", "\\/"),
        "dotnet": secret.replace("+", "\\u002B").replace("<", "\\u003C").replace(">", "\\u003E"),
        "double-encoded": json.dumps(json.dumps({"token": secret}))[1:-1],
    }


def raw_json(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="application/json")


@pytest.mark.parametrize("form", ["u-escaped", "slash-escaped", "dotnet", "double-encoded"])
async def test_a_token_echoed_in_any_escaping_reaches_no_result_or_log(odd, tmp_path, caplog, capfd, form):
    caplog.set_level(logging.DEBUG)
    echoed = escaped_forms(SECRET)[form]
    texts = []
    async with Client(build_server(settings(odd.base_url, tmp_path)), mode="legacy") as c:
        # an error reply quoting the token
        refused = '{"error": {"code": "invalid_token", "message": "token %s is wrong"}}' % echoed
        odd.imagine = lambda body: raw_json(401, refused)
        r, _, text, _ = await call(c, "imagine", prompt="a quiet lake")
        assert r.is_error and "invalid_token" in text
        texts.append(r.model_dump_json())
        # a stream line that fails the task, quoting it
        odd.imagine = lambda body: ndjson(
            line(progress=0),
            '{"task_id": "%s", "success": false, "error": '
            '{"code": "bad_request", "message": "bad auth %s"}}' % (TASK, echoed),
        )
        r, _, text, _ = await call(c, "imagine", prompt="a quiet pond")
        assert r.is_error and "bad_request" in text
        texts.append(r.model_dump_json())
        # a task record whose request quotes it: the adopted record's prompt is structured content
        record = '{"id": "adopted-task", "request": {"prompt": "a fox %s"}, "response": %s}' % (
            echoed,
            json.dumps(final(odd, task_id="adopted-task")),
        )
        odd.tasks = lambda body: raw_json(200, record)
        r, sc, text, _ = await call(c, "get_task", ref="adopted-task")
        assert not r.is_error and sc["prompt"].startswith("a fox ") and "***" in sc["prompt"], text
        texts.append(r.model_dump_json())
        # a record that does not validate, with the token in the value at fault
        odd.tasks = lambda body: raw_json(200, '{"id": ["%s"]}' % echoed)
        r, _, text, _ = await call(c, "get_task", ref="9d2f-other-task")
        assert r.is_error and "unreadable" in text and "Error executing tool" not in text, text
        texts.append(r.model_dump_json())
    out, err = capfd.readouterr()
    assert_secret_nowhere(*texts, caplog.text, out, err)


async def test_a_token_in_a_non_json_error_page_is_masked_raw_and_percent_encoded(odd, tmp_path, caplog):
    page = f"<html>502 Bad Gateway for Bearer {SECRET} ({percent(SECRET, safe='')})</html>"
    odd.imagine = lambda body: Response(page, status_code=502, media_type="text/html")
    async with Client(build_server(settings(odd.base_url, tmp_path))) as c:
        r, _, text, _ = await call(c, "imagine", prompt="a quiet lake")
    assert r.is_error and "non-JSON reply" in text and "***" in text
    assert_secret_nowhere(r.model_dump_json(), caplog.text)


def test_the_log_filter_masks_messages_arguments_and_tracebacks():
    redactor = Redactor([SECRET, "client-token-0123"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    redactor.install(handler)
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    try:
        log.warning("token %s and %r", SECRET, {"t": "client-token-0123"})
        try:
            raise ValueError(f"input_value='{SECRET}'")
        except ValueError:
            log.exception("validation failed")
        log.warning("escaped %s", SECRET.replace("/", "\\/"))
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "ValueError" in text and text.count("***") == 4
    assert_secret_nowhere(text)
    assert "client-token-0123" not in text


def test_short_stand_in_tokens_are_not_masked():
    assert Redactor(["t"]).text("the test") == "the test"


# --- a paid image is never lost ----------------------------------------------------------------

ODD_RECORDS = [
    '{"id": "%s", "response": {"task_id": "%s", "success": true, "progress": "35%%", "actions": null}}',
    '{"id": "%s", "response": {"task_id": "%s", "success": true, "progress": 50, "image_width": "1024px", '
    '"image_url": ["x"]}}',
    '{"id": "%s", "response": []}',
    '{"id": {"nested": "%s"}, "response": "%s"}',  # unreadable: skipped, the poller goes on
    "<html>200 but not JSON %s %s</html>",
]


async def test_odd_task_records_while_polling_do_not_fail_the_job(odd, tmp_path):
    """The stream drops after naming the task; every odd record then read is skipped or read in part,
    and the job completes when a readable final record comes."""
    odd.imagine = lambda body: ndjson(line(progress=0))  # no final line: the job polls
    served = []

    def tasks(body):
        n = len(served)
        served.append(n)
        if n < len(ODD_RECORDS):
            return raw_json(200, ODD_RECORDS[n] % (TASK, TASK))
        return JSONResponse({"id": TASK, "response": final(odd, actions=None, image_width="1024px", progress="100%")})

    odd.tasks = tasks
    async with Client(build_server(settings(odd.base_url, tmp_path))) as c:
        r, sc, text, _ = await call(c, "imagine", prompt="a patient heron", wait_seconds=PATIENCE)
    assert not r.is_error, text
    assert sc["status"] == "completed" and sc["width"] == 1024 and sc["actions"] == [], sc
    assert len(served) > len(ODD_RECORDS)


async def test_an_odd_final_stream_line_is_read_not_skipped(odd, tmp_path):
    odd.imagine = lambda body: ndjson(
        line(progress="35%", actions=None), final(odd, progress="100", raw_image_width="2048px", actions=None)
    )
    async with Client(build_server(settings(odd.base_url, tmp_path))) as c:
        r, sc, text, _ = await call(c, "imagine", prompt="a patient heron")
    assert not r.is_error, text
    assert sc["status"] == "completed" and sc["raw_width"] == 2048 and odd.tasks_seen == 0


async def test_get_task_on_an_unreadable_record_says_so_and_the_task_is_asked_again(odd, tmp_path):
    odd.tasks = lambda body: raw_json(200, '{"id": [1, 2], "response": {}}')
    async with Client(build_server(settings(odd.base_url, tmp_path))) as c:
        r, _, text, _ = await call(c, "get_task", ref=TASK)
        assert r.is_error and "unreadable" in text and "get_task again" in text, text
        seen = odd.tasks_seen
        odd.tasks = lambda body: JSONResponse({"id": TASK, "response": final(odd)})
        r, sc, text, _ = await call(c, "get_task", ref=TASK)
    assert not r.is_error and sc["status"] == "completed", text
    assert odd.tasks_seen > seen


async def test_an_image_too_large_to_decode_still_answers_with_its_record(odd, tmp_path):
    """Over twice Pillow's decompression-bomb limit (20000 x 10000, 25 KB of PNG): the thumbnail is
    skipped with one line, the paid image's record is the result."""
    odd.images["bomb.png"] = png(20000, 10000)
    odd.images["junk.png"] = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    for image in ("bomb.png", "junk.png"):
        odd.imagine = lambda body, image=image: ndjson(final(odd, image=image))
        async with Client(build_server(settings(odd.base_url, tmp_path))) as c:
            r, sc, text, _ = await call(c, "imagine", prompt=f"an enormous {image[:-4]}")
        assert not r.is_error, text
        assert sc["status"] == "completed" and sc["image_id"] == "1234567890123"
        assert [c.type for c in r.content] == ["text", "resource_link"]
        assert "preview unavailable: " in text, text


async def test_clips_that_do_not_decode_still_answer_with_the_video_and_its_links(odd, tmp_path):
    """A CDN's clips are bytes like any: one cut short, one a PNG, one with a frame over the bound, one
    fine. The paid video is the result with a link per clip; the poster shows the one that decodes and
    says why the others are not on it; a clip that is not an MP4 is never served as one."""
    from mj_mcp.sim.clips import encode

    good = encode(iter([Image.new("RGB", (64, 48), (0, 160, 0))] * 4), (320, 240))
    odd.images.update(
        {
            "c1.mp4": good[: len(good) // 3],
            "c2.mp4": png(32, 32),
            "c3.mp4": encode(iter([Image.new("RGB", (64, 36))]), (4096, 2304)),
            "c4.mp4": good,
        }
    )
    clips = [f"{odd.base_url}/img/c{n}.mp4" for n in range(1, 5)]
    video = line(progress=100, video_id="1751816807896311", video_urls=clips, image_url=f"{odd.base_url}/img/grid.png")
    odd.videos = lambda body: ndjson(line(progress=0), video)
    async with Client(build_server(settings(odd.base_url, tmp_path, preview_px=512))) as c:
        r, sc, text, _ = await call(c, "animate", image="https://cdn.example/a.png", prompt="it moves")
        assert not r.is_error and sc["status"] == "completed" and len(sc["clips"]) == 4, text
        assert [b.type for b in r.content] == ["text", "image", *["resource_link"] * 4]
        assert "not on the poster: clip 1: " in text and "clip 2: download is not an MP4 clip (image/png)" in text
        assert "clip 3: " in text and "clip 4" not in text.split("not on the poster")[1]
        with pytest.raises(Exception, match="not an MP4"):
            await c.read_resource(sc["clips"][1])
        read = await c.read_resource(sc["clips"][3])
        assert base64.b64decode(read.contents[0].blob) == good
    # none decodes: no poster, one line why, the record and its links all the same
    odd.images.update({"c4.mp4": b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64})
    async with Client(build_server(settings(odd.base_url, tmp_path / "again", preview_px=512))) as c:
        r, sc, text, _ = await call(c, "animate", image="https://cdn.example/a.png", prompt="it moves")
        assert not r.is_error and [b.type for b in r.content] == ["text", *["resource_link"] * 4], text
        assert "poster unavailable: " in text


# --- the cache checks what it serves ------------------------------------------------------------


def damage(file: Path, how: str, other: Path) -> None:
    data = file.read_bytes()
    if how == "truncated":
        file.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        file.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif how == "replaced":
        file.write_bytes(png(64, 64))  # a valid picture, not the one we wrote
    else:  # another cached image's file, trailer and all
        file.write_bytes(other.read_bytes())


@pytest.mark.parametrize("how", ["truncated", "flipped", "replaced", "swapped"])
async def test_a_damaged_cache_file_is_fetched_again_or_reported_gone(fresh_sim, tmp_path, how):
    cache = tmp_path / "cache"
    settings = settings_for(fresh_sim, cache_dir=cache, export_dir=tmp_path / "out", preview_px=512)
    async with Client(build_server(settings)) as c:
        _, other, _, _ = await call(c, "imagine", prompt="a paper boat")
        _, sc, _, _ = await call(c, "imagine", prompt="a red fox in snow")
        served = httpx.get(sc["raw_image_url"], timeout=PATIENCE).content
        # Both are kept in the background from their results on.
        [file] = await eventually(lambda: list(cache.glob(f"{sc['image_id']}-*.png")), "the fox kept")
        [other_file] = await eventually(lambda: list(cache.glob(f"{other['image_id']}-*.png")), "the boat kept")
        damage(file, how, other_file)
        contents = (await c.read_resource(sc["uri"])).contents
        assert base64.b64decode(contents[0].blob) == served  # dropped, fetched again, cached again
        assert file.exists()
        damage(file, how, other_file)
        fresh_sim.state.configure(serve_images=False)  # the CDN link has expired
        with pytest.raises(Exception, match="is gone"):
            await c.read_resource(sc["uri"])
        r, _, text, _ = await call(c, "export_image", image="fox-snow", path="fox.png")
        assert r.is_error and "is gone" in text and "Make it again" in text, text
        assert not (tmp_path / "out" / "fox.png").exists()


# --- small inputs, huge costs -------------------------------------------------------------------


async def test_a_mask_far_larger_than_the_image_is_refused_before_decoding(client, fresh_sim):
    """7999 x 8000 RGBA, 250 KB of PNG, under the 64-megapixel cap: decoding it cost ~1 GB."""
    upload = png(7999, 8000, rgba=True)
    assert len(upload) < 300_000
    await call(client, "imagine", prompt="a cat on a sofa")
    await call(client, "apply_action", image="cat-sofa", action="upscale1")
    before = len(imagine_requests(fresh_sim))
    r, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", mask=base64.b64encode(upload).decode())
    assert r.is_error and "7999x8000, far larger than the image (1024x1024)" in text, text
    assert len(imagine_requests(fresh_sim)) == before
    with pytest.raises(InvalidInput, match="far larger"):
        masks.build(mask=base64.b64encode(upload).decode(), width=1024, height=1024)


async def test_a_flood_of_maximal_polygons_is_refused_for_its_cost(client, fresh_sim):
    """Sixteen 64-point polygons whose every edge spans the image: seconds of CPU to draw."""
    zigzag = {"shape": "polygon", "points": [[i / 63, float(i % 2)] for i in range(64)]}
    await call(client, "imagine", prompt="a cat on a sofa")
    await call(client, "apply_action", image="cat-sofa", action="upscale1")
    before = len(imagine_requests(fresh_sim))
    r, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", region=[zigzag] * 16)
    assert r.is_error and "too detailed" in text and "fewer" in text, text
    assert len(imagine_requests(fresh_sim)) == before
    r, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", region=zigzag)  # one alone is fine
    assert not r.is_error, text


def test_build_makes_the_mask_and_its_coverage_or_refuses():
    encoded, covered = masks.build(
        region=SHAPES.validate_python([{"shape": "rect", "box": [0, 0, 0.5, 1]}]), width=64, height=32
    )
    assert covered == 0.5 and Image.open(io.BytesIO(base64.b64decode(encoded))).size == (64, 32)
    rect = SHAPES.validate_python([{"shape": "rect", "box": [0, 0, 1, 1]}])
    with pytest.raises(InvalidInput, match="exactly one"):
        masks.build(width=64, height=32)
    with pytest.raises(InvalidInput, match="at most 8192 a side"):
        masks.build(region=rect, width=100_000, height=100_000)  # a size upstream claimed
    with pytest.raises(InvalidInput, match="covers no pixel"):
        tiny = SHAPES.validate_python([{"shape": "rect", "box": [0, 0, 0.001, 0.001]}])
        masks.build(region=tiny, width=64, height=32)


async def test_errors_quote_a_short_prefix_of_a_huge_input(client):
    flag = "--" + "x" * 3000
    r, _, text, _ = await call(client, "imagine", prompt=f"a cat {flag} -{'y' * 500}")
    assert r.is_error and "unknown flag '--xxxx" in text and "3,002 characters" in text, text
    assert len(text) < 400
    assert errors.quote("short") == "'short'" and errors.quote("a\nb") == "'a\\nb'"
    assert errors.quote("z" * 100, limit=10) == "'zzzzzzzzzz'… (100 characters)"


async def test_an_image_prompt_url_is_one_bounded_token(client, fresh_sim):
    """A URL given in ``images`` is composed into the prompt: it may neither smuggle a flag past the
    prompt's checks nor carry a huge record into the store."""
    for ref in ("https://example.com/a.png --badflag", "https://example.com/" + "a" * 200_000):
        for tool, args in (
            ("imagine", {"prompt": "a cat", "images": [ref]}),
            ("blend", {"images": [ref, "https://example.com/b.png"]}),
        ):
            r, _, text, _ = await call(client, tool, **args)
            assert r.is_error and "one https URL" in text and len(text) < 400, text
    assert imagine_requests(fresh_sim) == []
