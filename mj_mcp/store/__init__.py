"""Where records, names and job leases live: one interface (``base.Store``), several places (memory,
SQLite, Redis)."""

from __future__ import annotations

from pathlib import Path

from .base import Hold, Store, new_owner, owner_gone
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["Hold", "MemoryStore", "SqliteStore", "Store", "check_store", "new_owner", "open_store", "owner_gone"]


async def open_store(url: str) -> Store:
    """``memory``, ``sqlite:///path`` or ``redis://...``; settings validate the URL before this is called.
    ``StoreError`` when the store does not answer, is not a readable store or cannot be written."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        return await SqliteStore(Path(url.removeprefix("sqlite:///")).expanduser()).open()
    if url.startswith(("redis://", "rediss://")):
        from .redis import RedisStore  # only replicas pay for importing the client

        return await RedisStore(url).open()
    raise ValueError(f"unknown store {url!r}")


async def check_store(url: str) -> None:
    """Open the store and close it again: a store the server could not use stops the start here, with
    the ``StoreError`` saying why, before any protocol (a server's lifespan would end in a traceback)."""
    store = await open_store(url)
    await store.close()
