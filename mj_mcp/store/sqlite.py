"""The store in an embedded SQLite file: the default, so names and running jobs outlive the process.

- WAL mode: readers never wait for the writer, so two server processes on one file (two IDE windows in
  one project) work side by side; ``busy_timeout`` makes a writer wait for the other's write instead of
  failing.
- Writes run one at a time on their own connection. A write runs on the event loop when the file's
  write lock is free at once (WAL with ``synchronous = NORMAL`` appends to the log without syncing, and
  a thread hop costs more than the write); otherwise, when the other process holds the lock, in a worker
  thread, which waits for it. The log is checkpointed in the worker thread, every ``CHECKPOINT_EVERY``
  writes, never on the loop. Reads run on the event loop through their own connection (WAL reads do not
  block, and a thread hop costs more than an indexed read).
- ``PRAGMA user_version`` is the schema version; ``MIGRATIONS`` bring an older file up to date on open.
- ``changes`` hears of this process's own writes only; a waiter reads again at least every
  ``OTHERS_POLL_S``, for another process's writes.
- A record is stored whole as JSON, with the columns that are looked up beside it: new record fields need
  no migration, only new lookups do.
- A file that is not a database, is damaged, or cannot be written is found at ``open`` (a read-only file
  opens as usual: a write that changes nothing finds out); every ``sqlite3.Error`` leaves as a
  ``StoreError`` saying what the file did and what to do (``_FAILURES``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ..core import naming
from ..errors import StoreError
from ..records import Record
from .base import INBOX_LIMIT, failure, owner_gone
from .changes import Changed, Pulses

log = logging.getLogger("mj_mcp.store.sqlite")

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
# Writes between two checkpoints of the log (a write is a page or three; SQLite's own default is 1000 pages).
CHECKPOINT_EVERY = 300
OTHERS_POLL_S = 0.5  # a wait on a record another process writes: how often to look again

MIGRATIONS: list[str] = [
    # 1: records, their lookups, and job leases
    """
    CREATE TABLE records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        workspace TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        task_id TEXT,
        image_id TEXT,
        data TEXT NOT NULL,
        UNIQUE (workspace, name)
    );
    CREATE INDEX records_task ON records (task_id) WHERE task_id IS NOT NULL;
    CREATE INDEX records_image ON records (image_id) WHERE image_id IS NOT NULL;
    CREATE INDEX records_running ON records (status) WHERE status = 'running';
    CREATE TABLE leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
    """,
    # 2: counters (generations per principal and day)
    """
    CREATE TABLE counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL);
    """,
    # 3: record inboxes (what a process other than the follower heard about a task: callbacks)
    """
    CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL, item TEXT NOT NULL);
    CREATE INDEX inbox_record ON inbox (record_id, seq);
    """,
]


# What a failing file means to whoever runs the server, by SQLite's primary result code: what it did,
# and what to do about it.
_FAILURES: dict[str, tuple[str, str]] = {
    "SQLITE_NOTADB": (
        "is not an SQLite database",
        "Move the file aside (a new store starts empty) or point MJ_MCP_STORE at another file",
    ),
    "SQLITE_CORRUPT": (
        "is damaged (truncated or corrupted)",
        "Restore it from a backup or move it aside (a new store starts empty), or point MJ_MCP_STORE at another file",
    ),
    "SQLITE_READONLY": (
        "cannot be written by this process",
        "Make the file, and the folder it is in, writable by the user running mj-mcp, or point "
        "MJ_MCP_STORE at a writable path",
    ),
    "SQLITE_CANTOPEN": (
        "cannot be opened or created",
        "Check that its folder exists and is writable by the user running mj-mcp, or point "
        "MJ_MCP_STORE at another path",
    ),
    "SQLITE_FULL": ("cannot grow: the disk is full", "Free some disk space"),
    "SQLITE_IOERR": ("could not be read or written (an I/O error)", "Check the disk and the file"),
    "SQLITE_BUSY": ("stayed locked by another process", "Check which other process holds the file"),
}


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across a process crash, fast
    # Not a database, or a damaged one: nothing stays open.
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the other waits, then finds it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise NewerSchema(version)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        # A file this process may not write opens and reads as usual: a statement that writes (though it
        # changes nothing, so the commit writes nothing) finds that out now, not at the first tool call.
        db.execute("DELETE FROM leases WHERE 0")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class NewerSchema(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def _row(record: Record) -> tuple[Any, ...]:
    return (
        record.id,
        record.workspace,
        record.name,
        record.status,
        record.task_id,
        record.image_id,
        record.model_dump_json(),
    )


def _record(data: str) -> Record:
    return Record.model_validate_json(data)


def _insert(db: sqlite3.Connection, record: Record, next_free: bool) -> Record | None:
    """Insert a new record under its name, or with ``next_free`` the first free of its candidates; the
    record as stored, or None (the name, or the id, is taken). Inside the caller's transaction."""

    def taken(name: str) -> bool:
        return (
            db.execute("SELECT 1 FROM records WHERE workspace = ? AND name = ?", (record.workspace, name)).fetchone()
            is not None
        )

    def insert(stored: Record) -> Record | None:
        cur = db.execute(
            "INSERT OR IGNORE INTO records (id, workspace, name, status, task_id, image_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            _row(stored),
        )
        return stored if cur.rowcount == 1 else None

    # The name is free, as it mostly is: one statement. Else (or the id was taken) the first free one.
    stored = insert(record)
    if stored is not None or not next_free or not taken(record.name):
        return stored
    return insert(record.model_copy(update={"name": naming.first_free(record.name, taken)}))


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._pulses = Pulses()
        # Writes so far: every CHECKPOINT_EVERY-th checkpoints the log.
        self._written = 0

    async def open(self) -> SqliteStore:
        """Open (creating it if need be), migrate, and check the file can be written; ``StoreError`` says
        what is wrong with it otherwise."""

        def setup() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(self.path)
            try:
                _migrate(db)
                # Checkpoints are the worker thread's (``_checkpoint``): a commit on the loop never makes one.
                db.execute("PRAGMA wal_autocheckpoint = 0")
                # A write on the loop never waits for the file's lock (``_write_now``).
                db.execute("PRAGMA busy_timeout = 0")
            except BaseException:
                db.close()
                raise
            return db

        try:
            self._writer = await anyio.to_thread.run_sync(setup)
            self._reader = _connect(self.path)
        except NewerSchema as exc:
            raise failure(
                str(self.path),
                f"was written by a newer mj-mcp (schema {exc.version}; this one knows {len(MIGRATIONS)})",
                "Upgrade mj-mcp, or point MJ_MCP_STORE at another file",
                starting=True,
            ) from None
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise self._failure(exc, starting=True) from None
        return self

    def _failure(self, exc: sqlite3.Error | OSError, *, starting: bool = False) -> StoreError:
        """``exc`` in the words of a settings error (its traceback goes to the debug log only)."""
        log.debug("store file %s failed", self.path, exc_info=exc)
        code = getattr(exc, "sqlite_errorname", "SQLITE_CANTOPEN" if isinstance(exc, OSError) else "")
        what, advice = _FAILURES.get("_".join(code.split("_")[:2]), ("failed", "Check the file"))
        detail = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).rstrip(".")
        return failure(str(self.path), f"{what} ({detail})", advice, starting=starting)

    async def close(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                db.close()
        self._reader = self._writer = None

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on the writer connection: here, on the event loop, when the
        file's write lock is free at once, else in the worker thread, which waits for it."""

        def run() -> T:
            assert self._writer is not None, "store is closed"
            with self._lock:
                db = self._writer
                # Here, and only here, a write may wait for the other process's lock.
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return self._committed(db, fn)
                finally:
                    db.execute("PRAGMA busy_timeout = 0")

        try:
            done = self._write_now(fn)
            out = done[0] if done is not None else await anyio.to_thread.run_sync(run, limiter=self._limiter)
            self._written += 1
            if self._written % CHECKPOINT_EVERY == 0:
                await anyio.to_thread.run_sync(self._checkpoint, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise self._failure(exc) from None
        return out

    def _write_now(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
        """``fn``'s transaction, if this connection and the file's write lock are both free this instant;
        None (nothing done) if not."""
        assert self._writer is not None, "store is closed"
        if not self._lock.acquire(blocking=False):
            return None
        try:
            db = self._writer
            # Busy at once (the writer's busy_timeout is 0 outside ``run``): the worker thread waits instead.
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    return None
                raise
            return (self._committed(db, fn),)
        finally:
            self._lock.release()

    @staticmethod
    def _committed(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in the transaction just begun, committed, or rolled back if it raises."""
        try:
            out = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    def _checkpoint(self) -> None:
        """Copy the log into the file as far as no reader needs it (any process's), in the worker thread;
        a log the other process is writing is left to the next one."""
        if self._writer is not None:
            with self._lock:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._reader is not None, "store is closed"
        try:
            return self._reader.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    async def add(self, record: Record, *, next_free: bool = False) -> Record | None:
        # One transaction (BEGIN IMMEDIATE: this file's one writer, in any process) looks and inserts.
        return await self._write(lambda db: _insert(db, record, next_free))

    async def admit(self, record: Record, *, next_free: bool, owner: str, ttl: float) -> tuple[Record | None, int]:
        def run(db: sqlite3.Connection) -> tuple[Record | None, int]:
            stored = _insert(db, record, next_free)
            if stored is not None:
                db.execute(
                    "INSERT INTO leases (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                    (stored.id, owner, time.time() + ttl),
                )
            held = db.execute("SELECT COUNT(*) FROM records WHERE workspace = ?", (record.workspace,)).fetchone()
            return stored, int(held[0])

        return await self._write(run)

    async def save(self, record: Record, *, adding: Sequence[Record] = (), release: str | None = None) -> None:
        def upsert(db: sqlite3.Connection) -> None:
            if release is not None:
                db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (record.id, release))
            db.execute(
                "INSERT INTO records (id, workspace, name, status, task_id, image_id, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET workspace = excluded.workspace, "
                "name = excluded.name, status = excluded.status, task_id = excluded.task_id, "
                "image_id = excluded.image_id, data = excluded.data",
                _row(record),
            )
            # In the same transaction: those stored already (by id) stay as they are.
            for new in adding:
                if db.execute("SELECT 1 FROM records WHERE id = ?", (new.id,)).fetchone() is None:
                    _insert(db, new, next_free=True)

        await self._write(upsert)
        self._pulses.notify(record.id)

    async def get(self, record_id: str) -> Record | None:
        rows = self._read("SELECT data FROM records WHERE id = ?", (record_id,))
        return _record(rows[0][0]) if rows else None

    async def find(self, workspace: str, ref: str) -> Record | None:
        rows = self._read("SELECT data FROM records WHERE workspace = ? AND name = ?", (workspace, ref))
        if not rows:
            rows = self._read(
                "SELECT data FROM records WHERE workspace = ? AND (image_id = ? OR task_id = ?) "
                "ORDER BY seq DESC LIMIT 1",
                (workspace, ref, ref),
            )
        return _record(rows[0][0]) if rows else None

    async def latest(self, workspace: str, limit: int | None = None) -> list[Record]:
        rows = self._read(
            "SELECT data FROM records WHERE workspace = ? ORDER BY seq DESC LIMIT ?",
            (workspace, -1 if limit is None else limit),
        )
        return [_record(data) for (data,) in rows]

    async def names(self, workspace: str, prefix: str = "", limit: int | None = None) -> list[str]:
        # A range on the (workspace, name) index rather than LIKE, whose wildcards a name may contain.
        rows = self._read(
            "SELECT name FROM records WHERE workspace = ? AND name >= ? AND name < ? ORDER BY seq DESC LIMIT ?",
            (workspace, prefix, prefix + "\U0010ffff", -1 if limit is None else limit),
        )
        return [name for (name,) in rows]

    async def count(self, workspace: str, *, running: bool = False) -> int:
        where = " AND status = 'running'" if running else ""
        return int(self._read(f"SELECT COUNT(*) FROM records WHERE workspace = ?{where}", (workspace,))[0][0])

    async def delete(self, record_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM records WHERE id = ?", (record_id,))
            db.execute("DELETE FROM inbox WHERE record_id = ?", (record_id,))

        await self._write(run)
        self._pulses.notify(record_id)

    async def evict(self, workspace: str, keep: int) -> list[str]:
        def run(db: sqlite3.Connection) -> list[str]:
            total = db.execute("SELECT COUNT(*) FROM records WHERE workspace = ?", (workspace,)).fetchone()[0]
            if total <= keep:
                return []
            rows = db.execute(
                "SELECT seq, name FROM records WHERE workspace = ? AND status != 'running' ORDER BY seq LIMIT ?",
                (workspace, total - keep),
            ).fetchall()
            db.executemany("DELETE FROM records WHERE seq = ?", [(seq,) for seq, _ in rows])
            return [name for _, name in rows]

        return await self._write(run)

    async def owner_of(self, ref: str) -> str | None:
        rows = self._read("SELECT workspace FROM records WHERE task_id = ? LIMIT 1", (ref,)) or self._read(
            "SELECT workspace FROM records WHERE image_id = ? LIMIT 1", (ref,)
        )
        return rows[0][0] if rows else None

    async def running(self) -> list[Record]:
        return [
            _record(data) for (data,) in self._read("SELECT data FROM records WHERE status = 'running' ORDER BY seq")
        ]

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            now = time.time()
            held = db.execute("SELECT owner, expires FROM leases WHERE key = ?", (key,)).fetchone()
            if held is not None and held[0] != owner and held[1] > now and not owner_gone(held[0]):
                return False
            db.execute(
                "INSERT INTO leases (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                (key, owner, now + ttl),
            )
            return True

        return await self._write(run)

    async def renew(self, keys: list[str], owner: str, ttl: float) -> tuple[set[str], set[str]]:
        def run(db: sqlite3.Connection) -> tuple[set[str], set[str]]:
            expires = time.time() + ttl
            kept, retaken = set(), set()
            for key in keys:
                cur = db.execute("UPDATE leases SET expires = ? WHERE key = ? AND owner = ?", (expires, key, owner))
                if not cur.rowcount:
                    cur = db.execute(
                        "INSERT INTO leases (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                        (key, owner, expires),
                    )
                    if not cur.rowcount:
                        continue
                    retaken.add(key)
                kept.add(key)
            return kept, retaken

        return await self._write(run)

    async def release(self, key: str, owner: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner)))

    async def deliver(self, record_id: str, item: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO inbox (record_id, item) VALUES (?, ?)", (record_id, item))
            db.execute(
                "DELETE FROM inbox WHERE record_id = ? AND seq NOT IN (SELECT seq FROM inbox "
                "WHERE record_id = ? ORDER BY seq DESC LIMIT ?)",
                (record_id, record_id, INBOX_LIMIT),
            )

        await self._write(run)
        self._pulses.notify(record_id)

    async def collect(self, record_id: str) -> list[str]:
        if not self._read("SELECT 1 FROM inbox WHERE record_id = ? LIMIT 1", (record_id,)):
            return []  # the common case: a read, no write

        def run(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT item FROM inbox WHERE record_id = ? ORDER BY seq", (record_id,)).fetchall()
            db.execute("DELETE FROM inbox WHERE record_id = ?", (record_id,))
            return [item for (item,) in rows]

        return await self._write(run)

    def changes(self, record_id: str) -> AbstractAsyncContextManager[Changed]:
        return self._pulses.watch(record_id, longest=OTHERS_POLL_S)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        def run(db: sqlite3.Connection) -> int:
            now = time.time()
            db.execute("DELETE FROM counters WHERE expires <= ?", (now,))  # a few rows: principals x days
            row = db.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = value + excluded.value RETURNING value",
                (key, by, now + ttl),
            ).fetchone()
            return int(row[0])

        return await self._write(run)
