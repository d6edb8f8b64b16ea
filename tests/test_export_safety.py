"""export_image never overwrites the user's files (issue 9): a dedicated default folder, extensions
that match the image, only our own unchanged exports replaced, no symlink followed, no race, and
errors that say where exports go. Through the real server against the simulator, and export.save
itself where a race needs many quick tries."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import settings_for
from mcp import Client
from support import call

from mj_mcp.errors import SettingsError
from mj_mcp.media import export
from mj_mcp.server import build_server
from mj_mcp.settings import Settings

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home directory of our own, so the platform folders resolve inside the test's tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_PICTURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_the_default_export_dir_is_a_folder_for_images_never_the_working_dir(home, monkeypatch):
    monkeypatch.chdir(home)
    assert export.default_export_dir() == home / ".local" / "share" / "mj-mcp" / "exports"  # no Pictures
    (home / "Pictures").mkdir()
    assert export.default_export_dir() == home / "Pictures" / "mj-mcp"
    monkeypatch.setenv("XDG_PICTURES_DIR", str(home))  # a desktop with the folder switched off
    assert export.default_export_dir() == home / ".local" / "share" / "mj-mcp" / "exports"


@pytest.mark.parametrize("configured", ["/", "~", "HOME_PARENT", "A_FILE", "~nosuchuser-mj/x", "LOOP"])
def test_an_export_dir_that_would_reach_the_users_files_is_refused_at_start(home, configured):
    (home / "a-file").write_text("x")
    (home / "loop").symlink_to(home / "loop")
    value = {"HOME_PARENT": str(home.parent), "A_FILE": str(home / "a-file"), "LOOP": str(home / "loop" / "x")}.get(
        configured, configured
    )
    with pytest.raises(SettingsError, match="MJ_MCP_EXPORT_DIR") as info:
        Settings.from_env({"MJ_MCP_EXPORT_DIR": value})
    assert "e.g." in str(info.value)
    assert Settings.from_env({"MJ_MCP_EXPORT_DIR": str(home / "art")}).export_dir == home / "art"


async def test_with_no_export_dir_images_go_to_the_default_folder_not_the_working_dir(fresh_sim, home, monkeypatch):
    (home / "Pictures").mkdir()
    cwd = home / "project"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    async with Client(build_server(settings_for(fresh_sim, export_dir=None))) as c:
        await call(c, "imagine", prompt="a red fox in snow")
        result, ex, text, _ = await call(c, "export_image", image="fox-snow", path="fox")
    assert not result.is_error, text
    assert ex["path"] == str(home / "Pictures" / "mj-mcp" / "fox.png") and os.listdir(cwd) == []


async def test_a_root_export_dir_given_in_code_is_refused_too(fresh_sim):
    async with Client(build_server(settings_for(fresh_sim, export_dir=Path("/")))) as c:
        await call(c, "imagine", prompt="a red fox in snow")
        result, _, text, _ = await call(c, "export_image", image="fox-snow", path="fox.png")
    assert result.is_error and "filesystem root" in text and "MJ_MCP_EXPORT_DIR" in text


@pytest.fixture
async def exporter(fresh_sim, tmp_path):
    """(client, export dir, a folder outside it) with one finished image, fox-snow."""
    root, outside = tmp_path / "exports", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    async with Client(build_server(settings_for(fresh_sim, export_dir=root))) as c:
        await call(c, "imagine", prompt="a red fox in snow")
        yield c, root, outside


async def export_to(c, path, overwrite=False):
    result, sc, text, _ = await call(c, "export_image", image="fox-snow", path=path, overwrite=overwrite)
    return result.is_error, sc, text


async def test_only_files_with_the_images_extension_are_written(exporter):
    c, root, _ = exporter
    (root / "report.docx").write_bytes(b"the user's report")
    (root / "main.py").write_text("print('hi')\n")
    error, sc, text = await export_to(c, "hero")
    assert not error and sc["path"] == str(root / "hero.png"), text
    error, sc, text = await export_to(c, "HERO2.PNG")
    assert not error, text
    for path in ("report.docx", "main.py", "hero.jpg", ".mj-mcp-exports.json", "notes.png.txt"):
        for overwrite in (False, True):
            error, _, text = await export_to(c, path, overwrite)
            assert error and "does not end in .png" in text and "PNG" in text, (path, text)
    assert (root / "report.docx").read_bytes() == b"the user's report"
    assert (root / "main.py").read_text() == "print('hi')\n"
    assert not (root / "hero.jpg").exists()


async def test_a_file_the_server_did_not_write_is_never_replaced(exporter):
    c, root, _ = exporter
    (root / "photo.png").write_bytes(PNG)  # the user's own picture, same extension
    error, _, text = await export_to(c, "photo.png", overwrite=True)
    assert error and "not written by export_image" in text and "photo-2.png" in text, text
    assert (root / "photo.png").read_bytes() == PNG
    # our own export is replaced on request, until the user edits it
    assert not (await export_to(c, "mine.png"))[0]
    error, _, text = await export_to(c, "mine.png")
    assert error and "exists" in text and "overwrite=true" in text
    assert not (await export_to(c, "mine.png", overwrite=True))[0]
    with (root / "mine.png").open("ab") as f:
        f.write(b"the user's edit")
    error, _, text = await export_to(c, "mine.png", overwrite=True)
    assert error and "not written by export_image" in text
    assert (root / "mine.png").read_bytes().endswith(b"the user's edit")


async def test_a_symlink_at_the_target_or_on_the_way_is_never_written_through(exporter):
    c, root, outside = exporter
    (root / "notes.txt").write_text("keep me")
    (outside / "victim.png").write_bytes(PNG)
    (root / "alias.png").symlink_to(root / "notes.txt")  # points inside: the old check let it through
    (root / "victim.png").symlink_to(outside / "victim.png")
    (root / "dangling.png").symlink_to(outside / "new.png")
    (root / "sub").symlink_to(root)
    for path in ("alias.png", "victim.png", "dangling.png", "sub/x.png"):
        for overwrite in (False, True):
            error, _, text = await export_to(c, path, overwrite)
            assert error and "symbolic link" in text, (path, text)
    assert (root / "notes.txt").read_text() == "keep me" and (outside / "victim.png").read_bytes() == PNG
    assert sorted(os.listdir(outside)) == ["victim.png"]
    assert (root / "alias.png").is_symlink() and not (root / "x.png").exists()


def test_a_directory_swapped_for_a_symlink_mid_export_is_never_followed(tmp_path):
    """A thread flips sub/ between a real folder and a link to a folder outside while exports into
    sub/ run: whatever the timing, nothing lands outside (each step is taken by descriptor)."""
    root, outside = tmp_path / "exports", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    stop = threading.Event()

    def flip() -> None:
        # sub/ is in turn moved away, a link to outside, moved away, a real folder: each step atomic.
        for i in range(3000):  # bounded: each flip leaves a folder behind
            if stop.is_set():
                return
            for kind in ("link", "dir"):
                try:
                    os.rename(root / "sub", root / f"old-{i}-{kind}")
                except OSError:
                    pass
                try:
                    os.symlink(outside, root / "sub") if kind == "link" else os.mkdir(root / "sub")
                except OSError:
                    pass

    flipper = threading.Thread(target=flip)
    flipper.start()
    written = refused = 0
    try:
        for i in range(300):
            try:
                export.save(root, f"sub/x{i}.png", PNG, "image/png", overwrite=False)
                written += 1
            except Exception:
                refused += 1
    finally:
        stop.set()
        flipper.join()
    assert os.listdir(outside) == [], "an export went through the link"
    assert written > 0 and written + refused == 300


def test_a_folder_held_open_is_written_even_when_its_name_becomes_a_link(tmp_path):
    """The step the race above needs, made certain: export_image holds each folder open, so a name
    swapped for a link after the check changes nothing about where the file goes."""
    root, outside = tmp_path / "exports", tmp_path / "outside"
    (root / "sub").mkdir(parents=True), outside.mkdir()
    top = export._Dir.open_root(root)
    sub = top.child("sub")
    try:
        os.rename(root / "sub", root / "moved")
        os.symlink(outside, root / "sub")
        tmp = sub.write_temp(PNG)
        sub.link_new(tmp, "x.png")
        sub.unlink(tmp)
    finally:
        sub.close(), top.close()
    assert os.listdir(outside) == [] and (root / "moved" / "x.png").read_bytes() == PNG


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("~nosuchuser/x.png", "starts with ~"),
        ("/", "outside the export directory"),
        ("a\x00b.png", "NUL"),
        ("x" * 5000 + ".png", "longer than 1024"),
        ("/".join(["d"] * 20) + "/x.png", "folders deep"),
        ("n" * 300 + ".png", "longer than 255 bytes"),
        ("assets/", "names a folder"),
        ("adir.png", "is not a file"),
        ("loop/x.png", "symbolic link"),
        ("afile.png/x.png", "is not a folder"),
    ],
)
async def test_odd_paths_say_what_happened_and_where_exports_go(exporter, path, says):
    c, root, _ = exporter
    (root / "adir.png").mkdir()
    (root / "afile.png").write_bytes(PNG)
    (root / "loop").symlink_to(root / "loop")
    error, _, text = await export_to(c, path)
    assert error and says in text, text
    assert f"Exports go to {root}" in text and "MJ_MCP_EXPORT_DIR" in text
    assert "Error executing tool" not in text and len(text) < 600
