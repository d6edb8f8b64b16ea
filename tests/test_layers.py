"""The dependency direction of the layers (README "Architecture") holds: every import in the package is
read with ``ast`` and checked against what its layer may use. The MCP SDK is used by the adapters only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mj_mcp"

# layer -> the layers it may import (besides itself)
MAY_USE: dict[str, set[str]] = {
    "_version": set(),  # a constant: everyone may read it
    "errors": set(),
    "settings": {"errors"},
    "core": {"errors"},
    "upstream": {"core", "errors", "settings"},
    "records": {"core", "errors"},  # upstream's wire models stay with the jobs, which translate them
    "store": {"records", "core", "errors"},
    "jobs": {"upstream", "store", "records", "core", "errors", "settings"},
    "limits": {"store", "records", "core", "errors"},
    "principals": {"limits", "store", "records", "core", "errors", "settings"},
    "workspaces": {"limits", "store", "records", "core", "errors"},
    "media": {"upstream", "records", "core", "errors", "settings"},
    "studio": {
        "jobs",
        "workspaces",
        "limits",
        "media",
        "store",
        "upstream",
        "records",
        "core",
        "errors",
        "settings",
        "sim",
    },
    "ui": {"studio", "jobs", "workspaces", "media", "store", "upstream", "records", "core", "errors", "settings"},
    "server": {
        "ui",
        "studio",
        "jobs",
        "workspaces",
        "principals",
        "limits",
        "media",
        "store",
        "upstream",
        "records",
        "core",
        "errors",
        "settings",
        "sim",
    },
    "sim": {"core", "errors"},
    "top": {
        "server",
        "ui",
        "studio",
        "jobs",
        "workspaces",
        "principals",
        "limits",
        "media",
        "store",
        "upstream",
        "records",
        "core",
        "errors",
        "settings",
        "sim",
    },
}
USES_MCP = {"server", "ui", "top"}
TOP = {"__init__", "__main__", "cli", "demo", "stdio"}


def layer_of(module: str) -> str:
    """``mj_mcp.store.sqlite`` -> ``store``; the package's own entry modules are ``top``."""
    parts = module.split(".")[1:]
    head = parts[0] if parts else "__init__"
    return "top" if head in TOP else head


def imports_of(path: Path) -> list[tuple[str, int]]:
    module = "mj_mcp." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            found += [(n, node.lineno) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def test_every_import_goes_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "mj_mcp." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        mine = layer_of(module)
        assert mine in MAY_USE, f"{path}: layer {mine!r} is not in the table"
        for target, line in imports_of(path):
            if target == "mcp" or target.startswith("mcp."):
                if mine not in USES_MCP:
                    wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports the MCP SDK ({target})")
            elif target.startswith("mj_mcp"):
                theirs = layer_of(target)
                if theirs not in (mine, "_version") and theirs not in MAY_USE[mine]:
                    wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The check can fail: a store module importing the studio is caught."""
    bad = PACKAGE / "store" / "_probe_wrong_import.py"
    bad.write_text("from ..studio import Studio\nimport mcp.types\n")
    try:
        targets = imports_of(bad)
        assert ("mj_mcp.studio", 1) in targets and ("mcp.types", 2) in targets
        assert "studio" not in MAY_USE[layer_of("mj_mcp.store._probe_wrong_import")]
    finally:
        bad.unlink()


def test_the_jobs_package_is_used_through_its_face_only():
    """Outside ``jobs/`` only ``mj_mcp.jobs`` itself is imported (``Jobs`` and its few names): no
    module reaches a follower, a lease or the inbox directly."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "jobs":
            continue
        for target, line in imports_of(path):
            if target.startswith("mj_mcp.jobs."):
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_studio_open_loads_nothing_of_the_mcp_sdk(tmp_path):
    """``Studio.open`` builds the store, the upstream, the jobs, the media and the embedded simulator,
    and a generation runs through it, with no module of the MCP SDK imported by anything it loads."""
    import subprocess
    import sys

    code = """
import sys, anyio
from mj_mcp import Settings, Studio
from mj_mcp.studio import imagine

async def main():
    settings = Settings.from_env({"MJ_MCP_STORE": "memory", "MJ_MCP_CACHE_DIR": sys.argv[1],
                                  "MJ_MCP_SIM_TIME_SCALE": "0.01"})
    async with Studio.open(settings) as studio:
        grid = await imagine.imagine(studio.call(), prompt="a lighthouse", wait_seconds=60)
        assert grid.status == "completed" and grid.kind == "grid", grid
    loaded = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
    assert not loaded, loaded
    print("ok")

anyio.run(main)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr[-3000:]
