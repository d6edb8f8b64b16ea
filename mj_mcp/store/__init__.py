"""Where records, names and job leases live: one interface (``base.Store``), several places."""

from __future__ import annotations

from pathlib import Path

from .base import Store, new_owner, owner_gone
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store", "new_owner", "open_store", "owner_gone"]


async def open_store(url: str) -> Store:
    """``memory`` or ``sqlite:///path``; settings validate the URL before this is called."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        return await SqliteStore(Path(url.removeprefix("sqlite:///")).expanduser()).open()
    raise ValueError(f"unknown store {url!r}")
