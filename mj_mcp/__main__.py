"""``python -m mj_mcp``; also the MCPB bundle's entry point, which a host may run as a file
(``python mj_mcp/__main__.py``, manifests/mcpb/manifest.json)."""

import sys
from pathlib import Path

if not __package__:
    # Run as a file, its own folder is sys.path[0], where mj_mcp's modules (settings, server, ...) would
    # pass for top-level ones: the folder holding the package takes its place.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from mj_mcp.cli import main

raise SystemExit(main())
