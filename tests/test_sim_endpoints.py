"""The simulator's endpoints beyond /imagine, over real loopback HTTP: describe, edits, seed, shorten,
translate and videos (generate and extend), each in every mode it has, with its errors, faults, task
records of their type, callbacks, real MP4 clips decoded back, and what an embedded simulator keeps
across a restart."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import av
import httpx
import pytest
from conftest import TOKEN
from PIL import Image, ImageChops, ImageOps, ImageStat
from test_sim import Receiver, mask_b64

from mj_mcp.sim import PUBLIC_ORIGIN, SimConfig, SimServer

AUTH = {"authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "accept": "application/x-ndjson"}
IMAGINE, TASKS = "/midjourney/imagine", "/midjourney/tasks"
EDITS, VIDEOS, DESCRIBE = "/midjourney/edits", "/midjourney/videos", "/midjourney/describe"
SEED, SHORTEN, TRANSLATE = "/midjourney/seed", "/midjourney/shorten", "/midjourney/translate"
EDIT_KEYS = [
    "sub_image_urls",
    "image_url",
    "image_width",
    "image_height",
    "raw_image_url",
    "raw_image_width",
    "raw_image_height",
    "progress",
    "image_id",
    "task_id",
    "success",
]
VIDEO_KEYS = ["image_url", "image_width", "image_height", "progress", "video_id", "video_urls", "task_id", "success"]
# The shorten guide's own example (docs/upstream.md, "/midjourney/shorten").
LONG_PROMPT = (
    "a serene mountain lake at sunrise, mist rising from the water, towering pine trees on the shore, "
    "golden hour lighting, ultra detailed, cinematic, 35mm film photography style, masterpiece "
    "--ar 16:9 --v 6"
)
HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_client():
    yield
    HTTP.close()


@pytest.fixture
def live(fresh_sim):
    """The shared simulator, reset, brisk: a grid in about 20 ms, a video in about 70 ms."""
    fresh_sim.state.configure(time_scale=0.002)
    return fresh_sim


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def post(sim, path, body, headers=AUTH) -> httpx.Response:
    return HTTP.post(sim.base_url + path, json=body, headers=headers)


def ok(sim, path, body, headers=AUTH) -> dict:
    r = post(sim, path, body, headers)
    assert r.status_code == 200, r.text
    return r.json()


def refused(sim, path, body, status=400, code="bad_request", headers=AUTH) -> str:
    """The error message of a refusal, after checking upstream's error shape."""
    r = post(sim, path, body, headers)
    payload = r.json()
    assert r.status_code == status and payload["error"]["code"] == code, (path, body, r.text)
    assert payload["success"] is False and len(payload["trace_id"]) == 36 and payload["error"]["message"]
    return payload["error"]["message"]


def retrieve(sim, task_id) -> dict:
    return ok(sim, TASKS, {"action": "retrieve", "id": task_id})


def until_done(sim, task_id, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = retrieve(sim, task_id)
        if "response" in rec:
            return rec
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} did not finish")


def stream(sim, path, body, *, cut=False) -> list[dict]:
    """The complete lines of an ndjson reply; ``cut``: the connection is expected to break off."""
    raw = bytearray()
    try:
        with HTTP.stream("POST", sim.base_url + path, json=body, headers=NDJSON) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
            for chunk in r.iter_raw():
                raw += chunk
        assert not cut, "the stream was not cut"
    except httpx.RemoteProtocolError:
        assert cut, "the stream broke off"
    return [json.loads(line) for line in bytes(raw).split(b"\r\n") if line.strip()]


def get(url: str) -> bytes:
    r = HTTP.get(url)
    assert r.status_code == 200, (url, r.text)
    return r.content


def png(url: str) -> Image.Image:
    img = Image.open(io.BytesIO(get(url)))
    img.load()
    return img.convert("RGB")


def frames(data: bytes) -> list[Image.Image]:
    """Every frame of an MP4, decoded with the library that encoded it."""
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        return [f.to_image() for f in container.decode(video=0)]


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def grid(sim, prompt="a red fox in snow", **extra) -> dict:
    return ok(sim, IMAGINE, {"prompt": prompt, **extra})


# --- describe -------------------------------------------------------------------------------------


