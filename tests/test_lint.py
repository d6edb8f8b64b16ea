"""ruff on the whole tree (lint, and the format of every file formatted so far), and the checkers'
settings as strict as the project says: ``mypy --strict`` with nothing switched off (mypy itself runs
in test_typing.py), ruff at 120 columns."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_to_lint():
    proc = _ruff("check", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_formatted_files_stay_formatted():
    proc = _ruff("format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_checkers_are_configured_strict():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mypy = config["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["packages"] == ["mj_mcp"]
    # No blanket escape: nothing turned off for a module or the whole package.
    assert "ignore_errors" not in mypy and not any("ignore_errors" in o for o in mypy.get("overrides", []))
    ruff = config["tool"]["ruff"]
    assert ruff["line-length"] == 120
    assert {"E", "F", "B", "I", "UP"} <= set(ruff["lint"]["select"])
