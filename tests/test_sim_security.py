"""The simulator as an attacker would meet it: what it fetches (nothing foreign when embedded; within
time, byte, pixel and address limits when a standalone one is allowed to), its control API (off when
embedded, behind a secret when one is set), its image URLs (unguessable when embedded), and the
intermediate previews it serves while a task runs."""

from __future__ import annotations

import io
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import TOKEN
from PIL import Image, ImageChops, ImageFilter, ImageStat
from support import PATIENCE

from mj_mcp.core.addresses import allowed, networks
from mj_mcp.sim import PUBLIC_ORIGIN, SimConfig, SimServer
from mj_mcp.sim.inputs import KEPT, InputRefused, download

AUTH = {"authorization": f"Bearer {TOKEN}"}
IMAGINE, TASKS = "/midjourney/imagine", "/midjourney/tasks"
RED = (220, 20, 20)
CONTROL = [
    "/__fake/config",
    "/__fake/inject",
    "/__fake/reset",
    "/__fake/tasks",
    "/__fake/requests",
    "/__fake/callbacks",
]


def png_bytes(size=(64, 48), colour=RED) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR that claims ``width`` x ``height``, and the start of an endless IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0x7FFFFFFF) + b"IDAT"


# --- a loopback peer that records what reached it -------------------------------------------------