def test_describe_answers_four_prompts_and_keeps_a_task_of_type_describe(live):
    wide = grid(live, "a harbour at dawn --ar 16:9")
    out = ok(live, DESCRIBE, {"image_url": wide["raw_image_url"]})
    assert list(out) == ["descriptions", "task_id", "success"] and out["success"] is True
    assert len(out["descriptions"]) == 4 and len(set(out["descriptions"])) == 4
    assert all(
        d.startswith(("a harbour at dawn", "a picture of a harbour at dawn", "an image of a harbour at dawn"))
        and d.endswith(" --ar 16:9")
        for d in out["descriptions"]
    ), out
    rec = retrieve(live, out["task_id"])
    assert rec["type"] == "describe" and rec["response"] == out and rec["request"]["image_url"] == wide["raw_image_url"]
    # a picture the simulator did not make: a placeholder's prompts, the same for the same URL
    foreign = ok(live, DESCRIBE, {"image_url": "https://example.com/cat.png"})
    assert foreign["descriptions"] == ok(live, DESCRIBE, {"image_url": "https://example.com/cat.png"})["descriptions"]
    assert all(d.endswith(" --ar 1:1") for d in foreign["descriptions"])
    # it answers synchronously even when asked otherwise: no ndjson, no async
    assert "descriptions" in ok(live, DESCRIBE, {"image_url": wide["raw_image_url"], "async": True}, NDJSON)


def test_describe_errors_and_faults(live):
    assert refused(live, DESCRIBE, {}) == "image_url is required"
    assert "http(s) URL" in refused(live, DESCRIBE, {"image_url": "file:///etc/passwd"})
    refused(
        live, DESCRIBE, {"image_url": "https://e.com/a.png"}, 429, "too_many_requests", {**AUTH, "x-fake-fault": "429"}
    )
    refused(live, DESCRIBE, {"image_url": "https://e.com/a.png"}, 401, "invalid_token", {"authorization": "Bearer x"})
    # a describe task that fails: the mapped error, and a failed record of type describe
    r = post(
        live,
        DESCRIBE,
        {"image_url": "https://e.com/a.png"},
        {**AUTH, "x-fake-fault": "task_fail;code=api_error;message=fetch failed"},
    )
    assert r.status_code == 500 and r.json()["error"] == {"code": "api_error", "message": "fetch failed"}
    rec = retrieve(live, r.json()["task_id"])
    assert rec["type"] == "describe" and rec["response"]["success"] is False
    live.state.inject(DESCRIBE, "500")
    refused(live, DESCRIBE, {"image_url": "https://e.com/a.png"}, 500, "api_error")


# --- seed -----------------------------------------------------------------------------------------


def test_seed_reproduces_a_grid_with_the_same_prompt(live):
    first = grid(live, "a copper kettle on a stove")
    answer = ok(live, SEED, {"image_id": first["image_id"]})
    assert list(answer) == ["seed"] and answer["seed"].isdigit() and int(answer["seed"]) < 2**32
    assert ok(live, SEED, {"image_id": first["image_id"]}) == answer
    # an upscale's seed is its grid's, as in Midjourney; --seed with the same prompt draws the same grid
    single = ok(live, IMAGINE, {"action": "upscale3", "image_id": first["image_id"]})
    assert ok(live, SEED, {"image_id": single["image_id"]}) == answer
    again = grid(live, f"a copper kettle on a stove --seed {answer['seed']}")
    assert get(again["raw_image_url"]) == get(first["raw_image_url"])
    other = grid(live, f"a copper kettle on a stove --seed {int(answer['seed']) + 1}")
    assert get(other["raw_image_url"]) != get(first["raw_image_url"])
    assert ok(live, SEED, {"image_id": other["image_id"]})["seed"] == str(int(answer["seed"]) + 1)


def test_seed_errors_and_faults(live):
    assert refused(live, SEED, {}) == "image_id is required"
    assert "was not found" in refused(live, SEED, {"image_id": "1234197197067915365"})
    refused(live, SEED, {"image_id": "1"}, 500, "api_error", {**AUTH, "x-fake-fault": "500"})
    r = post(live, SEED, {"image_id": "1"}, {**AUTH, "x-fake-fault": "502_html"})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")


# --- shorten and translate --------------------------------------------------------------------------


