"""Every host can install it: the MCPB bundle and the MCP registry's server.json.

- The MCPB manifest (manifests/mcpb/manifest.json) passes the official validator (@anthropic-ai/mcpb,
  pinned in manifests/mcpb/package-lock.json, installed by scripts/test-deps), which also refuses a
  broken copy of it; scripts/pack-mcpb packs it; the bundle holds the source and pyproject.toml and no
  binary (server type "uv": the host installs the dependencies for its platform); and the bundle, unpacked
  and configured by the official library as a host does, serves a session whose tools are the manifest's.
- manifests/server.json is valid against the registry's schema, vendored in manifests/registry/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support import server_env

from mj_mcp import __version__

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "manifests" / "mcpb"
BINARY_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".exe", ".whl", ".node")
# The entry point run as a file (`mj-mcp --help`), then which copy of the package it ran.
WHICH_COPY = """import runpy, sys
sys.argv = ["mj-mcp", "--help"]
try:
    runpy.run_path({entry!r}, run_name="__main__")
except SystemExit:
    pass
print(sys.modules["mj_mcp.cli"].__file__)"""


def node_tool() -> tuple[str, Path]:
    """(node, the mcpb command's script), or a failure that says how to get them (never a skip)."""
    node = shutil.which("node")
    cli = BUNDLE / "node_modules" / "@anthropic-ai" / "mcpb" / "dist" / "cli" / "cli.js"
    if node is None or not cli.exists():
        pytest.fail("node or manifests/mcpb/node_modules is missing: run scripts/test-deps", pytrace=False)
    return node, cli


def manifest() -> dict:
    return json.loads((BUNDLE / "manifest.json").read_text())


def validate(path: Path) -> subprocess.CompletedProcess:
    node, cli = node_tool()
    return subprocess.run([node, str(cli), "validate", str(path)], capture_output=True, text=True, timeout=120)


def test_the_manifest_passes_the_official_validator_which_refuses_a_broken_one(tmp_path):
    checked = validate(BUNDLE / "manifest.json")
    assert checked.returncode == 0 and "validation passes" in checked.stdout, checked.stdout + checked.stderr
    for why, change in {
        "no mcp_config": lambda m: m["server"].pop("mcp_config"),
        "an unknown server type": lambda m: m["server"].update(type="uvx"),
        "a missing icon": lambda m: m.update(icon="nothing.png"),
    }.items():
        broken = manifest()
        change(broken)
        (tmp_path / "manifest.json").write_text(json.dumps(broken))
        shutil.copy(BUNDLE / "icon.png", tmp_path / "icon.png")
        assert validate(tmp_path / "manifest.json").returncode != 0, why


def test_the_manifest_says_what_the_project_is():
    m = manifest()
    assert m["manifest_version"] == "0.4" and m["version"] == __version__ and m["server"]["type"] == "uv"
    token = m["user_config"]["api_token"]
    assert token["type"] == "string" and token["sensitive"] is True and token["required"] is False
    assert token["default"] == ""  # else a host leaves "${user_config.api_token}" in the environment
    assert m["server"]["mcp_config"]["env"] == {"ACEDATACLOUD_API_TOKEN": "${user_config.api_token}"}
    python = m["compatibility"]["runtimes"]["python"]
    assert python.removeprefix(">=") in (ROOT / "pyproject.toml").read_text()  # requires-python agrees
    with open(BUNDLE / m["icon"], "rb") as icon:
        from PIL import Image

        with Image.open(icon) as picture:
            assert picture.format == "PNG" and picture.size == (512, 512)


@pytest.mark.anyio
async def test_the_bundle_packs_without_binaries_and_serves_a_session_as_a_host_runs_it(tmp_path):
    from mcp import Client, StdioServerParameters

    packed = subprocess.run(
        [str(ROOT / "scripts" / "pack-mcpb"), str(tmp_path / "mj-mcp.mcpb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert packed.returncode == 0, packed.stderr[-3000:]
    bundle = Path(packed.stdout.strip().splitlines()[-1])
    names = zipfile.ZipFile(bundle).namelist()
    assert {
        "manifest.json",
        "icon.png",
        "pyproject.toml",
        "README.md",
        "mj_mcp/__main__.py",
        "mj_mcp/ui/view.html",
        "mj_mcp/ui/icon.png",
    } <= set(names)
    assert not [n for n in names if n.endswith(BINARY_SUFFIXES) or "__pycache__" in n or "node_modules" in n]
    assert not [
        n
        for n in names
        if n.split("/")[0] not in {"mj_mcp", "manifest.json", "icon.png", "pyproject.toml", "README.md"}
    ]

    node, _ = node_tool()
    unpacked = tmp_path / "installed"
    host = subprocess.run(
        [node, str(BUNDLE / "host.mjs"), str(bundle), str(unpacked)],
        cwd=BUNDLE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert host.returncode == 0, host.stdout + host.stderr
    config = json.loads(host.stdout.strip().splitlines()[-1])
    assert config == {
        "command": "uv",
        "args": ["run", "--directory", str(unpacked), "mj-mcp"],
        "env": {"ACEDATACLOUD_API_TOKEN": ""},
    }  # no token given: the simulator
    # What `uv run` then runs, in the environment it makes from pyproject.toml (here: this one's), is the
    # bundle's entry point; the package it imports is the bundle's own copy.
    entry = unpacked / manifest()["server"]["entry_point"]
    env = server_env(None, **config["env"])
    env.pop("MJ_MCP_SIM_TIME_SCALE")  # the bundle's defaults, as a host has them
    where = subprocess.run(
        [sys.executable, "-c", WHICH_COPY.format(entry=str(entry))], env=env, capture_output=True, text=True, timeout=60
    )
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().splitlines()[-1] == str(unpacked / "mj_mcp" / "cli.py")
    params = StdioServerParameters(command=sys.executable, args=[str(entry)], env=env)
    async with Client(params) as client:
        assert client.server_info.name == "mj-mcp" and client.server_info.icons
        tools = [t.name for t in (await client.list_tools()).tools]
        assert tools == [t["name"] for t in manifest()["tools"]]
        made = await client.call_tool("imagine", {"prompt": "a bundled lighthouse", "wait_seconds": 60})
        assert made.structured_content["status"] == "completed" and made.structured_content["simulated"]


# --- the MCP registry --------------------------------------------------------------------------------


def registry_schema() -> dict:
    return json.loads((ROOT / "manifests" / "registry" / "server.schema.json").read_text())


def registry_problems(server: dict) -> list[str]:
    from jsonschema import Draft7Validator

    validator = Draft7Validator(registry_schema(), format_checker=Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(server)]


def test_server_json_is_valid_against_the_registrys_schema_and_names_it():
    server = json.loads((ROOT / "manifests" / "server.json").read_text())
    assert registry_problems(server) == []
    assert server["$schema"] == registry_schema()["$id"]
    assert server["version"] == __version__ and [p["version"] for p in server["packages"]] == [__version__]
    too_long = server | {"description": "x" * 101}  # the limit the old 104-character description broke
    assert [p for p in registry_problems(too_long) if p.startswith("description:")], "the schema checks nothing"


def test_the_readme_carries_the_registrys_pypi_ownership_line():
    """The registry accepts a PyPI package as this server only if its description (the README) says so."""
    name = json.loads((ROOT / "manifests" / "server.json").read_text())["name"]
    assert f"mcp-name: {name}" in (ROOT / "README.md").read_text()
    assert 'readme = "README.md"' in (ROOT / "pyproject.toml").read_text()
