"""mj-mcp: an MCP server for Midjourney through the AceDataCloud Imagine API.

The public surface: ``Settings`` (every setting, from the environment), ``build_server`` (an MCP server
for them), ``Studio`` (the product's rules, without MCP: ``async with Studio.open(settings) as studio``),
``Record`` (what is known of one job and what it made), ``open_store`` and the error tree (``MjMcpError``
and its subclasses in ``mj_mcp.errors``). Everything else is internal. Imports are lazy, so
``import mj_mcp`` stays cheap for the CLI and the simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "ActionNotAllowed",
    "ImageUnavailable",
    "InvalidInput",
    "MjMcpError",
    "NameTaken",
    "Record",
    "Settings",
    "SettingsError",
    "Studio",
    "UnknownReference",
    "UpstreamError",
    "__version__",
    "build_server",
    "open_store",
]

if TYPE_CHECKING:
    from .errors import (
        ActionNotAllowed,
        ImageUnavailable,
        InvalidInput,
        MjMcpError,
        NameTaken,
        SettingsError,
        UnknownReference,
        UpstreamError,
    )
    from .records import Record
    from .server import build_server
    from .settings import Settings
    from .store import open_store
    from .studio import Studio

_WHERE = {
    "Record": "records",
    "build_server": "server",
    "Settings": "settings",
    "open_store": "store",
    "Studio": "studio",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    if name in __all__:
        return getattr(importlib.import_module(".errors", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