def test_shorten_drops_words_and_flags_deterministically(live):
    out = ok(live, SHORTEN, {"prompt": LONG_PROMPT})
    prompts = out["prompts"]
    assert list(out) == ["prompts"] and 1 <= len(prompts) <= 5 and len(set(prompts)) == len(prompts)
    assert all(len(p) < len(LONG_PROMPT) for p in prompts)
    assert all(p.startswith(("a serene mountain lake", "serene mountain lake")) for p in prompts), prompts
    assert any("--ar 16:9" in p for p in prompts) and any("--" not in p for p in prompts)
    assert ok(live, SHORTEN, {"prompt": LONG_PROMPT}) == out
    # image URLs stay in front; a prompt with nothing to drop comes back as it is
    url = grid(live)["raw_image_url"]
    assert all(
        p.startswith(url + " ") for p in ok(live, SHORTEN, {"prompt": f"{url} a red fox in the snow"})["prompts"]
    )
    assert ok(live, SHORTEN, {"prompt": "fox"})["prompts"] == ["fox"]
    assert refused(live, SHORTEN, {}) == "prompt is required"
    refused(live, SHORTEN, {"prompt": "a fox [[fault:429]]"}, 429, "too_many_requests")


def test_translate_returns_english(live):
    # the vendor's own example, word for word (its commas are the full-width ones Chinese text has)
    chinese = "精致，无暇，洁白的天使"  # noqa: RUF001
    assert ok(live, TRANSLATE, {"content": chinese}) == {"content": "Exquisite, flawless, pure white angel"}
    assert ok(live, TRANSLATE, {"content": "un gato sentado sobre la mesa"})["content"] == "A cat sitting on the table"
    assert ok(live, TRANSLATE, {"content": "eine Katze auf dem Tisch"})["content"] == "A cat on the table"
    for english in ("a chat with friends at the table", "A cat sitting on a table --ar 3:2"):
        assert ok(live, TRANSLATE, {"content": english}) == {"content": english}
    assert refused(live, TRANSLATE, {"content": ""}) == "content is required"
    assert "longer than" in refused(live, TRANSLATE, {"content": "x" * 20_001})
    live.state.inject("*", "403_used_up")
    refused(live, TRANSLATE, {"content": "猫"}, 403, "used_up")


# --- edits ------------------------------------------------------------------------------------------


def test_edit_sync_repaints_our_picture_with_tiles_and_no_actions(live):
    source = grid(live, "a teddy bear --ar 16:9")
    out = ok(
        live, EDITS, {"image_url": source["raw_image_url"], "prompt": "a teddy bear in a hat", "split_images": True}
    )
    assert list(out) == EDIT_KEYS and out["success"] is True and out["progress"] == 100
    assert out["image_url"] == out["raw_image_url"] and (out["image_width"], out["image_height"]) == (2912, 1632)
    image = png(out["raw_image_url"])
    assert image.size == (2912, 1632)
    tiles = [png(u) for u in out["sub_image_urls"]]
    assert all(t.size == (1456, 816) for t in tiles)
    assert ImageChops.difference(tiles[3], image.crop((1456, 816, 2912, 1632))).getbbox() is None
    # each tile is a repaint of the source: closer to it than to another picture
    src = png(source["raw_image_url"]).resize((1456, 816))
    unrelated = png(grid(live, "a green comet --ar 16:9")["raw_image_url"]).resize((1456, 816))
    assert all(mean_diff(t, src) < mean_diff(t, unrelated) for t in tiles)
    rec = retrieve(live, out["task_id"])
    assert rec["type"] == "edits" and rec["response"] == out and rec["image_id"] == out["image_id"]
    # no actions: nothing follows an edit through /imagine
    assert "not available" in refused(live, IMAGINE, {"action": "upscale1", "image_id": out["image_id"]})
    # without split_images, no tiles (as documented)
    assert "sub_image_urls" not in ok(live, EDITS, {"image_url": source["raw_image_url"], "prompt": "a hat"})


def test_edit_with_a_mask_changes_only_the_white_area(live):
    single = ok(live, IMAGINE, {"action": "upscale2", "image_id": grid(live)["image_id"]})
    box = (0, 0, 512, 512)
    out = ok(
        live,
        EDITS,
        {
            "image_url": single["raw_image_url"],
            "prompt": "a blue scarf",
            "mask": mask_b64((1024, 1024), box),
            "split_images": True,
        },
    )
    source = ImageOps.fit(png(single["raw_image_url"]), (1024, 1024), Image.Resampling.BILINEAR)
    for url in out["sub_image_urls"]:
        tile = png(url)
        assert mean_diff(tile.crop((520, 520, 1024, 1024)), source.crop((520, 520, 1024, 1024))) < 1
        assert mean_diff(tile.crop((0, 0, 500, 500)), source.crop((0, 0, 500, 500))) > 5
    assert "mask" in refused(live, EDITS, {"image_url": single["raw_image_url"], "prompt": "x", "mask": "!!"})


