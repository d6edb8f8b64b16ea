"""Seeing and keeping images: thumbnails in results, mj://images resources, the disk cache that
outlives the CDN, export_image's path safety, list_images, and resource list-changed notifications,
through the SDK client in both protocol eras against the simulator over loopback HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import TOKEN, settings_for
from mcp import Client
from mcp.types import ResourceListChangedNotification
from PIL import Image, ImageChops
from support import PATIENCE, call, eventually

from mj_mcp.errors import FetchFailed
from mj_mcp.media.cache import TRAILER, ImageCache
from mj_mcp.media.previews import fitted, quadrant_label_boxes
from mj_mcp.server import build_server
from mj_mcp.upstream import Upstream

pytestmark = pytest.mark.anyio

MB = 1 << 20
# The image cache of each ``client`` fixture's server, by the client's id.
CACHE_DIRS: dict[int, Path] = {}


@pytest.fixture(params=["auto", "legacy"])
async def client(request, fresh_sim):
    """The shared ``client`` fixture with thumbnails on: this file is about them."""
    settings = settings_for(fresh_sim, preview_px=512)
    async with Client(build_server(settings), mode=request.param) as c:
        CACHE_DIRS[id(c)] = settings.cache_dir
        yield c
    del CACHE_DIRS[id(c)]


def parts(result):
    """(image block, resource_link block) of a result, each None when absent."""
    by_type = {c.type: c for c in result.content}
    assert result.content[0].type == "text"
    return by_type.get("image"), by_type.get("resource_link")


def decode(block) -> Image.Image:
    assert block.mime_type == "image/jpeg"
    img = Image.open(io.BytesIO(base64.b64decode(block.data)))
    assert img.format == "JPEG"
    return img.convert("RGB")


def result_size(result) -> int:
    return len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)))


async def read_image(client, uri) -> tuple[bytes, str]:
    contents = (await client.read_resource(uri)).contents
    assert len(contents) == 1
    return base64.b64decode(contents[0].blob), contents[0].mime_type


def differs(a: Image.Image, b: Image.Image, box) -> float:
    """Mean absolute difference of two same-sized pictures inside box (0-255)."""
    diff = ImageChops.difference(a.crop(box), b.crop(box)).convert("L")
    return sum(i * n for i, n in enumerate(diff.histogram())) / (diff.width * diff.height)


async def test_a_grid_comes_with_a_labelled_thumbnail_and_a_link_to_the_full_image(client, fresh_sim):
    result, sc, text, _ = await call(client, "imagine", prompt="a red fox in snow")
    assert not result.is_error, text
    image, link = parts(result)
    thumb = decode(image)
    assert max(thumb.size) == 512 and thumb.size == (512, 512)
    assert len(base64.b64decode(image.data)) < 150_000
    assert result_size(result) < MB // 4
    assert sc["uri"] == "mj://images/fox-snow" == link.uri and link.name == "fox-snow"
    assert link.mime_type == "image/png" and "preview unavailable" not in text
    # the resource is byte-identical to what the simulator serves at the raw URL
    data, mime = await read_image(client, sc["uri"])
    assert mime == "image/png" and data == httpx.get(sc["raw_image_url"], timeout=PATIENCE).content
    # labels 1-4 sit in the quadrants' corners; elsewhere the thumbnail is the picture itself
    plain = Image.open(io.BytesIO(data)).convert("RGB").resize(thumb.size, Image.LANCZOS)
    boxes = quadrant_label_boxes(thumb.size)
    assert [b[:2] for b in boxes] == sorted((b[:2] for b in boxes), key=lambda p: (p[1], p[0]))
    for box in boxes:
        assert differs(thumb, plain, box) > 40  # a dark tile with a white digit
        inner = thumb.crop(box).convert("L")
        assert inner.getextrema()[1] > 200 and sorted(inner.getdata())[len(inner.getdata()) // 2] < 60
    assert differs(thumb, plain, (0, 300, 512, 512)) < 12  # JPEG noise only, no label there


async def test_a_single_image_thumbnail_has_no_labels(client, fresh_sim):
    await call(client, "imagine", prompt="a red fox in snow")
    result, sc, text, _ = await call(client, "apply_action", image="fox-snow", action="upscale3")
    assert not result.is_error, text
    image, link = parts(result)
    thumb = decode(image)
    assert thumb.size == (512, 512) and link.uri == "mj://images/fox-snow.u3"
    data, _ = await read_image(client, link.uri)
    plain = Image.open(io.BytesIO(data)).convert("RGB").resize(thumb.size, Image.LANCZOS)
    for box in quadrant_label_boxes(thumb.size):
        assert differs(thumb, plain, box) < 12
    # get_task on the finished image shows it again; a result stays far below 1 MB
    again, sc2, _, _ = await call(client, "get_task", ref="fox-snow.u3")
    assert parts(again)[0] is not None and sc2["uri"] == sc["uri"] and result_size(again) < MB // 4


async def test_running_and_failed_records_get_no_preview(client, fresh_sim):
    reply = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine",
        json={"prompt": "a slow owl", "async": True},
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=PATIENCE,
    )
    result, sc, _, _ = await call(client, "get_task", ref=reply.json()["task_id"])
    if sc["status"] == "running":
        assert parts(result) == (None, None) and sc["uri"] is None
    fresh_sim.state.configure(fail_at_progress=35)
    result, sc, text, _ = await call(client, "imagine", prompt="a doomed heron")
    assert result.is_error and sc["status"] == "failed" and sc.get("uri") is None
    assert [c.type for c in result.content] == ["text"]


def image_downloads(sim, image_id: str) -> list[str]:
    """The query string of each request the simulator served for this image's own file."""
    return [r["query"] for r in sim.state.requests() if r["path"].endswith(f"/{image_id}.png")]


