"""The upstream simulator over real loopback HTTP: conformance checklist 6.8, streaming, async,
callbacks, the action state machine, rendered images, fault injection and timing."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import TOKEN
from PIL import Image, ImageChops, ImageStat
from support import PATIENCE, wait_until

from mj_mcp.core import actions
from mj_mcp.core.actions import Kind
from mj_mcp.sim import PUBLIC_ORIGIN, SimConfig, SimServer

AUTH = {"authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "accept": "application/x-ndjson"}
# 2 s between progress steps: a test that reads a task mid-way has that long to see each step (a
# poll on a busy machine can take a good part of a second); it never waits for such a task's end.
SLOWER_STEPS = {"x-fake-time-scale": "0.01", "x-fake-step-interval": "200"}
IMAGINE, TASKS = "/midjourney/imagine", "/midjourney/tasks"
KEYS = [
    "image_url",
    "image_width",
    "image_height",
    "image_id",
    "raw_image_url",
    "raw_image_width",
    "raw_image_height",
    "progress",
    "actions",
    "task_id",
    "success",
]
GRID = list(actions.ACTIONS_AFTER[Kind.GRID])
HTTP = httpx.Client(timeout=PATIENCE)  # one pool for the file: a client per call costs ~25 ms of TLS context setup
SINGLE = list(actions.ACTIONS_AFTER[Kind.SINGLE])


def post(sim, path, body, headers=AUTH, **kw) -> httpx.Response:
    return HTTP.post(sim.base_url + path, json=body, headers=headers, timeout=kw.pop("timeout", PATIENCE), **kw)


def imagine(sim, body=None, headers=AUTH, **kw) -> dict:
    r = post(sim, IMAGINE, body if body is not None else {"prompt": "a red fox in snow"}, headers, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def act(sim, image_id, action, **extra) -> dict:
    return imagine(sim, {"action": action, "image_id": image_id, **extra})


def retrieve(sim, task_id) -> dict:
    r = post(sim, TASKS, {"action": "retrieve", "id": task_id})
    assert r.status_code == 200, r.text
    return r.json()


def until_done(sim, task_id) -> dict:
    """The task's record once it has a response (which, unless the task exposes progress, is its end)."""

    def finished():
        rec = retrieve(sim, task_id)
        return rec if "response" in rec else None

    return wait_until(finished, f"task {task_id} to finish", interval=0.01)


def stream(sim, body, headers=NDJSON) -> tuple[httpx.Response, bytes]:
    with HTTP.stream("POST", sim.base_url + IMAGINE, json=body, headers=headers) as r:
        return r, r.read()


def lines_of(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.split(b"\r\n") if line.strip()]