def test_edit_of_a_foreign_picture_is_a_placeholder_repaint(live):
    url = "https://example.com/photos/cat.jpg"
    out = ok(live, EDITS, {"image_url": url, "prompt": "a cat in a hat"})
    assert (out["image_width"], out["image_height"]) == (2048, 2048)  # the shape of a picture not fetched
    assert png(out["raw_image_url"]).size == (2048, 2048)
    # drawn from a placeholder of that URL: another edit of it is closer than an edit of another URL
    again = png(ok(live, EDITS, {"image_url": url, "prompt": "a cat in a hat"})["raw_image_url"])
    other = png(
        ok(live, EDITS, {"image_url": "https://example.com/dog.jpg", "prompt": "a cat in a hat"})["raw_image_url"]
    )
    assert mean_diff(again, png(out["raw_image_url"])) < mean_diff(other, png(out["raw_image_url"]))


def test_edit_stream_async_and_callbacks(live, receiver):
    src = grid(live)["raw_image_url"]
    lines = stream(live, EDITS, {"image_url": src, "prompt": "a fox in a scarf"})
    assert [x["progress"] for x in lines] == [35, 75, 100]
    assert all("actions" not in x and x["image_url"].endswith("width=256&height=256") for x in lines[:-1])
    assert len({x["image_id"] for x in lines}) == 3 and lines[-1] == retrieve(live, lines[-1]["task_id"])["response"]
    ack = ok(live, EDITS, {"image_url": src, "prompt": "a fox in a scarf", "async": True})
    assert set(ack) == {"task_id", "trace_id"}
    assert until_done(live, ack["task_id"])["response"]["image_url"].endswith(".png")
    ack = ok(live, EDITS, {"image_url": src, "prompt": "a fox", "callback_url": receiver.url + "/edit"})
    [body] = receiver.wait_for("/edit", 1)
    assert body == retrieve(live, ack["task_id"])["response"] and body["task_id"] == ack["task_id"]
    r = post(live, EDITS, {"image_url": src, "prompt": "a fox", "callback_url": receiver.url + "/edit-stream"}, NDJSON)
    assert [b["progress"] for b in receiver.wait_for("/edit-stream", 3)] == [35, 75, 100]
    assert "task_id" in r.json()