async def kept(cache_dir, image_id: str) -> None:
    """Wait (the suite's patience) until the full image is in the on-disk cache: it is kept in the background."""
    await eventually(lambda: list(cache_dir.glob(f"{image_id}-*.png")), f"{image_id} kept in the cache")


async def test_the_cache_serves_images_after_the_simulator_stopped_serving_them(client, fresh_sim, tmp_path):
    _, sc, _, _ = await call(client, "imagine", prompt="a paper lantern")
    served = httpx.get(sc["raw_image_url"], timeout=PATIENCE).content
    # Kept in the background from the result on, with no read asking for it.
    await kept(cache_dir_of(client), sc["image_id"])
    fresh_sim.state.configure(serve_images=False)
    assert httpx.get(sc["raw_image_url"], timeout=PATIENCE).status_code == 404
    data, mime = await read_image(client, sc["uri"])
    assert data == served and mime == "image/png"
    result, _, _, _ = await call(client, "get_task", ref="paper-lantern")
    assert parts(result)[0] is not None


async def test_an_image_that_cannot_be_fetched_is_reported_in_one_line(client, fresh_sim):
    fresh_sim.state.configure(serve_images=False)
    result, sc, text, _ = await call(client, "imagine", prompt="a vanishing comet")
    assert not result.is_error and sc["status"] == "completed"
    image, link = parts(result)
    assert image is None and link is not None
    notes = [line for line in text.splitlines() if line.startswith("preview unavailable:")]
    assert notes == ["preview unavailable: download failed (HTTP 404)"]
    with pytest.raises(Exception, match="download failed"):
        await client.read_resource(sc["uri"])


def cache_dir_of(client) -> Path:
    return CACHE_DIRS[id(client)]