def png(url: str) -> Image.Image:
    r = HTTP.get(url)
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def quadrant(img: Image.Image, n: int) -> Image.Image:
    w, h = img.width // 2, img.height // 2
    x, y = ((n - 1) % 2) * w, ((n - 1) // 2) * h
    return img.crop((x, y, x + w, y + h))


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def mask_b64(size, box, fmt="PNG") -> str:
    m = Image.new("L", size, 0)
    m.paste(255, box)
    buf = io.BytesIO()
    m.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


# --- a tiny callback receiver ---------------------------------------------------------------------


class Receiver:
    """A loopback HTTP server that records JSON POSTs; paths starting /fail answer 500."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, sim, path: str, n: int) -> list[dict]:
        """Every post to ``path`` once there are ``n`` and ``sim`` has ended its deliveries (it
        posts nothing more, and has logged every attempt): a test sees exactly what was sent."""
        wait_until(
            lambda: len([1 for p, _ in self.posts if p == path]) >= n and not sim.state.background,
            f"{n} posts to {path} and the end of the simulator's deliveries",
            interval=0.01,
        )
        return [b for p, b in self.posts if p == path]


@pytest.fixture(scope="module", autouse=True)
def _close_client():
    yield
    HTTP.close()


@pytest.fixture
def live(fresh_sim):
    """The shared simulator, reset, at a brisk pace: a grid in about 20 ms. Timing tests set their own."""
    fresh_sim.state.configure(time_scale=0.002)
    return fresh_sim


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


# --- 6.8 conformance ------------------------------------------------------------------------------


def test_sync_generate_has_exactly_the_documented_keys(live):
    out = imagine(live)
    assert list(out) == KEYS
    assert out["actions"] == GRID and out["progress"] == 100 and out["success"] is True
    sizes = (out["image_width"], out["image_height"], out["raw_image_width"], out["raw_image_height"])
    assert sizes == (1024, 1024, 2048, 2048)
    assert out["image_id"].isdigit() and len(out["image_id"]) == 19 and len(out["task_id"]) == 36
    assert out["raw_image_url"] == f"{live.base_url}/__fake/img/{out['image_id']}.png"
    assert out["image_url"] == out["raw_image_url"] + "?width=1024&height=1024"
    wide = imagine(live, {"prompt": "a harbour --ar 16:9 --v 6"})
    assert (wide["image_width"], wide["image_height"], wide["raw_image_width"]) == (1456, 816, 2912)
    tall = imagine(live, {"prompt": "a tower --ar 2:3"})
    w, h = tall["image_width"], tall["image_height"]
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 2 / 3) < 0.02 and abs(w * h - 1024**2) < 0.05 * 1024**2


def test_upscale_makes_a_single_and_the_state_machine_holds(live):
    grid = imagine(live)
    single = act(live, grid["image_id"], "upscale4")
    assert list(single) == KEYS and single["actions"] == SINGLE
    assert single["image_id"] != grid["image_id"] and single["task_id"] != grid["task_id"]
    assert (single["image_width"], single["raw_image_width"], single["raw_image_height"]) == (512, 1024, 1024)
    # what a grid does not offer is refused, and so is what a single does not offer
    r = post(live, IMAGINE, {"action": "zoom_out_2x", "image_id": grid["image_id"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert "upscale1" in r.json()["error"]["message"]
    r = post(live, IMAGINE, {"action": "upscale1", "image_id": single["image_id"]})
    assert r.status_code == 400 and "zoom_out_2x" in r.json()["error"]["message"]
    hq = act(live, single["image_id"], "upscale_2x")
    assert hq["actions"] == list(actions.ACTIONS_AFTER[Kind.UPSCALED])
    assert (hq["raw_image_width"], hq["image_width"]) == (2048, 1024)
    redo = act(live, hq["image_id"], "redo_upscale_4x")
    assert redo["raw_image_width"] == 4096  # from the single it came from, not from the 2x
    for name in ("variation2", "reroll"):
        out = act(live, grid["image_id"], name)
        assert out["actions"] == GRID and out["raw_image_width"] == 2048
    zoomed = act(live, single["image_id"], "zoom_out_1_5x")
    assert zoomed["actions"] == GRID and zoomed["raw_image_width"] == 2048  # quadrants at the single's size
    live.state.configure(strict_actions=False)
    assert act(live, grid["image_id"], "pan_left")["actions"] == GRID


def test_missing_and_invalid_inputs_are_400(live):
    single = act(live, imagine(live)["image_id"], "upscale1")
    cases = [
        ({"action": "upscale1"}, "image_id is required"),
        ({"action": "variation_region", "image_id": single["image_id"]}, "mask is required"),
        ({"action": "generate"}, "prompt is required"),
        ({"prompt": "   "}, "prompt is required"),
        ({"action": "blend", "prompt": "x"}, "Unsupported action"),
        # the catalogue's /videos actions are not /imagine's
        ({"action": "extend1", "image_id": single["image_id"]}, "Unsupported action"),
        ({"action": "animate", "prompt": "x"}, "Unsupported action"),
        ({"prompt": "x", "mode": "ludicrous"}, "Invalid mode"),
        ({"action": "upscale1", "image_id": "1234"}, "not found"),
    ]
    for body, message in cases:
        r = post(live, IMAGINE, body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "bad_request" and message in r.json()["error"]["message"], r.json()
    r = HTTP.post(live.base_url + IMAGINE, content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["message"] == "The json payload is not valid to request the API"
    live.state.configure(unknown_image_id_mode="task_fail")
    ack = imagine(live, {"action": "upscale1", "image_id": "1234", "async": True})
    assert until_done(live, ack["task_id"])["response"]["error"]["code"] == "bad_request"


def test_async_ack_then_poll_until_done(live):
    r = post(
        live,
        IMAGINE,
        {"prompt": "an origami crane", "async": True, "application_id": "app-1"},
        headers={**AUTH, "x-fake-time-scale": "0.01", "x-fake-start-delay": "30"},
    )  # 0.3 s
    assert r.status_code == 200 and set(r.json()) == {"task_id", "trace_id"}
    ack = r.json()
    pending = retrieve(live, ack["task_id"])
    assert pending["id"] == ack["task_id"] and pending["type"] == "imagine" and "response" not in pending
    assert pending["request"]["prompt"] == "an origami crane" and pending["request"]["trace_id"] == ack["trace_id"]
    assert pending["request"]["stream"] is False and "finished_at" not in pending
    done = until_done(live, ack["task_id"])
    assert done["response"]["success"] is True and done["response"]["actions"] == GRID
    assert list(done["response"]) == KEYS and done["image_id"] == done["response"]["image_id"]
    assert done["finished_at"] >= done["created_at"] and done["elapsed"] == done["duration"] > 0
    by_trace = post(live, TASKS, {"action": "retrieve", "trace_id": ack["trace_id"]}).json()
    assert by_trace["id"] == ack["task_id"]
    assert post(live, TASKS, {"id": "00000000-0000-4000-8000-000000000000"}).json() == {}
    assert post(live, TASKS, {"action": "delete", "id": ack["task_id"]}).status_code == 400
    live.state.configure(async_ack_extra=[])
    assert set(imagine(live, {"prompt": "x", "async": "true"})) == {"task_id"}


def test_expose_progress_in_task_shows_a_mid_flight_response(live):
    live.state.configure(expose_progress_in_task=True, task_state_field=True)
    ack = imagine(live, {"prompt": "a kite", "async": True}, headers={**AUTH, **SLOWER_STEPS})
    rec = until_done(live, ack["task_id"])  # as soon as a response exists: the first step's
    assert rec["state"] == "processing" and rec["response"]["progress"] == 35 and rec["response"]["actions"] == []
    # the end, on a task at the brisk pace
    ack = imagine(live, {"prompt": "a kite", "async": True})
    wait_until(lambda: retrieve(live, ack["task_id"])["state"] == "succeeded", "the task to succeed")
    assert retrieve(live, ack["task_id"])["response"]["progress"] == 100


def test_ndjson_stream_crlf_lines_with_rising_progress(live):
    r, raw = stream(live, {"prompt": "a landscape"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n") == 3
    events = lines_of(raw)
    assert [e["progress"] for e in events] == [35, 75, 100]
    assert all(e["actions"] == [] and e["success"] is True for e in events[:-1])
    assert len({e["image_id"] for e in events}) == 3 and len({e["task_id"] for e in events}) == 1
    assert all(list(e) == KEYS for e in events)
    assert events[0]["image_url"].endswith("_grid_0.webp?width=256&height=256") and events[0]["raw_image_width"] == 512
    final = events[-1]
    assert final["actions"] == GRID and final["raw_image_width"] == 2048
    assert retrieve(live, final["task_id"])["response"] == final
    assert retrieve(live, final["task_id"])["request"]["stream"] is True
    # the LF knob, a zero-progress line, and one stable intermediate image id
    live.state.configure(ndjson_newline="lf", emit_zero_progress=True, stable_intermediate_image_id=True)
    _, raw = stream(live, {"prompt": "a landscape"})
    assert b"\r" not in raw
    events = [json.loads(x) for x in raw.split(b"\n") if x]
    assert [e["progress"] for e in events] == [0, 35, 75, 100]
    assert len({e["image_id"] for e in events[:-1]}) == 1
    _, raw = stream(live, {"prompt": "a landscape"}, headers={**NDJSON, "x-fake-progress-steps": "10,50,90"})
    assert [json.loads(x)["progress"] for x in raw.split(b"\n") if x] == [10, 50, 90, 100]


def test_stream_heartbeats_are_blank_lines(live):
    live.state.configure(heartbeat_s=0.02)
    # a second before the first line: some 50 beats are due, two are asked for (a busy machine skips some)
    _, raw = stream(
        live, {"prompt": "a quiet lake"}, headers={**NDJSON, "x-fake-time-scale": "0.01", "x-fake-start-delay": "100"}
    )
    assert raw.startswith(b"\r\n") and b"\r\n\r\n" in raw
    assert [e["progress"] for e in lines_of(raw)] == [35, 75, 100]


def test_preview_images_live_only_while_the_task_runs(live):
    # One step, then the end 2 s later. Both previews are asked for at once in that time (each is served
    # however long drawing it takes, once asked for while the task runs: seconds on a busy machine).
    ack = imagine(
        live, {"prompt": "a comet", "async": True}, headers={**AUTH, **SLOWER_STEPS, "x-fake-progress-steps": "35,100"}
    )
    live.state.configure(expose_progress_in_task=True)
    rec = until_done(live, ack["task_id"])  # the first step's response
    assert rec["response"]["progress"] == 35
    with ThreadPoolExecutor(max_workers=2) as pool:
        thumb, raw = pool.map(png, (rec["response"]["image_url"], rec["response"]["raw_image_url"]))
    assert thumb.format == "WEBP" and thumb.size == (256, 256)
    assert raw.size == (512, 512)
    final = until_done_success(live, ack["task_id"])
    assert HTTP.get(rec["response"]["raw_image_url"]).status_code == 404
    assert png(final["image_url"]).size == (1024, 1024)


def until_done_success(live, task_id) -> dict:
    def ended():
        response = retrieve(live, task_id).get("response", {})
        return response if response.get("progress") == 100 or response.get("success") is False else None

    return wait_until(ended, f"task {task_id} to end", interval=0.01)


def test_callback_posts_once_on_success_and_on_failure(live, receiver):
    ack = imagine(live, {"prompt": "a lighthouse", "callback_url": receiver.url + "/ok"})
    assert set(ack) == {"task_id", "trace_id"}
    [body] = receiver.wait_for(live, "/ok", 1)
    assert body == retrieve(live, ack["task_id"])["response"] and list(body) == KEYS
    ack = imagine(live, {"prompt": "a lighthouse -c x", "callback_url": receiver.url + "/bad"})
    [body] = receiver.wait_for(live, "/bad", 1)
    assert body == {
        "success": False,
        "task_id": ack["task_id"],
        "error": {"code": "bad_request", "message": "Unrecognized argument(s): `-c`, `x`"},
    }
    log = [c for c in live.state.callbacks if c["task_id"] == ack["task_id"]]
    assert len(log) == 1 and log[0]["status"] == 200 and log[0]["url"] == receiver.url + "/bad"


def test_callback_with_ndjson_posts_every_event_in_order(live, receiver):
    r = post(live, IMAGINE, {"prompt": "a lighthouse", "callback_url": receiver.url + "/stream"}, headers=NDJSON)
    assert r.headers["content-type"].startswith("application/json") and "task_id" in r.json()
    bodies = receiver.wait_for(live, "/stream", 3)
    assert [b["progress"] for b in bodies] == [35, 75, 100] and bodies[-1]["actions"] == GRID
    assert all(b["task_id"] == r.json()["task_id"] for b in bodies)


def test_callback_retries_duplicates_and_records_attempts(live, receiver):
    live.state.configure(callback_retries=2, callback_retry_backoff_s=[1, 1])
    ack = imagine(live, {"prompt": "a storm", "callback_url": receiver.url + "/fail"})
    assert len(receiver.wait_for(live, "/fail", 3)) == 3
    attempts = [c for c in live.state.callbacks if c["task_id"] == ack["task_id"]]
    assert [(c["attempt"], c["status"]) for c in attempts] == [(1, 500), (2, 500), (3, 500)]
    live.state.configure(callback_retries=0, callback_duplicate=True)
    imagine(live, {"prompt": "a storm", "callback_url": receiver.url + "/twice"})
    first, second = receiver.wait_for(live, "/twice", 2)
    assert first == second and first["progress"] == 100
    live.state.configure(callback_duplicate=False)
    imagine(live, {"prompt": "a storm", "callback_url": "http://127.0.0.1:9/nothing-listens"})
    wait_until(
        lambda: [c for c in live.state.callbacks if "nothing-listens" in c["url"]] and not live.state.background,
        "the refused callback to be logged",
    )
    [refused] = [c for c in live.state.callbacks if "nothing-listens" in c["url"]]
    assert refused["status"] is None and "ConnectError" in refused["error"]


def test_every_error_body_has_code_message_and_trace_id(live):
    live.state.configure(tokens_for_other_api=["other"], exhausted_tokens=["broke"])
    replies = [
        (HTTP.post(live.base_url + IMAGINE, json={"prompt": "x"}), 401, "invalid_token"),
        (post(live, IMAGINE, {"prompt": "x"}, {"authorization": "Bearer nope"}), 401, "invalid_token"),
        (post(live, IMAGINE, {"prompt": "x"}, {"authorization": "Bearer other"}), 400, "token_mismatched"),
        (post(live, IMAGINE, {"prompt": "x"}, {"authorization": "broke"}), 403, "used_up"),
        (post(live, IMAGINE, {"prompt": "x __nsfw__"}), 403, "forbidden"),
        (post(live, "/midjourney/blend", {"image_urls": ["https://e.com/a.png"]}), 400, "api_not_implemented"),
        (post(live, "/nowhere", {}), 404, "not_found"),
        (HTTP.get(live.base_url + IMAGINE, headers=AUTH), 405, "method_not_allowed"),
        (HTTP.get(live.base_url + "/__fake/img/42.png"), 404, "not_found"),
    ]
    for r, status, code in replies:
        body = r.json()
        assert r.status_code == status and body["error"]["code"] == code, (r.request.url, body)
        assert body["error"]["message"] and len(body["trace_id"]) == 36 and body["success"] is False
    # the bare token works like the Bearer form
    assert post(live, IMAGINE, {"prompt": "x", "async": True}, {"authorization": TOKEN}).status_code == 200
    live.state.configure(error_shape="openapi")
    body = post(live, IMAGINE, {}).json()
    assert set(body) == {"error", "trace_id"} and body["error"]["code"] == "bad_request"
    live.state.configure(error_shape="random")
    shapes = {"success" in post(live, IMAGINE, {}).json() for _ in range(2)}
    assert shapes == {True, False}


def test_image_prompt_and_flag_rules(live):
    six = " ".join(f"https://e.com/{i}.png" for i in range(6))
    r = post(live, IMAGINE, {"prompt": f"{six} a bear"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Too many image URLs (max 5)"
    r = post(live, IMAGINE, {"prompt": "a cat -c x"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Unrecognized argument(s): `-c`, `x`"
    r = post(live, IMAGINE, {"prompt": "a cat --ar 1:1 --chaoss 5"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Unrecognized argument(s): `--chaoss`, `5`"
    ack = imagine(live, {"prompt": "a cat -c x", "async": True})
    failed = until_done(live, ack["task_id"])["response"]
    assert failed == {
        "success": False,
        "trace_id": ack["trace_id"],
        "error": {"code": "bad_request", "message": "Unrecognized argument(s): `-c`, `x`"},
    }
    _, raw = stream(live, {"prompt": "a cat \u2014iw 2"})
    [line] = lines_of(raw)
    assert line["success"] is False and line["error"]["message"] == "Unrecognized argument(s): `\u2014iw`, `2`"
    live.state.configure(bad_flag_mode="task_fail", sync_failure_status="200")
    body = post(live, IMAGINE, {"prompt": "a cat -c x"}).json()
    assert body["success"] is False and body["error"]["code"] == "bad_request" and body["task_id"]
    known = "a cat --ar 3:2 --v 6.1 --s 250 --c 10 --q .5 --seed 4 --no dogs --style raw --tile --iw 1 --fast"
    assert imagine(live, {"prompt": known})["success"] is True


# --- rendered images ------------------------------------------------------------------------------


def test_grid_png_sizes_numbers_and_determinism(live):
    out = imagine(live)
    raw = png(out["raw_image_url"])
    assert raw.format == "PNG" and raw.size == (out["raw_image_width"], out["raw_image_height"])
    assert png(out["image_url"]).size == (out["image_width"], out["image_height"])
    assert png(out["raw_image_url"] + "?width=300&height=200").size == (300, 200)
    quads = [quadrant(raw.convert("RGB"), n) for n in range(1, 5)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert mean_diff(quads[i], quads[j]) > 5  # four distinct candidates
    for q in quads:  # a big black-on-white number badge near each quadrant's top-left corner
        r = min(q.size) // 7
        badge = q.crop((r // 3, r // 3, r // 3 + 2 * r, r // 3 + 2 * r)).convert("L")
        lo, hi = badge.getextrema()
        assert lo < 40 and hi > 240
        assert 0.05 < sum(badge.histogram()[:60]) / (4 * r * r) < 0.6
    before = HTTP.get(out["raw_image_url"]).content
    live.state.renderer.clear()
    assert HTTP.get(out["raw_image_url"]).content == before  # drawn again, byte for byte
    other = imagine(live, {"prompt": "a blue whale"})
    assert mean_diff(png(other["raw_image_url"]).convert("RGB"), raw.convert("RGB")) > 5


def test_a_small_rendition_is_the_picture_scaled_down_the_same_before_and_after_it_is_drawn(live):
    """A rendition of half the size or less is drawn at its own size (as a CDN serves a stored one,
    without the full-size picture): it looks like the picture scaled down, and its URL serves the same
    bytes before the full picture is drawn and after."""
    out = imagine(live, {"prompt": "a red kite over dunes --ar 16:9"})
    size = (512, 287)
    url = out["raw_image_url"] + f"?width={size[0]}&height={size[1]}"
    before = HTTP.get(url).content
    live.state.renderer.clear()
    full = png(out["raw_image_url"]).convert("RGB")
    after = HTTP.get(url).content
    assert before == after
    small = Image.open(io.BytesIO(before))
    assert small.format == "PNG" and small.size == size
    assert mean_diff(small.convert("RGB"), full.resize(size, Image.Resampling.LANCZOS)) < 4


def test_upscale_is_the_exact_quadrant_and_hq_is_resized(live):
    grid = imagine(live)
    raw = png(grid["raw_image_url"]).convert("RGB")
    for n in (1, 4):
        single = act(live, grid["image_id"], f"upscale{n}")
        up = png(single["raw_image_url"]).convert("RGB")
        assert up.size == (1024, 1024)
        assert ImageChops.difference(up, quadrant(raw, n)).getbbox() is None
    hq = act(live, single["image_id"], "upscale_2x")
    big = png(hq["raw_image_url"]).convert("RGB")
    assert big.size == (2048, 2048) and mean_diff(big.resize((1024, 1024)), up) < 3


def test_split_images_serves_the_four_quadrants(live):
    grid = imagine(live, {"prompt": "a red fox", "split_images": True})
    assert len(grid["sub_image_urls"]) == 4
    raw = png(grid["raw_image_url"]).convert("RGB")
    tile = png(grid["sub_image_urls"][2]).convert("RGB")
    assert ImageChops.difference(tile, quadrant(raw, 3)).getbbox() is None


def test_variation_region_repaints_only_the_mask(live):
    grid = imagine(live)
    single = act(live, grid["image_id"], "upscale1")
    assert "variation_region" not in single["actions"]  # unlisted, yet accepted on a single
    source = png(single["raw_image_url"]).convert("RGB")
    box = (256, 512, 768, 1024)
    out = act(live, single["image_id"], "variation_region", mask=mask_b64((1024, 1024), box, "JPEG"), prompt="a dog")
    assert out["actions"] == GRID and (out["raw_image_width"], out["image_width"]) == (2048, 1024)
    result = png(out["raw_image_url"]).convert("RGB")
    outside = Image.new("L", (1024, 1024), 255)
    outside.paste(0, box)
    for n in range(1, 5):
        q = quadrant(result, n)
        diff = ImageChops.difference(q, source)
        assert ImageChops.multiply(diff.convert("L").point(lambda v: 255 if v else 0), outside).getbbox() is None
        assert diff.crop(box).getbbox() is not None  # and the masked area did change
    # strict masks must match the source's raw size exactly; URL masks are accepted as they are
    r = post(
        live,
        IMAGINE,
        {"action": "variation_region", "image_id": single["image_id"], "mask": mask_b64((512, 512), (0, 0, 256, 256))},
    )
    message = r.json()["error"]["message"]
    assert r.status_code == 400 and "1024x1024" in message and "512x512" in message
    for bad in ("not base64!!", "data:image/png;base64," + mask_b64((1024, 1024), box)):
        assert (
            post(live, IMAGINE, {"action": "variation_region", "image_id": single["image_id"], "mask": bad}).status_code
            == 400
        )
    ok = act(live, single["image_id"], "variation_region", mask=single["raw_image_url"])
    assert png(ok["raw_image_url"]).size == (2048, 2048)


def test_zoom_pan_and_vary_move_the_picture(live):
    grid = imagine(live)
    single = act(live, grid["image_id"], "upscale2")
    src = png(single["raw_image_url"]).convert("RGB")
    zoom = quadrant(png(act(live, single["image_id"], "zoom_out_2x")["raw_image_url"]).convert("RGB"), 3)
    assert mean_diff(zoom.crop((256, 256, 768, 768)), src.resize((512, 512))) < 3  # the source, shrunk, centred
    assert mean_diff(zoom, src) > 10
    pan = quadrant(png(act(live, single["image_id"], "pan_left")["raw_image_url"]).convert("RGB"), 2)
    shift = 1024 // 3
    moved = ImageChops.difference(pan.crop((shift + 40, 0, 1024, 1024)), src.crop((40, 0, 1024 - shift, 1024)))
    assert moved.getbbox() is None  # the source, shifted right, pixel for pixel
    assert mean_diff(pan.crop((0, 400, shift, 1024)), src.crop((0, 400, shift, 1024))) > 5  # a new strip
    subtle = quadrant(png(act(live, single["image_id"], "variation_subtle")["raw_image_url"]).convert("RGB"), 4)
    strong = quadrant(png(act(live, single["image_id"], "variation_strong")["raw_image_url"]).convert("RGB"), 4)
    assert 1 < mean_diff(subtle, src) < mean_diff(strong, src)
    varied = quadrant(png(act(live, grid["image_id"], "variation2")["raw_image_url"]).convert("RGB"), 1)
    other_candidate = quadrant(png(grid["raw_image_url"]).convert("RGB"), 1)
    assert 1 < mean_diff(varied, src) < mean_diff(varied, other_candidate)  # a take on quadrant 2, not on 1


def test_blend_mixes_the_inputs_it_can_fetch(live):
    wide = imagine(live, {"prompt": "a desert --ar 16:9"})
    square = imagine(live, {"prompt": "a teddy bear"})
    blend = imagine(live, {"prompt": f"{wide['raw_image_url']} {square['raw_image_url']}"})
    assert (blend["image_width"], blend["image_height"]) == (1456, 816)  # the first image's shape
    img = png(blend["raw_image_url"]).convert("RGB")
    a = quadrant(png(wide["raw_image_url"]).convert("RGB"), 1).resize((728, 408))
    unrelated = quadrant(png(imagine(live, {"prompt": "a green comet --ar 16:9"})["raw_image_url"]).convert("RGB"), 1)
    q = quadrant(img, 1).crop((0, 200, 728, 408))
    below_badge = (0, 200, 728, 408)
    assert mean_diff(q, a.crop(below_badge)) < mean_diff(q, unrelated.resize((728, 408)).crop(below_badge))
    # an unreachable URL becomes a colour swatch; the grid still renders
    r = imagine(live, {"prompt": "http://127.0.0.1:9/gone.png a bear --ar 1:1"})
    assert png(r["raw_image_url"]).size == (2048, 2048)


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("401", 401, "invalid_token"),
        ("403_moderation", 403, "forbidden"),
        ("403_used_up", 403, "used_up"),
        ("400_bad_request", 400, "bad_request"),
        ("400_token_mismatched", 400, "token_mismatched"),
        ("429", 429, "too_many_requests"),
        ("500", 500, "api_error"),
        ("504", 504, "timeout"),
    ],
)
def test_error_faults_by_header(live, fault, status, code):
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": fault})
    assert r.status_code == status and r.json()["error"]["code"] == code and r.json()["trace_id"]
    assert live.state.tasks == {}  # nothing was started


def test_faults_by_prompt_token_injection_and_config(live):
    r = post(live, IMAGINE, {"prompt": "a cat [[fault:429;retry_after=7]]"})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert "retry-after" not in post(live, IMAGINE, {}, {**AUTH, "x-fake-fault": "429"}).headers
    live.state.inject(TASKS, "500", times=2)
    assert [post(live, TASKS, {"id": "x"}).status_code for _ in range(3)] == [500, 500, 200]
    live.state.inject("*", "403_used_up")
    assert post(live, IMAGINE, {"prompt": "x"}).status_code == 403
    live.state.configure(faults=["flaky;p=1;fault2=429"])
    assert post(live, IMAGINE, {"prompt": "x"}).status_code == 429
    live.state.configure(faults=["flaky;p=0;fault2=429"])
    assert post(live, IMAGINE, {"prompt": "x", "async": True}).status_code == 200
    live.state.configure(faults=[], seed=7)
    flips = [post(live, TASKS, {"id": "x"}, {**AUTH, "x-fake-fault": "flaky=0.5"}).status_code for _ in range(12)]
    assert set(flips) == {200, 500}
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "no_such_fault"})
    assert r.status_code == 400 and "unknown fault" in r.json()["error"]["message"]
    # over the control API too
    HTTP.post(live.base_url + "/__fake/inject", json={"path": IMAGINE, "fault": "401"})
    assert post(live, IMAGINE, {"prompt": "x"}).status_code == 401


def test_gateway_and_degenerate_bodies(live):
    for fault, status in (("502_html", 502), ("503_html", 503)):
        r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": fault})
        assert r.status_code == status and r.headers["content-type"].startswith("text/html") and "<html>" in r.text
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "empty_body"})
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "bad_json"})
    assert r.status_code == 200 and r.text == '{"task_id": "abc"'
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "error_string;status=502"})
    assert r.status_code == 502 and r.json() == {"error": "some string"}


def test_slow_hang_504_delay_and_reset(live):
    # Lower bounds only: the simulator holds its answer at least that long, however busy the machine.
    # A client gives up on the read alone (0.3 s, well inside a 30 s delay); connecting may take its time.
    gives_up = httpx.Timeout(PATIENCE, read=0.3)
    t0 = time.monotonic()
    assert post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "504;delay=0.2"}).status_code == 504
    assert time.monotonic() - t0 >= 0.2
    with pytest.raises(httpx.ReadTimeout):
        post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "slow;delay=30"}, timeout=gives_up)
    t0 = time.monotonic()
    assert post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "slow;delay=0.2"}).status_code == 200
    assert time.monotonic() - t0 >= 0.2
    with pytest.raises(httpx.ReadTimeout):
        post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "hang"}, timeout=gives_up)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as info:
        post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "reset"})
    assert not isinstance(info.value, httpx.TimeoutException)
    assert post(live, IMAGINE, {"prompt": "x", "async": True}).status_code == 200  # still serving


def test_stream_cut_after_n_lines_and_mid_line(live):
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with HTTP.stream(
            "POST",
            live.base_url + IMAGINE,
            json={"prompt": "x"},
            headers={**NDJSON, "x-fake-fault": "stream_cut;after_lines=2"},
        ) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                got += chunk
    assert [e["progress"] for e in lines_of(bytes(got))] == [35, 75] and got.endswith(b"\r\n")
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with HTTP.stream(
            "POST", live.base_url + IMAGINE, json={"prompt": "x [[fault:stream_cut;mid_line=true]]"}, headers=NDJSON
        ) as r:
            for chunk in r.iter_raw():
                got += chunk
    complete, _, partial = bytes(got).partition(b"\r\n")
    assert json.loads(complete)["progress"] == 35 and partial.startswith(b'{"image_url"') and not partial.endswith(b"}")


def test_stream_malformed_and_error_lines(live):
    _, raw = stream(live, {"prompt": "x"}, {**NDJSON, "x-fake-fault": "stream_malformed"})
    lines = [x for x in raw.split(b"\r\n") if x]
    assert len(lines) == 3 and lines[1] == b'{"progress": 50, "image_url": '
    with pytest.raises(ValueError):
        json.loads(lines[1])
    assert json.loads(lines[0])["progress"] == 35 and json.loads(lines[2])["actions"] == GRID
    _, raw = stream(live, {"prompt": "x"}, {**NDJSON, "x-fake-fault": "stream_error_line"})
    events = lines_of(raw)
    assert [e.get("progress") for e in events[:-1]] == [35, 75]
    assert events[-1] == {
        "success": False,
        "task_id": events[0]["task_id"],
        "trace_id": events[-1]["trace_id"],
        "error": {"code": "api_error", "message": "fetch failed"},
    }


def test_task_fail_everywhere(live, receiver):
    spec = "task_fail;at_progress=75;code=bad_request;message=Banned prompt"
    ack = imagine(live, {"prompt": "x", "callback_url": receiver.url + "/tf"}, {**NDJSON, "x-fake-fault": spec})
    bodies = receiver.wait_for(live, "/tf", 2)
    assert bodies[0]["progress"] == 35 and bodies[1] == {
        "success": False,
        "task_id": ack["task_id"],
        "error": {"code": "bad_request", "message": "Banned prompt"},
    }
    rec = retrieve(live, ack["task_id"])
    assert (
        rec["response"]
        == {"success": False, "error": {"code": "bad_request", "message": "Banned prompt"}, "trace_id": ack["trace_id"]}
        and "finished_at" in rec
    )
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "task_fail"})
    assert r.status_code == 500 and r.json()["error"] == {"code": "api_error", "message": "fetch failed"}
    assert retrieve(live, r.json()["task_id"])["response"]["success"] is False
    live.state.configure(fail_at_progress=35, fail_code="forbidden", fail_message="no")
    r = post(live, IMAGINE, {"prompt": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_not_found_task_and_duplicate_task_id(live):
    out = imagine(live)
    live.state.inject(TASKS, "not_found_task")
    assert retrieve(live, out["task_id"]) == {}
    assert retrieve(live, out["task_id"])["id"] == out["task_id"]
    dup = imagine(live, {"prompt": "x", "async": True}, {**AUTH, "x-fake-fault": "duplicate_task_id"})
    assert dup["task_id"] == out["task_id"]


def test_sync_timeout_and_failure_status_knob(live):
    r = post(live, IMAGINE, {"prompt": "x", "timeout": 1})  # 1 simulated second < 11
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    task_id = r.json()["task_id"]
    assert until_done(live, task_id)["response"]["success"] is True  # it carried on
    live.state.configure(sync_failure_status="200")
    r = post(live, IMAGINE, {"prompt": "x"}, {**AUTH, "x-fake-fault": "task_fail;at_progress=35"})
    assert r.status_code == 200 and r.json()["success"] is False and r.json()["error"]["code"] == "api_error"


# --- tasks, timing, control -----------------------------------------------------------------------


def test_retrieve_batch_lists_filters_and_pages(live):
    acks = [imagine(live, {"prompt": f"p{i}", "async": True, "application_id": "a" if i else "b"}) for i in range(4)]
    ids = [a["task_id"] for a in acks]
    out = post(live, TASKS, {"action": "retrieve_batch"}).json()
    assert out["count"] == 4 and [i["id"] for i in out["items"]] == ids[::-1]
    out = post(live, TASKS, {"action": "retrieve_batch", "offset": 1, "limit": 2}).json()
    assert out["count"] == 4 and [i["id"] for i in out["items"]] == [ids[2], ids[1]]
    out = post(live, TASKS, {"action": "retrieve_batch", "ids": ids[:2], "trace_ids": [acks[3]["trace_id"]]}).json()
    assert {i["id"] for i in out["items"]} == {ids[0], ids[1], ids[3]}
    out = post(live, TASKS, {"action": "retrieve_batch", "application_id": "b"}).json()
    assert [i["id"] for i in out["items"]] == [ids[0]]
    cut = out["items"][0]["created_at"]
    out = post(live, TASKS, {"action": "retrieve_batch", "created_at_min": cut + 1e-6, "type": "imagine"}).json()
    assert out["count"] == 3
    assert post(live, TASKS, {"action": "retrieve_batch", "type": "videos"}).json() == {"items": [], "count": 0}


def plan(sim, task_id) -> tuple[float, float, int]:
    """A task's planned timeline in wall seconds: (start delay, step interval, steps)."""
    p = sim.state.task_map[task_id].plan
    return p.start_delay, p.interval, len(p.steps)


def test_time_scale_sets_the_pace(live):
    """The time scale sets each task's plan, and the simulator keeps to it: a task never ends before its
    plan says (how much later a busy machine makes it is not the simulator's pace: no upper bound)."""
    fast = imagine(live)
    assert plan(live, fast["task_id"]) == pytest.approx((2 * 0.002, 3 * 0.002, 3))  # (2 + 3 x 3) s at 0.002
    t0 = time.monotonic()
    slow = imagine(live, headers={**AUTH, "x-fake-time-scale": "0.04"})
    took = time.monotonic() - t0
    assert plan(live, slow["task_id"]) == pytest.approx((2 * 0.04, 3 * 0.04, 3))  # 0.44 s
    assert took >= 0.44 and retrieve(live, slow["task_id"])["duration"] >= 0.44
    grid = imagine(live)
    live.state.configure(time_scale=0.04, start_delay_s=0, step_interval_s=5)
    t0 = time.monotonic()
    single = act(live, grid["image_id"], "upscale1")
    took = time.monotonic() - t0
    assert plan(live, single["task_id"]) == pytest.approx((0, 5 * 0.5 * 0.04, 3))  # upscales go at half the time
    assert took >= 0.3 and retrieve(live, single["task_id"])["duration"] >= 0.3


def test_request_log_redacts_the_token_and_control_api_works(live):
    imagine(live, {"prompt": "a moth", "async": True})
    [entry] = live.state.requests(IMAGINE)
    assert entry["headers"]["authorization"] == "Bearer ***" and entry["body"] == {"prompt": "a moth", "async": True}
    assert entry["method"] == "POST" and entry["time"] > 0
    over_http = HTTP.get(live.base_url + "/__fake/requests", params={"path": IMAGINE}).json()
    assert over_http == [entry] and TOKEN not in json.dumps(over_http)
    cfg = HTTP.post(live.base_url + "/__fake/config", json={"moderation_word": "forbidden-word"}).json()
    assert cfg["moderation_word"] == "forbidden-word" and HTTP.get(live.base_url + "/__fake/config").json() == cfg
    assert HTTP.post(live.base_url + "/__fake/config", json={"no_such_knob": 1}).status_code == 400
    assert post(live, IMAGINE, {"prompt": "a forbidden-word"}).status_code == 403
    [task] = HTTP.get(live.base_url + "/__fake/tasks").json()
    assert task["request"]["prompt"] == "a moth" and task["state"] in ("pending", "processing", "succeeded")
    assert HTTP.get(live.base_url + "/__fake/callbacks").json() == []
    assert HTTP.post(live.base_url + "/__fake/reset").json() == {"ok": True}
    assert live.state.requests() == [] and live.state.tasks == {}
    assert live.state.config.moderation_word == "forbidden-word"  # reset without a config keeps it


def test_server_stops_with_work_in_flight_and_releases_it():
    """Stopping does not wait for running tasks: a sync request that would take 110 s is cut off
    (how quickly it stops is a figure for a benchmark, not a test)."""
    server = SimServer(SimConfig(tokens=["t"], time_scale=10.0)).start()
    headers = {"authorization": "Bearer t"}
    assert HTTP.post(server.base_url + IMAGINE, json={"prompt": "x", "async": True}, headers=headers).status_code == 200
    outcome: list = []

    def sync_request():
        try:
            outcome.append(HTTP.post(server.base_url + IMAGINE, json={"prompt": "x"}, headers=headers))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    hung = threading.Thread(target=sync_request, daemon=True)
    hung.start()
    wait_until(lambda: len(server.state.requests(IMAGINE)) == 2, "the sync request to reach the simulator")
    server.stop()
    hung.join(timeout=PATIENCE)
    assert not hung.is_alive(), "the request in flight was not released"
    [ended] = outcome  # a dropped connection, or an error answer: anything but the finished grid
    assert isinstance(ended, httpx.HTTPError) or ended.status_code != 200, f"served to its end: {ended.text}"
    with pytest.raises(httpx.ConnectError):
        HTTP.post(server.base_url + IMAGINE, json={"prompt": "x"}, headers=headers)


# --- what an embedded simulator keeps across restarts (its archive) ---------------------------------


def embedded_sim(archive, **knobs) -> SimServer:
    knobs = {"tokens": [TOKEN], "time_scale": 0.0, "embedded": True, "archive": str(archive), **knobs}
    return SimServer(SimConfig(**knobs)).start()


def fetched(sim, url: str) -> bytes:
    """An image URL's bytes as the server's client fetches them: the fixed origin is where ``sim`` listens."""
    assert url.startswith(f"{PUBLIC_ORIGIN}/"), url
    r = HTTP.get(sim.base_url + url[len(PUBLIC_ORIGIN) :])
    assert r.status_code == 200, r.text
    return r.content


def test_a_restarted_embedded_simulator_serves_and_acts_on_what_the_last_one_served(tmp_path):
    first = embedded_sim(tmp_path / "sim.db")
    try:
        grid = imagine(first, {"prompt": "a lighthouse in a storm"})
        single = act(first, grid["image_id"], "upscale2")
        region = act(
            first,
            single["image_id"],
            "variation_region",
            mask=mask_b64((1024, 1024), (0, 0, 512, 512)),
            prompt="a gull",
        )
        pictures = {x["image_id"]: fetched(first, x["raw_image_url"]) for x in (grid, single, region)}
        thumb = fetched(first, grid["image_url"])
    finally:
        first.stop()

    second = embedded_sim(tmp_path / "sim.db")
    try:
        assert second.base_url != first.base_url  # a new port: the URLs handed out do not name it
        # yesterday's URLs serve the same pixels, drawn again from what the archive kept
        for x in (grid, single, region):
            assert fetched(second, x["raw_image_url"]) == pictures[x["image_id"]], x["image_id"]
        assert fetched(second, grid["image_url"]) == thumb
        # yesterday's tasks read as they ended, by id and by trace id
        assert retrieve(second, grid["task_id"])["response"] == grid
        trace_id = retrieve(second, single["task_id"])["trace_id"]
        found = post(second, TASKS, {"action": "retrieve_batch", "trace_ids": [trace_id]}).json()
        assert [t["id"] for t in found["items"]] == [single["task_id"]] and found["count"] == 1
        assert post(second, TASKS, {"action": "retrieve", "trace_id": trace_id}).json()["id"] == single["task_id"]
        # and yesterday's images take their actions; ids go on growing
        zoomed = act(second, single["image_id"], "zoom_out_2x")
        again = act(second, grid["image_id"], "upscale2")
        assert fetched(second, again["raw_image_url"]) == pictures[single["image_id"]]  # the same quadrant
        assert Image.open(io.BytesIO(fetched(second, zoomed["raw_image_url"]))).size == (2048, 2048)
        assert int(zoomed["image_id"]) > max(map(int, pictures))
        assert post(second, IMAGINE, {"action": "upscale1", "image_id": single["image_id"]}).status_code == 400
    finally:
        second.stop()


def test_a_task_left_running_by_a_stopped_simulator_finishes_in_the_next(tmp_path):
    # 3.9 s in all: still running when it is read and when its simulator stops, however busy the machine.
    first = embedded_sim(tmp_path / "sim.db", time_scale=1.0, start_delay_s=3.0, step_interval_s=0.3)
    try:
        running = imagine(first, {"prompt": "a red kite over dunes", "async": True})
        assert "response" not in retrieve(first, running["task_id"])
    finally:
        first.stop()
    second = embedded_sim(tmp_path / "sim.db")
    try:
        done = until_done(second, running["task_id"])
        assert done["response"]["success"] is True and done["response"]["progress"] == 100
        assert Image.open(io.BytesIO(fetched(second, done["response"]["raw_image_url"]))).size == (2048, 2048)
        assert retrieve(second, running["task_id"])["response"] == done["response"]  # finished once
    finally:
        second.stop()
    third = embedded_sim(tmp_path / "sim.db")
    try:
        assert retrieve(third, running["task_id"])["response"] == done["response"]
    finally:
        third.stop()


def test_the_archive_keeps_the_newest_tasks_and_a_damaged_one_costs_only_the_past(tmp_path, caplog):
    first = embedded_sim(tmp_path / "sim.db", archive_tasks=3)
    try:
        made = [imagine(first, {"prompt": f"a paper boat number {i}"}) for i in range(5)]
    finally:
        first.stop()
    second = embedded_sim(tmp_path / "sim.db", archive_tasks=3)
    try:
        assert [retrieve(second, x["task_id"]) != {} for x in made] == [False, False, True, True, True]
        gone = made[0]["raw_image_url"]
        assert HTTP.get(second.base_url + gone[len(PUBLIC_ORIGIN) :]).status_code == 404
        assert post(second, IMAGINE, {"action": "upscale1", "image_id": made[0]["image_id"]}).status_code == 400
    finally:
        second.stop()
    (tmp_path / "bad.db").write_bytes(b"not a database " * 100)
    damaged = embedded_sim(tmp_path / "bad.db")
    try:
        assert "cannot be opened" in caplog.text and "bad.db" in caplog.text
        fetched(damaged, imagine(damaged, {"prompt": "a new day"})["raw_image_url"])  # today works
    finally:
        damaged.stop()
    with pytest.raises(ValueError, match="archive is for an embedded simulator"):
        SimConfig(archive=str(tmp_path / "x.db"))