def test_edit_errors_and_faults(live):
    src = grid(live)["raw_image_url"]
    assert refused(live, EDITS, {"prompt": "a hat"}) == "image_url is required"
    assert refused(live, EDITS, {"image_url": src}) == "prompt is required"
    assert "mode" in refused(live, EDITS, {"image_url": src, "prompt": "x", "mode": "warp"})
    assert "action" in refused(live, EDITS, {"image_url": src, "prompt": "x", "action": "upscale1"})
    refused(live, EDITS, {"image_url": src, "prompt": "x __nsfw__"}, 403, "forbidden")
    refused(live, EDITS, {"image_url": src, "prompt": "x [[fault:429]]"}, 429, "too_many_requests")
    lines = stream(live, EDITS, {"image_url": src, "prompt": "a fox [[fault:stream_error_line;code=api_error]]"})
    assert lines[-1]["success"] is False and lines[-1]["error"]["code"] == "api_error"
    ack = ok(
        live,
        EDITS,
        {"image_url": src, "prompt": "a fox", "async": True},
        {**AUTH, "x-fake-fault": "task_fail;at_progress=35"},
    )
    assert until_done(live, ack["task_id"])["response"]["success"] is False
    r = post(live, EDITS, {"image_url": src, "prompt": "x"}, {**AUTH, "x-fake-fault": "task_fail;code=forbidden"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_a_tile_of_ours_is_one_of_our_pictures_as_an_input(live):
    edit = ok(
        live,
        EDITS,
        {
            "image_url": grid(live, "a tin robot")["raw_image_url"],
            "prompt": "a tin robot dancing",
            "split_images": True,
        },
    )
    tile = edit["sub_image_urls"][1]
    # described from its own prompt, not as a placeholder; edited and blended from its own pixels
    assert all("a tin robot dancing" in d for d in ok(live, DESCRIBE, {"image_url": tile})["descriptions"])
    again = ok(live, EDITS, {"image_url": tile, "prompt": "a tin robot sleeping", "split_images": True})
    assert mean_diff(png(again["sub_image_urls"][0]), png(tile)) < mean_diff(
        png(again["sub_image_urls"][0]), png(edit["sub_image_urls"][2])
    )
    blend = grid(live, f"{tile} a tin robot --ar 1:1")
    assert png(blend["raw_image_url"]).size == (2048, 2048)


# --- videos -----------------------------------------------------------------------------------------


def test_video_generate_sync_makes_four_real_clips_at_the_asked_size(live):
    wide = ok(live, IMAGINE, {"action": "upscale1", "image_id": grid(live, "a kite --ar 16:9")["image_id"]})
    out = ok(
        live,
        VIDEOS,
        {"action": "generate", "image_url": wide["raw_image_url"], "prompt": "the kite climbs", "resolution": "480p"},
    )
    assert list(out) == VIDEO_KEYS and out["success"] is True and len(out["video_id"]) == 16
    assert len(out["video_urls"]) == 4 and len(set(out["video_urls"])) == 4
    assert all(u.endswith(f"/{out['video_id']}/0_{k}.mp4") for k, u in enumerate(out["video_urls"]))
    assert (out["image_width"], out["image_height"]) == (848, 480)
    cover = png(out["image_url"])
    assert cover.size == (848, 480)
    clip = get(out["video_urls"][2])
    assert clip[4:8] == b"ftyp" and HTTP.get(out["video_urls"][2]).headers["content-type"] == "video/mp4"
    decoded = frames(clip)
    assert len(decoded) == 24 and decoded[0].size == (848, 480)
    assert mean_diff(decoded[0], decoded[-1]) > 3  # it moves
    # the cover is the first frame; every clip starts on the source picture
    source = ImageOps.fit(png(wide["raw_image_url"]), (848, 480), Image.Resampling.BILINEAR)
    assert mean_diff(decoded[0], cover) < 8 and mean_diff(decoded[0], source) < 12
    rec = retrieve(live, out["task_id"])
    assert rec["type"] == "videos" and rec["response"] == out and rec["request"]["resolution"] == "480p"
    # 720p, the default, on a square picture
    square = ok(live, VIDEOS, {"image_url": grid(live)["raw_image_url"], "prompt": "snow falls"})
    assert (square["image_width"], square["image_height"]) == (720, 720)
    assert frames(get(square["video_urls"][0]))[0].size == (720, 720)


def test_video_loop_and_end_frame(live):
    start, end = grid(live, "a red door")["raw_image_url"], grid(live, "a blue window")["raw_image_url"]
    looped = ok(live, VIDEOS, {"image_url": start, "prompt": "a breeze", "loop": True, "resolution": "480p"})
    loop_frames = frames(get(looped["video_urls"][1]))
    assert mean_diff(loop_frames[0], loop_frames[-1]) < 3 < mean_diff(loop_frames[0], loop_frames[12])
    ended = ok(live, VIDEOS, {"image_url": start, "end_image_url": end, "prompt": "a door opens", "resolution": "480p"})
    last = frames(get(ended["video_urls"][0]))[-1]
    target = ImageOps.fit(png(end), (480, 480), Image.Resampling.BILINEAR)
    assert mean_diff(last, target) < 8 < mean_diff(last, ImageOps.fit(png(start), (480, 480)))


def test_video_extend_of_a_finished_video_replays_then_goes_on(live):
    first = ok(
        live,
        VIDEOS,
        {"image_url": grid(live, "a paper plane")["raw_image_url"], "prompt": "it glides", "resolution": "480p"},
    )
    longer = ok(
        live, VIDEOS, {"action": "extend", "video_id": first["video_id"], "video_index": 2, "prompt": "it lands"}
    )
    assert list(longer) == VIDEO_KEYS and longer["video_id"] != first["video_id"]
    assert int(longer["video_id"]) > int(first["video_id"])
    assert (longer["image_width"], longer["image_height"]) == (480, 480)  # the parent's resolution
    parent = frames(get(first["video_urls"][2]))
    child = frames(get(longer["video_urls"][0]))
    assert len(child) == 48 and mean_diff(child[10], parent[10]) < 3 and mean_diff(child[24], parent[-1]) < 6
    rec = retrieve(live, longer["task_id"])
    assert rec["type"] == "videos" and rec["request"]["video_id"] == first["video_id"]
    bigger = ok(live, VIDEOS, {"action": "extend", "video_id": longer["video_id"], "resolution": "720p"})
    assert (bigger["image_width"], bigger["image_height"]) == (720, 720)
    # four extensions at most
    current = bigger
    for _ in range(2):
        current = ok(live, VIDEOS, {"action": "extend", "video_id": current["video_id"]})
    assert "extended at most 4 times" in refused(live, VIDEOS, {"action": "extend", "video_id": current["video_id"]})


def test_video_async_by_default_of_vendor_clients_stream_and_callbacks(live, receiver):
    src = grid(live)["raw_image_url"]
    ack = ok(live, VIDEOS, {"image_url": src, "prompt": "x", "async": True})
    assert set(ack) == {"task_id", "trace_id"}
    assert "response" not in retrieve(live, ack["task_id"])
    done = until_done(live, ack["task_id"])
    assert done["type"] == "videos" and done["response"]["video_urls"] and done["elapsed"] >= 0
    lines = stream(live, VIDEOS, {"image_url": src, "prompt": "x"})
    assert [list(x) for x in lines[:-1]] == [["progress", "task_id", "success"]] * 2
    assert [x["progress"] for x in lines] == [35, 75, 100] and list(lines[-1]) == VIDEO_KEYS
    ack = ok(live, VIDEOS, {"image_url": src, "prompt": "x", "callback_url": receiver.url + "/video"})
    [body] = receiver.wait_for("/video", 1)
    assert body == retrieve(live, ack["task_id"])["response"] and body["video_urls"]


def test_video_tasks_run_on_a_slower_timeline(live):
    live.state.configure(time_scale=0.01)
    src = grid(live)["raw_image_url"]
    ack = ok(live, VIDEOS, {"image_url": src, "prompt": "x", "async": True})
    plan = live.state.task_map[ack["task_id"]].plan
    image_ack = ok(live, IMAGINE, {"prompt": "x", "async": True})
    image_plan = live.state.task_map[image_ack["task_id"]].plan
    assert plan.start_delay == pytest.approx(3 * image_plan.start_delay)
    assert plan.interval == pytest.approx(3 * image_plan.interval)
    # a lower bound only: the video took at least what its plan says, which is more than a grid's plan
    done = until_done(live, ack["task_id"])
    assert done["elapsed"] >= plan.start_delay + 2 * plan.interval > image_plan.start_delay + 3 * image_plan.interval


def test_video_errors_and_faults(live):
    src = grid(live)["raw_image_url"]
    assert "relax" in refused(live, VIDEOS, {"image_url": src, "prompt": "x", "mode": "relax"})
    assert "480p or 720p" in refused(live, VIDEOS, {"image_url": src, "prompt": "x", "resolution": "1080p"})
    assert refused(live, VIDEOS, {"prompt": "x"}) == "image_url is required"
    assert "http(s) URL" in refused(live, VIDEOS, {"image_url": "ftp://e.com/a.png"})
    assert "http(s) URL" in refused(live, VIDEOS, {"image_url": src, "end_image_url": "not a url"})
    assert "loop" in refused(live, VIDEOS, {"image_url": src, "loop": "yes"})
    assert "action" in refused(live, VIDEOS, {"action": "upscale", "image_url": src})
    assert "video_id is required" in refused(live, VIDEOS, {"action": "extend"})
    assert "was not found" in refused(live, VIDEOS, {"action": "extend", "video_id": "1751816807896311"})
    video = ok(live, VIDEOS, {"image_url": src, "prompt": "x", "resolution": "480p"})
    for index in (4, -1, "two", True):
        assert "video_index" in refused(
            live, VIDEOS, {"action": "extend", "video_id": video["video_id"], "video_index": index}
        )
    refused(live, VIDEOS, {"image_url": src, "prompt": "x __nsfw__"}, 403, "forbidden")
    refused(live, VIDEOS, {"image_url": src, "prompt": "x [[fault:403_used_up]]"}, 403, "used_up")
    ack = ok(live, VIDEOS, {"image_url": src, "prompt": "x", "async": True}, {**AUTH, "x-fake-fault": "task_fail"})
    failed = until_done(live, ack["task_id"])["response"]
    assert failed["success"] is False and failed["error"]["code"] == "api_error"
    lines = stream(live, VIDEOS, {"image_url": src, "prompt": "x [[fault:stream_cut;after_lines=1]]"}, cut=True)
    assert [x["progress"] for x in lines] == [35]
    # a video's clips are not an image to act on, nor its id an image id
    assert "was not found" in refused(live, SEED, {"image_id": video["video_id"]})


# --- across endpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,body",
    [
        (EDITS, {"image_url": "https://e.com/a.png", "prompt": "x"}),
        (VIDEOS, {"image_url": "https://e.com/a.png", "prompt": "x"}),
        (DESCRIBE, {"image_url": "https://e.com/a.png"}),
        (SEED, {"image_id": "1"}),
        (SHORTEN, {"prompt": "x"}),
        (TRANSLATE, {"content": "x"}),
    ],
)
def test_every_endpoint_takes_the_same_faults(live, path, body):
    refused(live, path, body, 429, "too_many_requests", {**AUTH, "x-fake-fault": "429"})
    live.state.inject(path, "504")
    refused(live, path, body, 504, "timeout")
    live.state.configure(faults=["400_token_mismatched"])
    refused(live, path, body, 400, "token_mismatched")
    live.state.configure(faults=[])
    assert post(live, path, body, {**AUTH, "x-fake-fault": "empty_body"}).content == b""
    r = post(live, path, body, {**AUTH, "x-fake-fault": "error_string;status=500"})
    assert r.status_code == 500 and r.json() == {"error": "some string"}
    assert HTTP.get(live.base_url + path, headers=AUTH).status_code == 405
    assert post(live, path, body, {"authorization": "Bearer wrong"}).status_code == 401


def test_retrieve_batch_filters_by_type(live):
    src = grid(live)["raw_image_url"]
    made = {
        "edits": ok(live, EDITS, {"image_url": src, "prompt": "x"})["task_id"],
        "videos": ok(live, VIDEOS, {"image_url": src, "prompt": "x", "resolution": "480p"})["task_id"],
        "describe": ok(live, DESCRIBE, {"image_url": src})["task_id"],
    }
    every = ok(live, TASKS, {"action": "retrieve_batch"})
    assert every["count"] == 4 and {t["type"] for t in every["items"]} == {"imagine", "edits", "videos", "describe"}
    for task_type, task_id in made.items():
        found = ok(live, TASKS, {"action": "retrieve_batch", "type": task_type})
        assert found["count"] == 1 and [t["id"] for t in found["items"]] == [task_id]
        assert retrieve(live, task_id)["type"] == task_type


def test_embedded_urls_name_the_fixed_origin_and_no_callbacks(tmp_path):
    sim = SimServer(SimConfig(tokens=[TOKEN], time_scale=0.0, embedded=True)).start()
    try:
        src = grid(sim)["raw_image_url"]
        edit = ok(sim, EDITS, {"image_url": src, "prompt": "x", "split_images": True})
        video = ok(sim, VIDEOS, {"image_url": src, "prompt": "x", "resolution": "480p"})
        urls = [edit["image_url"], *edit["sub_image_urls"], video["image_url"], *video["video_urls"]]
        assert all(u.startswith(PUBLIC_ORIGIN + "/__fake/") for u in urls)
        # a random part in each: one video's URL does not lead to another's
        assert all(len(u.split("/")[5]) == 32 for u in video["video_urls"])
        guessed = video["video_urls"][0].replace(video["video_urls"][0].split("/")[5] + "/", "")
        assert HTTP.get(sim.base_url + guessed[len(PUBLIC_ORIGIN) :]).status_code == 404
        assert frames(get(sim.base_url + video["video_urls"][3][len(PUBLIC_ORIGIN) :]))[0].size == (480, 480)
        assert "callback_url" in refused(sim, VIDEOS, {"image_url": src, "callback_url": "http://127.0.0.1:9/x"})
        # in an embedded simulator a prompt's fault token is only text
        assert ok(sim, SHORTEN, {"prompt": "a fox [[fault:429]], in snow"})["prompts"]
    finally:
        sim.stop()


# --- what an embedded simulator keeps across a restart ---------------------------------------------


def embedded(archive) -> SimServer:
    return SimServer(SimConfig(tokens=[TOKEN], time_scale=0.0, embedded=True, archive=str(archive))).start()


def local(sim, url: str) -> str:
    assert url.startswith(PUBLIC_ORIGIN + "/"), url
    return sim.base_url + url[len(PUBLIC_ORIGIN) :]


def test_a_restarted_embedded_simulator_keeps_edits_videos_describes_and_seeds(tmp_path):
    first = embedded(tmp_path / "sim.db")
    try:
        source = grid(first, "a lantern in fog")
        edit = ok(
            first, EDITS, {"image_url": source["raw_image_url"], "prompt": "a lantern in rain", "split_images": True}
        )
        video = ok(
            first,
            VIDEOS,
            {"image_url": edit["sub_image_urls"][0], "prompt": "the flame flickers", "resolution": "480p"},
        )
        described = ok(first, DESCRIBE, {"image_url": edit["sub_image_urls"][3]})
        seeds = {x["image_id"]: ok(first, SEED, {"image_id": x["image_id"]}) for x in (source, edit)}
        tiles = [get(local(first, u)) for u in edit["sub_image_urls"]]
        clip = get(local(first, video["video_urls"][1]))
    finally:
        first.stop()

    second = embedded(tmp_path / "sim.db")
    try:
        for made, task_type in ((edit, "edits"), (video, "videos"), (described, "describe")):
            rec = retrieve(second, made["task_id"])
            assert rec["type"] == task_type and rec["response"] == made
        assert ok(second, TASKS, {"action": "retrieve_batch", "type": "videos"})["count"] == 1
        # the edit's tiles serve the same pixels and are still our pictures as inputs
        assert [get(local(second, u)) for u in edit["sub_image_urls"]] == tiles
        assert (
            ok(second, DESCRIBE, {"image_url": edit["sub_image_urls"][3]})["descriptions"] == described["descriptions"]
        )
        for image_id, seed in seeds.items():
            assert ok(second, SEED, {"image_id": image_id}) == seed
        # yesterday's clip is drawn again the same; its video extends by id alone
        assert frames(get(local(second, video["video_urls"][1])))[5].tobytes() == frames(clip)[5].tobytes()
        longer = ok(second, VIDEOS, {"action": "extend", "video_id": video["video_id"], "video_index": 1})
        assert int(longer["video_id"]) > int(video["video_id"])
        assert len(frames(get(local(second, longer["video_urls"][2])))) == 48
    finally:
        second.stop()


def test_an_archive_of_the_first_schema_opens_and_its_tasks_are_imagine_tasks(tmp_path):
    path = tmp_path / "sim.db"
    first = embedded(path)
    try:
        made = grid(first, "an old photograph")
    finally:
        first.stop()
    # the file as the first schema had it: no task type, no videos
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE tasks DROP COLUMN type")
    db.execute("DROP TABLE videos")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    second = embedded(path)
    try:
        assert retrieve(second, made["task_id"])["type"] == "imagine"
        assert ok(second, TASKS, {"action": "retrieve_batch", "type": "imagine"})["count"] == 1
        video = ok(second, VIDEOS, {"image_url": made["raw_image_url"], "prompt": "x", "resolution": "480p"})
        assert retrieve(second, video["task_id"])["type"] == "videos"
    finally:
        second.stop()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_video_left_running_by_a_stopped_simulator_finishes_in_the_next(tmp_path):
    path = tmp_path / "sim.db"
    first = SimServer(
        SimConfig(
            tokens=[TOKEN], time_scale=1.0, start_delay_s=0.5, step_interval_s=0.3, embedded=True, archive=str(path)
        )
    ).start()
    try:
        source = grid(first, "a windmill")  # 0.5 + 3 x 0.3 s
        running = ok(
            first,
            VIDEOS,
            {
                "image_url": source["raw_image_url"],
                "prompt": "the sails turn",
                "resolution": "480p",
                "loop": True,
                "async": True,
            },
        )
        assert "response" not in retrieve(first, running["task_id"])
    finally:
        first.stop()
    second = embedded(path)
    try:
        done = until_done(second, running["task_id"])
        assert done["type"] == "videos" and done["response"]["success"] is True
        looped = frames(get(local(second, done["response"]["video_urls"][0])))
        assert looped[0].size == (480, 480) and mean_diff(looped[0], looped[-1]) < 3  # its footage came back whole
    finally:
        second.stop()