async def test_a_thumbnail_is_made_from_a_rendition_of_its_size_and_the_full_image_is_downloaded_once(fresh_sim):
    """The thumbnail comes from the URL's own rendition at exactly the thumbnail's size (no full-size
    decode); the full image is still downloaded, once, and kept: a read and an export join that download."""
    settings = settings_for(fresh_sim, preview_px=512)
    async with Client(build_server(settings)) as c:
        result, sc, text, _ = await call(c, "imagine", prompt="a red fox in snow", aspect_ratio="16:9")
        image, _ = parts(result)
        thumb = decode(image)
        size = fitted((sc["raw_width"], sc["raw_height"]), 512)
        assert thumb.size == size and size[0] == 512 and "preview unavailable" not in text
        data, _ = await read_image(c, sc["uri"])
        exported, ex, _, _ = await call(c, "export_image", image=sc["name"], path="fox.png", overwrite=True)
        assert not exported.is_error and ex["bytes"] == len(data)
        await kept(settings.cache_dir, sc["image_id"])
    assert sorted(image_downloads(fresh_sim, sc["image_id"])) == ["", f"width={size[0]}&height={size[1]}"]
    # The rendition's thumbnail looks like the full image's, labels apart.
    plain = Image.open(io.BytesIO(data)).convert("RGB").resize(thumb.size, Image.LANCZOS)
    assert differs(thumb, plain, (0, size[1] // 2, *size)) < 12


async def test_a_thumbnail_is_made_once_and_kept_beside_the_image(fresh_sim):
    """A restart on the same cache shows the same thumbnail with nothing downloaded or decoded again,
    even once the full image is gone from the cache and its URL no longer serves it."""
    settings = settings_for(fresh_sim, preview_px=512, store="memory")
    async with Client(build_server(settings)) as c:
        result, sc, _, _ = await call(c, "imagine", prompt="a paper lantern")
        first = parts(result)[0].data
        await kept(settings.cache_dir, sc["image_id"])
    thumbnails = list((settings.cache_dir / "thumbnails").iterdir())
    assert len(thumbnails) == 1 and thumbnails[0].read_bytes().startswith(base64.b64decode(first))
    for full in settings.cache_dir.glob(f"{sc['image_id']}-*.png"):
        full.unlink()
    fresh_sim.state.configure(serve_images=False)
    async with Client(build_server(settings)) as c:
        # The memory store forgot it: the task is adopted again by its id, the same image.
        again, _, text, _ = await call(c, "get_task", ref=sc["task_id"])
    assert parts(again)[0] is not None and parts(again)[0].data == first, text


async def test_previews_off_download_nothing_until_the_image_is_read(fresh_sim, tmp_path):
    async with Client(build_server(settings_for(fresh_sim, preview_px=None))) as c:
        result, sc, text, _ = await call(c, "imagine", prompt="a quiet pond")
        image, link = parts(result)
        assert image is None and link.uri == sc["uri"] and "preview" not in text
        assert not [r for r in fresh_sim.state.requests() if r["path"].startswith("/__fake/img/")]
        data, _ = await read_image(c, sc["uri"])  # fetched now, and kept
        assert data.startswith(b"\x89PNG")
        fresh_sim.state.configure(serve_images=False)
        assert (await read_image(c, sc["uri"]))[0] == data


async def test_resources_list_this_sessions_images_and_unknown_names_are_errors(client, fresh_sim):
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["mj://images/{name}", "mj://videos/{name}/{clip}"]
    await call(client, "imagine", prompt="a red fox in snow")
    await call(client, "imagine", prompt="a paper boat")
    listed = [r.uri for r in (await client.list_resources()).resources]
    assert [str(u) for u in listed] == ["mj://images/paper-boat", "mj://images/fox-snow"]
    with pytest.raises(Exception, match="no image 'nothing'"):
        await client.read_resource("mj://images/nothing")


async def test_export_writes_the_full_image_inside_the_export_dir_only(fresh_sim, tmp_path):
    root = tmp_path / "project"
    outside = tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    (root / "escape").symlink_to(outside)
    async with Client(build_server(settings_for(fresh_sim, export_dir=root)), mode="legacy") as c:
        _, sc, _, _ = await call(c, "imagine", prompt="a red fox in snow")
        served = httpx.get(sc["raw_image_url"], timeout=PATIENCE).content
        result, ex, text, _ = await call(c, "export_image", image="fox-snow", path="assets/hero")
        assert not result.is_error, text
        assert ex["path"] == str(root / "assets" / "hero.png") and ex["bytes"] == len(served)
        assert (root / "assets" / "hero.png").read_bytes() == served
        # an existing file is kept unless overwrite
        result, _, text, _ = await call(c, "export_image", image="fox-snow", path="assets/hero.png")
        assert result.is_error and "exists" in text and "overwrite" in text
        result, _, text, _ = await call(c, "export_image", image="fox-snow", path="assets/hero.png", overwrite=True)
        assert not result.is_error, text
        # absolute paths inside are fine; escapes are refused and write nothing
        result, ex, text, _ = await call(c, "export_image", image="fox-snow", path=str(root / "abs.png"))
        assert not result.is_error and ex["path"] == str(root / "abs.png")
        for bad in (
            "../out.png",
            "assets/../../out.png",
            str(outside / "out.png"),
            "/etc/passwd-copy",
            "escape/out.png",
        ):
            result, _, text, _ = await call(c, "export_image", image="fox-snow", path=bad)
            assert result.is_error and "outside the export directory" in text, (bad, text)
        result, _, text, _ = await call(c, "export_image", image="fox-snow", path=".")
        assert result.is_error and "the export directory itself" in text, text
        assert list(outside.iterdir()) == [] and not (tmp_path / "out.png").exists()
        result, _, text, _ = await call(c, "export_image", image="nope", path="x.png")
        assert result.is_error and "no image or task 'nope'" in text


async def test_list_images_is_newest_first_with_lineage_and_limit(client, fresh_sim):
    result, sc, text, _ = await call(client, "list_images")
    assert not result.is_error and sc == {"images": [], "total": 0} and "start with imagine" in text
    await call(client, "imagine", prompt="a red fox in snow")
    await call(client, "imagine", prompt="a paper boat")
    await call(client, "apply_action", image="fox-snow", action="upscale2")
    await call(client, "apply_action", image="fox-snow.u2", action="zoom_out_2x")
    result, sc, text, _ = await call(client, "list_images")
    names = [i["name"] for i in sc["images"]]
    assert names == ["fox-snow.u2.z2", "fox-snow.u2", "paper-boat", "fox-snow"] and sc["total"] == 4
    first = sc["images"][0]
    assert first == {
        "name": "fox-snow.u2.z2",
        "kind": "grid",
        "size": "2048x2048",
        "status": "completed",
        "parent": "fox-snow.u2",
        "prompt": "a red fox in snow",
    }
    assert text.splitlines()[0] == 'fox-snow.u2.z2: grid, 2048x2048, from fox-snow.u2 "a red fox in snow"'
    assert len(text.splitlines()) == 4
    _, sc, _, _ = await call(client, "list_images", lineage_of="fox-snow")
    assert [i["name"] for i in sc["images"]] == ["fox-snow.u2.z2", "fox-snow.u2", "fox-snow"]
    _, sc, _, _ = await call(client, "list_images", lineage_of="fox-snow.u2.z2", limit=2)
    assert [i["name"] for i in sc["images"]] == ["fox-snow.u2.z2", "fox-snow.u2"] and sc["total"] == 3
    result, _, text, _ = await call(client, "list_images", limit=1)
    assert "3 older" in text
    await call(client, "blend", images=["fox-snow", "paper-boat"], prompt="a fox in a boat --ar 1:1")
    _, sc, _, _ = await call(client, "list_images", limit=1)
    assert sc["images"][0]["prompt"] == "a fox in a boat"  # the words, without the image URLs and flags
    result, _, text, _ = await call(client, "list_images", lineage_of="fox-snw")
    assert result.is_error and "fox-snow" in text


async def test_resource_list_changes_are_notified_in_the_handshake_era(fresh_sim):
    seen = []

    async def on_message(message):
        if isinstance(message, ResourceListChangedNotification):
            seen.append(message)

    # A grid takes 3.3 s: the call answers, and the list is read, well before it ends on a busy machine too.
    fresh_sim.state.configure(time_scale=0.3)
    async with Client(build_server(settings_for(fresh_sim)), mode="legacy", message_handler=on_message) as c:
        await call(c, "imagine", prompt="a red fox in snow", wait_seconds=0)  # answered while running
        assert seen == []  # resources/list shows finished images only: nothing changed yet
        assert [r.name for r in (await c.list_resources()).resources] == []
        await eventually(lambda: seen, "the list-changed notification")  # it finished after the call
        assert [r.name for r in (await c.list_resources()).resources] == ["fox-snow"]


async def test_resource_list_changes_are_notified_in_the_2026_era(fresh_sim):
    async with Client(build_server(settings_for(fresh_sim))) as c:
        events = []
        async with c.listen(resources_list_changed=True) as sub:
            async with anyio.create_task_group() as tg:

                async def collect():
                    async for event in sub:
                        events.append(event)
                        tg.cancel_scope.cancel()

                tg.start_soon(collect)
                await call(c, "imagine", prompt="a red fox in snow")
                await eventually(lambda: events, "the list-changed event")  # the image finished: the list changed
                tg.cancel_scope.cancel()
        assert events and [r.name for r in (await c.list_resources()).resources] == ["fox-snow"]


async def test_image_downloads_send_the_token_only_to_the_api_origin(fresh_sim):
    """The API's own origin gets the token; the same server under another name is another origin, over
    plain http at a loopback address: refused before any request (upstream/guard.py)."""
    reply = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine",
        json={"prompt": "a kite"},
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=PATIENCE,
    )
    raw = reply.json()["raw_image_url"]
    other_host = raw.replace("127.0.0.1", "localhost")  # same server, another origin
    upstream = Upstream(settings_for(fresh_sim))
    try:
        same, ctype = await upstream.fetch_image(raw, timeout=PATIENCE)
        with pytest.raises(FetchFailed, match="refused: "):
            await upstream.fetch_image(other_host, timeout=PATIENCE)
    finally:
        await upstream.aclose()
    assert same.startswith(b"\x89PNG") and ctype == "image/png"
    fetched = [r for r in fresh_sim.state.requests() if r["path"].startswith("/__fake/img/")]
    assert len(fetched) == 1
    assert {k.lower(): v for k, v in fetched[0]["headers"].items()}.get("authorization", "").startswith("Bearer ")


def test_the_cache_evicts_the_least_recently_used_images(tmp_path):
    cache = ImageCache(tmp_path, max_bytes=250 + 2 * TRAILER)  # room for two 100-byte images
    for key in ("a", "b"):
        cache.put_sync(key, b"\x89PNG\r\n\x1a\n" + bytes(92), "image/png")  # 100 bytes each
    os.utime(tmp_path / "a.png", (1, 1)), os.utime(tmp_path / "b.png", (2, 2))
    assert cache.get_sync("a") is not None  # touching a makes b the least recently used
    cache.put_sync("c", b"\xff\xd8\xff" + bytes(97), "image/jpeg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "c.jpg"]
    assert cache.get_sync("c") == (b"\xff\xd8\xff" + bytes(97), "image/jpeg")
    assert cache.get_sync("b") is None
    cache.put_sync("huge", bytes(1000), "image/png")  # larger than the cap alone: kept, everything else out
    assert cache.get_sync("huge") == (bytes(1000), "image/png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.png"]
    cache.put_sync("d", b"\x89PNG\r\n\x1a\n" + bytes(92), "image/png")  # the next one in: huge goes, as any LRU
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_a_write_to_a_large_cache_opens_its_own_file_not_every_file_again(tmp_path):
    """What the directory holds is counted once and then kept up to date: a write to a cache of 300
    images opens the file it writes, not every file's trailer again (once per write, that made a
    burst of finished results quadratic in the cache's size). Counted by Python's audit hook, in a
    process of its own (a hook cannot be removed)."""
    script = f"""
import sys
from pathlib import Path
from mj_mcp.media.cache import ImageCache
root = Path({str(tmp_path)!r})
cache = ImageCache(root, 1 << 30)
for n in range(300):
    cache.put_sync(f"img{{n}}", b"\\x89PNG\\r\\n\\x1a\\n" + bytes(92), "image/png")
opened = []
def count(event, args):
    if event == "open" and str(args[0]).startswith(str(root)):
        opened.append(args[0])
sys.addaudithook(count)
cache.put_sync("one-more", b"\\x89PNG\\r\\n\\x1a\\n" + bytes(92), "image/png")
print(len(opened))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) <= 2 and len(list(tmp_path.iterdir())) == 301, done.stdout


def test_two_replicas_on_one_cache_volume_keep_it_under_its_cap_together(tmp_path):
    """Each replica counts the other's files when it looks at the directory again (here at every
    write): together they stay under the cap, the least recently used going first."""
    cap = 3 * (100 + TRAILER)
    one, two = ImageCache(tmp_path, cap, rescan_s=0), ImageCache(tmp_path, cap, rescan_s=0)
    for n, cache in enumerate((one, two, one, two, one)):
        cache.put_sync(f"img{n}", b"\x89PNG\r\n\x1a\n" + bytes(92), "image/png")
        os.utime(tmp_path / f"img{n}.png", (n + 1, n + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img2.png", "img3.png", "img4.png"]


async def test_an_image_larger_than_the_whole_cache_is_kept_after_its_link_expires(fresh_sim, caplog):
    """MJ_MCP_CACHE_MB=16 and a 17.9 MB upscale, scaled down: a cap smaller than every image (the
    override skips the setting's floor). The finished image the user paid for is kept, everything else
    goes, the log names the setting, and the image is still read and exported once its URL is dead."""
    settings = settings_for(fresh_sim, preview_px=512, cache_mb=0)
    async with Client(build_server(settings)) as c:
        _, grid, _, _ = await call(c, "imagine", prompt="a copper kettle")
        await kept(settings.cache_dir, grid["image_id"])
        _, single, _, _ = await call(c, "apply_action", image="copper-kettle", action="upscale2")
        served = httpx.get(single["raw_image_url"], timeout=PATIENCE).content
        await kept(settings.cache_dir, single["image_id"])
        fresh_sim.state.configure(serve_images=False)  # the CDN links have expired
        data, _ = await read_image(c, single["uri"])
        assert data == served
        result, ex, text, _ = await call(c, "export_image", image=single["name"], path="kettle.png", overwrite=True)
        assert not result.is_error and ex["bytes"] == len(served), text
        with pytest.raises(Exception, match="download failed"):  # the grid before it made room for it
            await c.read_resource("mj://images/copper-kettle")
    assert "MJ_MCP_CACHE_MB" in caplog.text and "kept anyway" in caplog.text
