"""The README matches the code, the manifests parse, and the demo (the README's first command) works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from mj_mcp.settings import Settings, env_table

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_configuration_table_is_generated_from_the_settings():
    readme = (ROOT / "README.md").read_text()
    assert env_table() in readme, (
        "regenerate the table: python -c 'from mj_mcp.settings import env_table; print(env_table())'"
    )
    # and nothing in the package reads a variable the settings do not declare
    declared = {
        info.json_schema_extra["env"]
        for info in Settings.model_fields.values()
        if isinstance(info.json_schema_extra, dict)
    }
    read = set()
    for path in (ROOT / "mj_mcp").rglob("*.py"):
        pattern = r"""(?:env|environ)(?:\.get\(|\[)\s*["']((?:MJ_MCP|ACEDATACLOUD)_[A-Z_]+)["']"""
        read |= set(re.findall(pattern, path.read_text()))
    assert read <= declared, read - declared


def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert "mj-mcp demo" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_manifests_are_valid_json_and_start_the_server():
    for path in (ROOT / "manifests").glob("*.json"):
        data = json.loads(path.read_text())
        text = json.dumps(data)
        assert "ACEDATACLOUD_API_TOKEN" in text, path.name
        assert "mj-mcp" in text, path.name
    from mj_mcp import __version__

    registry = json.loads((ROOT / "manifests" / "server.json").read_text())
    assert registry["version"] == __version__ and all(p["version"] == __version__ for p in registry["packages"])
    assert f'version: "{__version__}"' in (ROOT / "app" / "src" / "main.ts").read_text()  # the App's name


def test_the_demo_tours_the_simulator_and_saves_pngs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ACEDATACLOUD_API_TOKEN"}
    env["MJ_MCP_SIM_TIME_SCALE"] = "0.02"
    # A hang guard, not a speed claim: a busy machine took 30-40 s (the suite allows a test 300 s).
    proc = subprocess.run(
        [sys.executable, "-m", "mj_mcp", "demo", "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = sorted((tmp_path / "out").glob("*.png"))
    names = {p.stem for p in saved}
    assert names == {
        "lamborghini-volcano",
        "lamborghini-volcano.u2",
        "lamborghini-volcano.u2.z2",
        "lamborghini-volcano.u2.region",
        "blend-lamborghini-volcano",
    }, names
    for path in saved:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width >= 512
    assert "simulated" in proc.stdout and "%" in proc.stdout
    for name in names:
        assert name in proc.stdout
    # the describe step: four prompts, in the output and saved as text
    prompts = (tmp_path / "out" / "lamborghini-volcano.u2.prompts.txt").read_text().splitlines()
    assert len(prompts) == 4 and all(p in proc.stdout for p in prompts), proc.stdout
