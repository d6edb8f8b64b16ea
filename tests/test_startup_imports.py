"""Start-up imports only what serving needs (issue 21: start-up is the SDK's import, and stays so):
Pillow, PyJWT (and the cryptography it loads), tomllib and the Redis client are imported by the code paths that
use them (a picture or a mask, an OAuth token, a TOML team file, the Redis store), not by every start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATE = ("PIL", "jwt", "tomllib", "redis")


def test_serving_imports_no_picture_oauth_toml_or_redis_library_until_a_path_needs_one():
    # What `mj-mcp serve` imports before it reads its settings, then a server built on defaults.
    code = (
        "import sys, json\n"
        "import mj_mcp.cli, mj_mcp.server, mj_mcp.server.http, mj_mcp.store, mj_mcp.stdio\n"
        "from mj_mcp.settings import Settings\n"
        "mj_mcp.server.build_server(Settings(store='memory'))\n"
        f"print(json.dumps(sorted(m for m in {LATE!r} if m in sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


def test_the_late_imports_happen_where_they_are_needed():
    code = (
        "import sys, json\n"
        "from mj_mcp.media import previews\n"
        "previews.dimensions(b'not an image')\n"
        "from mj_mcp.principals import parse\n"
        "from mj_mcp.limits import Limits\n"
        "parse(b'', json_format=False, defaults=Limits(1, 1), env={})\n"
        f"print(json.dumps(sorted(m for m in {LATE!r} if m in sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ["PIL", "tomllib"]