class Peer:
    """A loopback HTTP server: each path runs a behaviour; every hit, and how many body bytes each
    response got out before the client went away, is recorded."""

    def __init__(self, routes: dict[str, Callable[[Peer, BaseHTTPRequestHandler], None]], host="127.0.0.1"):
        self.hits: list[str] = []
        self.sent: dict[str, int] = {}
        self.done: dict[str, threading.Event] = {p: threading.Event() for p in routes}
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?")[0]
                peer.hits.append(path)
                try:
                    routes.get(path, Peer.missing)(peer, self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what it refused, it refused early
                finally:
                    if path in peer.done:
                        peer.done[path].set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def finished(self, path: str) -> int:
        """Wait until the response on ``path`` has ended; the body bytes it got out."""
        assert self.done[path].wait(PATIENCE), f"{path} never ended"
        return self.sent.get(path, 0)

    @staticmethod
    def missing(peer, h):
        h.send_response(404)
        h.send_header("content-length", "0")
        h.end_headers()

    @staticmethod
    def image(data: bytes):
        def serve(peer, h):
            h.send_response(200)
            h.send_header("content-type", "image/png")
            h.send_header("content-length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        return serve

    @staticmethod
    def stream(path: str, head: bytes, total: int, *, length: bool, pause: float = 0.0, chunk: int = 65536):
        """``head``, then zeros up to ``total`` bytes in ``chunk``s, ``pause`` seconds apart."""

        def serve(peer, h):
            h.send_response(200)
            h.send_header("content-type", "image/png")
            if length:
                h.send_header("content-length", str(total))
            h.send_header("connection", "close")
            h.end_headers()
            peer.sent[path] = 0
            h.wfile.write(head)
            peer.sent[path] = len(head)
            while peer.sent[path] < total:
                n = min(chunk, total - peer.sent[path])
                h.wfile.write(bytes(n))
                h.wfile.flush()
                peer.sent[path] += n
                if pause:
                    time.sleep(pause)

        return serve

    @staticmethod
    def redirect(to: str):
        def serve(peer, h):
            h.send_response(302)
            h.send_header("location", to)
            h.send_header("content-length", "0")
            h.end_headers()

        return serve


@pytest.fixture
def peer():
    """Serves a red PNG at /red.png and counts every hit."""
    p = Peer({"/red.png": Peer.image(png_bytes())})
    yield p
    p.close()


def fetching(**knobs) -> SimConfig:
    """A standalone simulator's knobs with fetching on and loopback 127.0.0.1 let through, as tests need."""
    return SimConfig(tokens=[TOKEN], fetch_foreign=True, fetch_allow_private=["127.0.0.1/32"], **knobs)


def imagine(base_url: str, body: dict) -> dict:
    r = httpx.post(base_url + IMAGINE, json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def get_png(url: str) -> Image.Image:
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img.convert("RGB")


def at(sim: SimServer, url: str) -> str:
    """An image URL as the server's client fetches it: an embedded simulator's fixed origin is
    wherever it listens now."""
    return url.replace(PUBLIC_ORIGIN, sim.base_url, 1) if url.startswith(f"{PUBLIC_ORIGIN}/") else url


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


@pytest.fixture
def embedded():
    with SimServer(SimConfig(tokens=[TOKEN], time_scale=0.0, embedded=True)) as sim:
        yield sim


# --- what the simulator fetches -------------------------------------------------------------------


def test_embedded_fetches_nothing_but_its_own_images(embedded, peer):
    own = imagine(embedded.base_url, {"prompt": "a teddy bear"})
    foreign = f"{peer.url}/red.png"
    grid = imagine(embedded.base_url, {"prompt": f"{foreign} a cat in a red box"})
    assert get_png(at(embedded, grid["raw_image_url"])).size == (2048, 2048)  # a placeholder for the URL
    blend = imagine(embedded.base_url, {"prompt": f"{own['raw_image_url']} {foreign}"})
    get_png(at(embedded, blend["raw_image_url"]))
    single = imagine(embedded.base_url, {"action": "upscale1", "image_id": own["image_id"]})
    region = imagine(embedded.base_url, {"action": "variation_region", "image_id": single["image_id"], "mask": foreign})
    get_png(at(embedded, region["raw_image_url"]))
    assert peer.hits == []
    r = httpx.post(
        embedded.base_url + IMAGINE, json={"prompt": "x", "callback_url": foreign}, headers=AUTH, timeout=PATIENCE
    )
    assert r.status_code == 400 and "callback_url" in r.json()["error"]["message"]
    assert peer.hits == []
    # a prompt is only a prompt: fault tokens are upstream text here, and nothing is logged
    assert imagine(embedded.base_url, {"prompt": "a cat [[fault:500]]"})["success"] is True
    assert embedded.state.requests() == []


def test_a_standalone_simulator_fetches_only_when_told_to(fresh_sim, peer):
    prompt = f"{peer.url}/red.png a cat"
    stand_in = get_png(imagine(fresh_sim.base_url, {"prompt": prompt})["raw_image_url"])
    assert peer.hits == []  # fetching is off unless the simulator was started with it
    with SimServer(fetching(time_scale=0.0)) as sim:
        fed = get_png(imagine(sim.base_url, {"prompt": prompt})["raw_image_url"])
        assert peer.hits == ["/red.png"]
        assert mean_diff(fed, stand_in) > 5  # the same picture, but the fetched input shows instead of a swatch


def post_ok(base_url: str, path: str, body: dict) -> dict:
    r = httpx.post(base_url + path, json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_edits_videos_and_describes_fetch_foreign_pictures_only_when_a_standalone_one_may(embedded, peer):
    foreign = f"{peer.url}/red.png"
    for path, body in (
        ("/midjourney/edits", {"image_url": foreign, "prompt": "a red box"}),
        ("/midjourney/videos", {"image_url": foreign, "end_image_url": foreign, "prompt": "x"}),
        ("/midjourney/describe", {"image_url": foreign}),
    ):
        made = post_ok(embedded.base_url, path, body)
        for url in [made.get("raw_image_url"), *made.get("video_urls", [])[:1]]:
            if url:
                assert httpx.get(at(embedded, url), timeout=60).status_code == 200  # drawn on a placeholder
    assert peer.hits == []
    # a standalone simulator told to fetch takes the picture's shape (64x48: 4:3) and its colours
    with SimServer(fetching(time_scale=0.0)) as sim:
        edit = post_ok(sim.base_url, "/midjourney/edits", {"image_url": foreign, "prompt": "a red box"})
        assert (edit["image_width"], edit["image_height"]) == get_png(edit["raw_image_url"]).size == (2368, 1760)
        video = post_ok(sim.base_url, "/midjourney/videos", {"image_url": foreign, "resolution": "480p"})
        assert (video["image_width"], video["image_height"]) == (640, 480)
        red = ImageStat.Stat(get_png(video["image_url"])).mean
        assert red[0] > 150 and red[1] < 120  # the fetched picture is the first frame
        described = post_ok(sim.base_url, "/midjourney/describe", {"image_url": foreign})
        assert all(d.endswith(" --ar 4:3") for d in described["descriptions"])
        assert set(peer.hits) == {"/red.png"}  # fetched once, then from the inputs' LRU


# --- fetch limits, against real servers -----------------------------------------------------------


@pytest.mark.anyio
async def test_a_private_first_url_is_refused_before_connecting(peer):
    with pytest.raises(InputRefused, match="not a public address"):
        await download(SimConfig(fetch_foreign=True), f"{peer.url}/red.png")
    assert peer.hits == []
    assert await download(fetching(), f"{peer.url}/red.png") == png_bytes()  # the test-only knob lets it through


@pytest.mark.anyio
async def test_a_body_over_the_byte_limit_is_refused_while_streaming():
    total = 64 << 20
    big = Peer(
        {
            "/sized.png": Peer.stream("/sized.png", b"", total, length=True),
            "/chunked.png": Peer.stream("/chunked.png", b"", total, length=False),
        }
    )
    try:
        cfg = fetching(fetch_max_bytes=256 << 10)
        with pytest.raises(InputRefused, match="over 262144"):
            await download(cfg, f"{big.url}/sized.png")  # refused on its Content-Length
        with pytest.raises(InputRefused, match="over 262144"):
            await download(cfg, f"{big.url}/chunked.png")  # refused once the bytes pass the limit
        assert big.finished("/sized.png") < total // 2
        assert big.finished("/chunked.png") < total // 2
    finally:
        big.close()


@pytest.mark.anyio
async def test_an_image_over_the_pixel_limit_is_refused_from_its_header():
    total = 64 << 20
    huge = Peer({"/huge.png": Peer.stream("/huge.png", png_header(5000, 5000), total, length=False)})
    try:
        with pytest.raises(InputRefused, match="5000x5000"):
            await download(fetching(fetch_max_pixels=4_000_000), f"{huge.url}/huge.png")
        assert huge.finished("/huge.png") < total // 2
    finally:
        huge.close()


@pytest.mark.anyio
async def test_a_slow_server_is_cut_off_at_the_time_limit():
    total = 10_000  # a byte every 10 ms: 100 s in all, far past the limit
    slow = Peer({"/slow.png": Peer.stream("/slow.png", b"", total, length=True, pause=0.01, chunk=1)})
    try:
        with pytest.raises(InputRefused, match=r"within 0\.5 s"):
            await download(fetching(fetch_timeout_s=0.5), f"{slow.url}/slow.png")
        assert slow.finished("/slow.png") < total
    finally:
        slow.close()


@pytest.mark.anyio
async def test_redirects_to_private_addresses_are_refused_at_every_hop():
    inside = Peer({"/secret": Peer.image(png_bytes())}, host="127.0.0.2")  # loopback too, but not let through
    hops = Peer(
        {
            "/to-inside": Peer.redirect(f"{inside.url}/secret"),
            "/to-metadata": Peer.redirect("http://169.254.169.254/latest/meta-data/"),
            "/to-ipv6-loopback": Peer.redirect("http://[::1]:9/x"),
            "/to-mapped": Peer.redirect("http://[::ffff:127.0.0.2]:9/x"),
            "/to-file": Peer.redirect("file:///etc/passwd"),
            "/loop": Peer.redirect("/loop"),
            "/to-red": Peer.redirect("/red.png"),
            "/red.png": Peer.image(png_bytes()),
        }
    )
    try:
        cfg = fetching()
        for path in ("/to-inside", "/to-metadata", "/to-ipv6-loopback", "/to-mapped"):
            with pytest.raises(InputRefused, match="not a public address"):
                await download(cfg, hops.url + path)
        with pytest.raises(InputRefused, match="only http and https"):
            await download(cfg, hops.url + "/to-file")
        with pytest.raises(InputRefused, match="redirects"):
            await download(cfg, hops.url + "/loop")
        assert inside.hits == []
        assert await download(cfg, hops.url + "/to-red") == png_bytes()  # a redirect as such is fine
    finally:
        hops.close()
        inside.close()


def test_decoded_inputs_are_kept_in_a_small_lru(peer):
    with SimServer(fetching(time_scale=0.0)) as sim:
        imagine(sim.base_url, {"prompt": "a cat", "async": True})  # binds the loop fetches run on
        urls = [f"{peer.url}/red.png?n={i}" for i in range(KEPT + 4)]
        for url in urls:
            assert sim.state.inputs.image(url) is not None
        assert len(sim.state.inputs) == KEPT
        sim.state.inputs.image(urls[-1])
        assert len(peer.hits) == KEPT + 4  # the newest is remembered
        sim.state.inputs.image(urls[0])
        assert len(peer.hits) == KEPT + 5  # the oldest was forgotten, and is fetched again


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.9.9.9", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2002:7f00:1::", False),
        ("2002:c0a8:101::1", False),
        ("not-an-address", False),
    ],
)
def test_the_address_check(address, public):
    assert allowed(address) is public


def test_the_test_only_networks_let_exactly_those_through():
    also = networks(["127.0.0.1/32", "fd00::/8"])
    assert allowed("127.0.0.1", also) and allowed("fd00::5", also)
    assert not allowed("127.0.0.2", also) and not allowed("::1", also) and not allowed("10.0.0.1", also)


def test_embedded_cannot_be_told_to_fetch():
    with pytest.raises(ValueError, match="an embedded simulator fetches nothing"):
        SimConfig(embedded=True, fetch_foreign=True)


# --- the control API ------------------------------------------------------------------------------


def test_embedded_has_no_control_api(embedded):
    imagine(embedded.base_url, {"prompt": "a secret prompt", "async": True})
    for path in CONTROL:
        for method in ("GET", "POST"):
            r = httpx.request(method, embedded.base_url + path, json={"tokens": ["mine"]}, timeout=PATIENCE)
            assert r.status_code == 404, (method, path)
            assert TOKEN not in r.text and "secret prompt" not in r.text
    assert embedded.state.config.tokens == [TOKEN] and len(embedded.state.tasks) == 1  # nothing was reset


def test_a_control_secret_is_required_when_set():
    with SimServer(SimConfig(tokens=[TOKEN], control_secret="s3cret")) as sim:
        for headers in ({}, {"x-sim-secret": "wrong"}, {"authorization": f"Bearer {TOKEN}"}):
            for path in CONTROL:
                r = httpx.request(
                    "GET" if path != "/__fake/reset" else "POST", sim.base_url + path, headers=headers, timeout=PATIENCE
                )
                assert r.status_code == 401 and "x-sim-secret" in r.json()["error"]["message"], (path, headers)
        ok = {"x-sim-secret": "s3cret"}
        shown = httpx.get(sim.base_url + "/__fake/config", headers=ok, timeout=PATIENCE).json()
        assert shown["tokens"] == [TOKEN] and "control_secret" not in shown
        # what the simulator exposes and reaches is fixed at start, secret or not
        r = httpx.post(sim.base_url + "/__fake/config", headers=ok, json={"fetch_foreign": True}, timeout=PATIENCE)
        assert r.status_code == 400 and "set when the simulator starts" in r.text
        r = httpx.post(sim.base_url + "/__fake/reset", headers=ok, json={"control_secret": None}, timeout=PATIENCE)
        assert r.status_code == 400 and sim.state.config.control_secret == "s3cret"
        assert (
            httpx.post(
                sim.base_url + "/__fake/reset", headers=ok, json={"tokens": ["t2"]}, timeout=PATIENCE
            ).status_code
            == 200
        )
        assert sim.state.config.tokens == ["t2"] and sim.state.config.control_secret == "s3cret"


# --- image URLs -----------------------------------------------------------------------------------


def test_embedded_image_urls_cannot_be_guessed_from_one_another(embedded):
    a = imagine(embedded.base_url, {"prompt": "a fox", "split_images": True})
    b = imagine(embedded.base_url, {"prompt": "a hen"})
    pattern = rf"^{re.escape(PUBLIC_ORIGIN)}/__fake/img/([0-9a-f]{{32}})/(\d+)\.png$"
    (secret_a, id_a), (secret_b, id_b) = (re.match(pattern, x["raw_image_url"]).groups() for x in (a, b))
    assert (id_a, id_b) == (a["image_id"], b["image_id"]) and secret_a != secret_b
    assert get_png(at(embedded, a["image_url"])).size == (1024, 1024)
    assert get_png(at(embedded, a["sub_image_urls"][1])).size == (1024, 1024)
    base = embedded.base_url + "/__fake/img/"
    for guess in (f"{id_a}.png", f"{id_a}/0_1.png", f"{secret_a}/{id_b}.png", f"{'0' * 32}/{id_a}.png"):
        assert httpx.get(base + guess, timeout=PATIENCE).status_code == 404, guess


# --- intermediate previews ------------------------------------------------------------------------


def sharpness(img: Image.Image) -> float:
    return ImageStat.Stat(img.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]


def previews_while_running(sim: SimServer) -> tuple[dict[int, Image.Image], dict, str]:
    """Stream one slow task; ask for its preview at every intermediate line, while the task runs. Each
    request leaves as its line arrives, without waiting for the one before: the simulator serves a
    preview asked for while the task runs, however long drawing it takes (the first draws the whole
    picture: seconds on a busy machine). A step every 1.5 s is the time a request has to leave."""
    headers = {**AUTH, "accept": "application/x-ndjson", "x-fake-time-scale": "0.01", "x-fake-step-interval": "150"}
    asked: dict[int, Future] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        with httpx.stream(
            "POST", sim.base_url + IMAGINE, json={"prompt": "a comet over a lake"}, headers=headers, timeout=PATIENCE
        ) as r:
            for line in r.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["progress"] < 100:
                    url = at(sim, event["raw_image_url"])
                    asked[event["progress"]] = pool.submit(httpx.get, url, timeout=PATIENCE)
                else:
                    final = event
        seen: dict[int, Image.Image] = {}
        for progress, answer in asked.items():
            preview = answer.result()
            assert preview.status_code == 200 and preview.headers["content-type"] == "image/webp", progress
            seen[progress] = Image.open(io.BytesIO(preview.content)).convert("RGB")
    return seen, final, url


@pytest.mark.parametrize("mode", ["standalone", "embedded"])
def test_previews_are_blurred_renditions_served_while_running_and_gone_after(mode):
    with SimServer(SimConfig(tokens=[TOKEN], time_scale=0.01, embedded=mode == "embedded")) as sim:
        seen, final, url = previews_while_running(sim)
        assert sorted(seen) == [35, 75] and all(p.size == (512, 512) for p in seen.values())
        target = get_png(at(sim, final["raw_image_url"])).resize((512, 512))
        tractor = imagine(sim.base_url, {"prompt": "a green tractor"})
        other = get_png(at(sim, tractor["raw_image_url"])).resize((512, 512))
        early, late = seen[35], seen[75]
        assert sharpness(early) < sharpness(late) < sharpness(target)  # sharper as progress grows
        assert mean_diff(late, target) < mean_diff(early, target) < mean_diff(early, other)  # it is that picture
        assert httpx.get(url, timeout=PATIENCE).status_code == 404  # destroyed once the task has finished


# --- the real server on an embedded simulator -----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_server_works_against_an_embedded_simulator(mode, peer, sim):
    """Secret URLs under the fixed origin resolve for thumbnails and blends; a foreign URL in a prompt
    reaches nobody."""
    from conftest import settings_for
    from mcp import Client
    from support import call

    from mj_mcp.server import build_server

    # embed_sim: the lifespan starts an embedded simulator of its own, with its own URL and token
    settings = settings_for(sim, preview_px=512, embed_sim=True, sim_time_scale=0.0)
    async with Client(build_server(settings), mode=mode) as c:
        _, bear, _, _ = await call(c, "imagine", prompt="a teddy bear")
        _, saw, _, _ = await call(c, "imagine", prompt=f"{peer.url}/red.png a chainsaw")
        assert re.search(rf"^{re.escape(PUBLIC_ORIGIN)}/__fake/img/[0-9a-f]{{32}}/\d+\.png$", bear["raw_image_url"])
        result, blend, text, _ = await call(c, "blend", images=[bear["name"], saw["name"]], aspect_ratio="1:1")
        assert not result.is_error, text
        _, single, _, _ = await call(c, "apply_action", image=blend["name"], action="upscale2")
        result, _, text, _ = await call(
            c,
            "inpaint_region",
            image=single["name"],
            prompt="a dog",
            region={"shape": "rect", "box": [0.25, 0.5, 0.75, 1.0]},
        )
        assert not result.is_error, text
        assert any(block.type == "image" for block in result.content)  # its thumbnail was downloaded
    assert peer.hits == []


@pytest.mark.anyio
async def test_only_the_fixed_origin_itself_is_fetched_from_where_the_simulator_listens(embedded):
    """The client fetches the embedded simulator's fixed origin from its live base URL, and nothing
    that merely looks like that origin."""
    from conftest import settings_for

    from mj_mcp.errors import FetchFailed
    from mj_mcp.upstream import Upstream

    own = imagine(embedded.base_url, {"prompt": "a fox"})
    path = own["raw_image_url"].removeprefix(PUBLIC_ORIGIN)
    upstream = Upstream(settings_for(embedded), api_alias=PUBLIC_ORIGIN)
    try:
        data, _ = await upstream.fetch_image(own["raw_image_url"], timeout=PATIENCE)
        assert data.startswith(b"\x89PNG")
        for lookalike in (
            f"{PUBLIC_ORIGIN}.example.com{path}",
            f"http://simulator.mj-mcp.invalid{path}",
            f"{PUBLIC_ORIGIN}@{embedded.base_url.removeprefix('http://')}{path}",
        ):
            # refused, or failing to resolve: either way FetchFailed (a timeout would be one too)
            with pytest.raises(FetchFailed):
                await upstream.fetch_image(lookalike, timeout=10)
    finally:
        await upstream.aclose()
