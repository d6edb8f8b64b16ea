"""mypy on the package: zero errors (the settings are in pyproject.toml, ``[tool.mypy]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# A cold mypy run is some 12 s of one core; on a busy machine it may take several times that, past
# the suite's 300 s per test, which is there to catch a hang, not a slow type check.
@pytest.mark.timeout(600)
def test_mypy_finds_no_error_in_the_package(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout
