"""The store contract, written once and run against every implementation (memory, SQLite, Redis on a
real redis-server), plus what only a file can show (it outlives the process, migrates, two processes
share it safely) and what only a shared server can (two clients as two replicas)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from mj_mcp.core import naming
from mj_mcp.errors import StoreError
from mj_mcp.records import Record
from mj_mcp.store import MemoryStore, SqliteStore, new_owner, open_store, owner_gone
from mj_mcp.store.base import INBOX_LIMIT
from mj_mcp.store.sqlite import MIGRATIONS

pytestmark = pytest.mark.anyio
REDIS_DB = 1  # this module's database on the session's redis-server
ADDS_AT_ONCE = 400


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = await SqliteStore(tmp_path / "s.db").open()
    else:
        server = request.getfixturevalue("redis_server")
        server.flush(REDIS_DB)
        s = await open_store(server.url(REDIS_DB))
    yield s
    await s.close()


def rec(name, ws="w", **kw):
    return Record(name=name, workspace=ws, **kw)


async def test_names_are_unique_per_workspace(store):
    first = rec("fox", task_id="t-1")
    assert await store.add(first) == first
    assert await store.add(rec("fox")) is None  # taken: nothing written
    assert await store.add(rec("fox", ws="other"))
    assert await store.names("w") == ["fox"] and await store.count("w") == 1
    assert await store.get(first.id) == first


async def test_a_taken_name_moves_to_the_first_free_candidate_as_one_step(store):
    got = [await store.add(rec("fox", task_id=f"t-{i}"), next_free=True) for i in range(4)]
    assert [r.name for r in got] == ["fox", "fox-2", "fox-3", "fox-4"]
    for r in got:  # stored under the name it was given, the whole record with it
        assert await store.get(r.id) == r and (await store.find("w", r.name)).task_id == r.task_id
    await store.delete(got[1].id)
    assert (await store.add(rec("fox"), next_free=True)).name == "fox-2"  # a freed name is taken again first
    assert (await store.add(rec("fox-3"), next_free=True)).name == "fox-3-2"  # a name is a base of its own
    long = "x" * naming.MAX_NAME
    wanted = list(itertools.islice(naming.candidates(long), 12))
    assert [(await store.add(rec(long), next_free=True)).name for _ in wanted] == wanted  # cut, as naming cuts


async def test_any_number_of_adds_at_once_each_get_a_name_of_their_own(store):
    import anyio

    got: list[Record] = []
    requested: list[Record | None] = []

    async def add_one(i: int) -> None:
        got.append(await store.add(rec("fox-snow", task_id=f"t-{i}"), next_free=True))
        requested.append(await store.add(rec("owl", task_id=f"o-{i}")))

    async with anyio.create_task_group() as tg:
        for i in range(ADDS_AT_ONCE):
            tg.start_soon(add_one, i)
    names = [r.name for r in got]
    assert sorted(names) == sorted(itertools.islice(naming.candidates("fox-snow"), ADDS_AT_ONCE))
    assert len([r for r in requested if r is not None]) == 1  # a requested name: one winner, the rest refused
    assert await store.count("w") == ADDS_AT_ONCE + 1
    assert {(await store.find("w", r.name)).id for r in got} == {r.id for r in got}


async def test_find_by_name_then_newest_image_or_task_id(store):
    a = rec("a", image_id="111", task_id="t-1")
    b = rec("b", image_id="111", task_id="t-2")
    for r in (a, b):
        await store.add(r)
    assert (await store.find("w", "a")).id == a.id
    assert (await store.find("w", "111")).id == b.id  # the newest holder of an id
    assert (await store.find("w", "t-1")).id == a.id
    assert await store.find("other", "a") is None  # another workspace sees nothing
    assert await store.find("w", "nope") is None


async def test_latest_and_names_are_newest_first_with_prefix_and_limit(store):
    for name in ("fox", "fox.u1", "owl", "fox-2"):
        await store.add(rec(name))
    assert [r.name for r in await store.latest("w")] == ["fox-2", "owl", "fox.u1", "fox"]
    assert [r.name for r in await store.latest("w", 2)] == ["fox-2", "owl"]
    assert await store.names("w", prefix="fox") == ["fox-2", "fox.u1", "fox"]
    assert await store.names("w", prefix="fox", limit=1) == ["fox-2"]
    assert await store.names("w", prefix="%") == []  # a prefix is literal, not a pattern


async def test_records_are_values_saved_whole(store):
    r = rec("fox")
    await store.add(r)
    got = await store.get(r.id)
    got.progress = 99  # a copy: the store is unchanged until saved
    assert (await store.get(r.id)).progress == 0
    await store.save(got.model_copy(update={"status": "completed", "task_id": "t-9"}))
    again = await store.get(r.id)
    assert (again.progress, again.status, again.task_id) == (99, "completed", "t-9")
    assert (await store.find("w", "t-9")).id == r.id  # looked-up columns follow a save


async def test_a_record_and_what_it_made_are_saved_in_one_step(store):
    edit = await store.add(rec("fox.edit", task_id="t-7"))
    made = [rec(f"fox.edit.{n}", id=f"{edit.id}-{n}", status="completed") for n in range(1, 5)]
    squatter = await store.add(rec("fox.edit.3"))
    done = edit.model_copy(update={"status": "completed"})
    await store.save(done, adding=made)
    assert (await store.get(edit.id)).status == "completed"
    names = [(await store.get(r.id)).name for r in made]
    # a name taken meanwhile moves to its first free candidate; the record holding it stays as it was
    assert names == ["fox.edit.1", "fox.edit.2", "fox.edit.3-2", "fox.edit.4"]
    assert (await store.find("w", "fox.edit.3")).id == squatter.id
    # saved again (a follower writing its last snapshot twice): nothing is added twice
    await store.save(done, adding=made)
    assert await store.count("w") == 6 and sorted(await store.names("w")) == sorted([*names, "fox.edit", "fox.edit.3"])
    assert (await store.find("w", "t-7")).id == edit.id
    # one that was lost (a store restarted empty) comes back with the next save
    await store.delete(made[0].id)
    await store.save(done, adding=made)
    assert (await store.get(made[0].id)).name == "fox.edit.1"


async def test_eviction_forgets_the_oldest_finished_and_never_a_running_one(store):
    names = ["r0", "f1", "f2", "r3", "f4"]
    for name in names:
        await store.add(rec(name, status="running" if name.startswith("r") else "completed"))
    assert await store.evict("w", 3) == ["f1", "f2"]
    assert await store.names("w") == ["f4", "r3", "r0"]
    assert await store.evict("w", 1) == ["f4"]  # the running ones stay, even over the limit
    assert await store.count("w") == 2


async def test_running_records_and_owner_ofs_across_workspaces(store):
    await store.add(rec("a", ws="alice", task_id="t-a"))
    await store.add(rec("b", ws="bob", task_id="t-b", status="completed"))
    assert [r.name for r in await store.running()] == ["a"]
    assert await store.owner_of("t-b") == "bob" and await store.owner_of("t-x") is None
    await store.save((await store.find("bob", "b")).model_copy(update={"image_id": "1234"}))
    assert await store.owner_of("1234") == "bob"
    record = await store.find("alice", "a")
    await store.delete(record.id)
    assert await store.find("alice", "a") is None and await store.owner_of("t-a") is None


async def test_running_records_are_counted_per_workspace(store):
    await store.add(rec("a", ws="alice"))
    await store.add(rec("b", ws="alice", status="completed"))
    await store.add(rec("c", ws="bob"))
    assert await store.count("alice") == 2 and await store.count("alice", running=True) == 1
    await store.save((await store.find("alice", "a")).model_copy(update={"status": "failed"}))
    assert await store.count("alice", running=True) == 0 and await store.count("bob", running=True) == 1


async def test_counters_add_atomically_and_expire(store):
    assert await store.incr("day:alice", 1, 30) == 1
    assert await store.incr("day:alice", 1, 30) == 2
    assert await store.incr("day:bob", 1, 30) == 1  # counters are apart
    assert await store.incr("day:alice", -1, 30) == 1  # given back
    assert await store.incr("short", 5, 0.01) == 5
    time.sleep(0.02)
    assert await store.incr("short", 1, 30) == 1  # expired: starts again at 0
    import anyio

    async with anyio.create_task_group() as tg:  # concurrent increments each see their own value
        seen: list[int] = []

        async def bump() -> None:
            seen.append(await store.incr("busy", 1, 30))

        for _ in range(20):
            tg.start_soon(bump)
    assert sorted(seen) == list(range(1, 21))


async def test_leases_one_holder_until_it_expires_or_goes(store):
    me, other = new_owner(), new_owner()
    assert await store.lease("k", me, 30)
    assert await store.lease("k", me, 30)  # renewing by taking again
    assert not await store.lease("k", other, 30)
    assert await store.renew(["k"], other, 30) == (set(), set())  # another's lease is never renewed
    assert await store.renew(["k"], me, 30) == ({"k"}, set())
    # A lease that vanished (a store restarted empty) is taken again, and said so; never one held by another.
    assert await store.renew(["k", "x"], me, 30) == ({"k", "x"}, {"x"})
    assert not await store.lease("x", other, 30)
    await store.release("x", me)
    await store.release("k", other)  # not the holder: nothing happens
    assert not await store.lease("k", other, 30)
    await store.release("k", me)
    assert await store.lease("k", other, 0.01)
    time.sleep(0.02)
    assert await store.lease("k", me, 30)  # expired


async def test_admit_stores_a_record_with_its_lease_and_says_the_count_in_one_step(store):
    """What starting a job asks (issue 21: one store step instead of add, lease and count)."""
    me, other = new_owner(), new_owner()
    await store.add(rec("owl"))
    first, held = await store.admit(rec("fox", task_id="t-1"), next_free=True, owner=me, ttl=30)
    assert first.name == "fox" and held == 2 and await store.get(first.id) == first
    assert not await store.lease(first.id, other, 30)  # held by ``me`` from the insert on
    second, held = await store.admit(rec("fox"), next_free=True, owner=me, ttl=30)
    assert second.name == "fox-2" and held == 3
    taken = rec("fox")
    assert await store.admit(taken, next_free=False, owner=me, ttl=30) == (None, 3)  # nothing written, no lease
    assert await store.get(taken.id) is None and await store.lease(taken.id, other, 30)
    assert (await store.admit(rec("fox", ws="other"), next_free=False, owner=me, ttl=30))[1] == 1


async def test_a_final_save_lets_its_lease_go_in_the_same_step(store):
    me, other = new_owner(), new_owner()
    record, _ = await store.admit(rec("fox"), next_free=True, owner=me, ttl=30)
    await store.save(record.model_copy(update={"progress": 50.0}))
    assert not await store.lease(record.id, other, 30)
    await store.save(record.model_copy(update={"status": "completed"}), release=other)  # not the holder: kept
    assert not await store.lease(record.id, other, 30)
    await store.save(record.model_copy(update={"status": "completed"}), release=me)
    assert (await store.get(record.id)).status == "completed" and await store.lease(record.id, other, 30)


async def test_a_dead_processes_lease_is_void_at_once(store, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = new_owner().split(":")[0]
    dead = f"{host}:{proc.pid}:feedbeef"
    assert owner_gone(dead) and not owner_gone(new_owner())
    assert not owner_gone(f"elsewhere:{proc.pid}:x")  # another host: only its expiry frees it
    assert await store.lease("k", dead, 3600)
    assert await store.lease("k", new_owner(), 30)


async def test_an_inbox_keeps_the_latest_items_until_collected(store):
    r = rec("fox")
    await store.add(r)
    assert await store.collect(r.id) == []
    for i in range(INBOX_LIMIT + 3):
        await store.deliver(r.id, f"item-{i}")
    items = await store.collect(r.id)
    assert items == [f"item-{i}" for i in range(3, INBOX_LIMIT + 3)]  # bounded: the oldest went
    assert await store.collect(r.id) == []  # taken once
    await store.deliver(r.id, "late")
    await store.delete(r.id)
    assert await store.collect(r.id) == []  # a deleted record's inbox goes with it


async def test_a_save_or_a_delivery_wakes_a_waiter_at_once(store):
    r = rec("fox")
    await store.add(r)
    async with store.changes(r.id) as changed:
        assert not await changed(0.01)  # nothing happened: the wait times out
        await store.save(r.model_copy(update={"progress": 50}))
        assert await changed(5)  # a save since the last wait is never missed
        await store.deliver(r.id, "x")
        assert await changed(5)
        assert not await changed(0.01)
    async with store.changes("someone-else") as changed:
        await store.save(r)
        assert not await changed(0.05)  # another record's save is not this one's


async def test_two_redis_clients_are_two_replicas_of_one_state(redis_server):
    redis_server.flush(REDIS_DB + 1)
    a, b = await open_store(redis_server.url(REDIS_DB + 1)), await open_store(redis_server.url(REDIS_DB + 1))
    try:
        # a name race: every name goes to exactly one replica
        import anyio

        won: dict[str, list[str]] = {"a": [], "b": []}

        async def add_all(store, who):
            for i in range(40):
                if await store.add(rec(f"n{i}")):
                    won[who].append(f"n{i}")

        async def number_all(store, who):
            for _ in range(40):
                won[who].append((await store.add(rec("fox"), next_free=True)).name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(add_all, a, "a")
            tg.start_soon(add_all, b, "b")
        assert sorted(won["a"] + won["b"], key=lambda n: int(n[1:])) == [f"n{i}" for i in range(40)]
        won = {"a": [], "b": []}
        async with anyio.create_task_group() as tg:
            tg.start_soon(number_all, a, "a")
            tg.start_soon(number_all, b, "b")
        assert sorted(won["a"] + won["b"]) == sorted(itertools.islice(naming.candidates("fox"), 80))
        assert await a.count("w") == await b.count("w") == 120
        # one lease holder across replicas
        one, two = new_owner(), f"elsewhere:1:{new_owner()}"
        assert await a.lease("job", two, 30)
        assert not await b.lease("job", one, 30)
        # progress saved by one replica wakes a waiter on the other
        record = await b.find("w", "n7")
        async with b.changes(record.id) as changed:
            await a.save(record.model_copy(update={"progress": 42}))
            assert await changed(5)
            assert (await b.get(record.id)).progress == 42
            await a.deliver(record.id, "callback")
            assert await changed(5)
            assert await b.collect(record.id) == ["callback"]
    finally:
        await a.close()
        await b.close()


async def test_a_redis_password_is_never_shown(redis_server):
    from mj_mcp.errors import SettingsError
    from mj_mcp.settings import Settings

    url = f"redis://:hunter2-secret@127.0.0.1:{redis_server.port}/0"
    assert "hunter2-secret" not in repr(Settings(store=url))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MJ_MCP_STORE": url.replace("redis://", "redis:/")})
    assert "hunter2-secret" not in str(caught.value)


async def test_sqlite_outlives_the_process_and_records_its_schema(tmp_path):
    path = tmp_path / "a" / "b.db"
    s = await open_store(f"sqlite:///{path}")
    await s.add(rec("fox", task_id="t-1"))
    await s.close()
    s = await open_store(f"sqlite:///{path}")
    assert (await s.find("w", "fox")).task_id == "t-1"
    await s.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")  # a newer mj-mcp wrote it
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer mj-mcp") as caught:
        await open_store(f"sqlite:///{path}")
    assert "MJ_MCP_STORE" in str(caught.value) and "Upgrade mj-mcp" in str(caught.value)


async def test_a_write_that_must_wait_for_the_other_process_waits_off_the_event_loop(tmp_path):
    """A write runs on the event loop only when the file's lock is free at once. While another process
    holds it, the write waits in a worker thread, the loop goes on serving, and the write lands once the
    lock is released."""
    import anyio
    from support import PATIENCE

    s = await SqliteStore(tmp_path / "s.db").open()
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process's write, under way
    ticks, written = 0, anyio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not written.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    async def write() -> None:
        await s.add(rec("fox"))
        written.set()

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            tg.start_soon(write)
            while ticks < 20:  # the loop runs on while the write waits
                await anyio.sleep(0.01)
            assert not written.is_set()
            other.execute("COMMIT")
            await written.wait()
    assert (await s.find("w", "fox")) is not None
    other.close()
    await s.close()


def _add_many(path: str, worker: int, count: int, out) -> None:
    import anyio

    async def run() -> tuple[list[bool], list[str]]:
        s = await SqliteStore(__import__("pathlib").Path(path)).open()
        added = [bool(await s.add(Record(name=f"n{i}", workspace="w"))) for i in range(count)]
        numbered = [(await s.add(Record(name="fox", workspace="w"), next_free=True)).name for _ in range(count)]
        await s.close()
        return added, numbered

    out.put((worker, anyio.run(run)))


async def test_two_processes_on_one_file_never_take_the_same_name(tmp_path):
    path = str(tmp_path / "shared.db")
    (await SqliteStore(tmp_path / "shared.db").open())  # created and migrated once
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_add_many, args=(path, w, 60, out)) for w in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    # every name went to exactly one of the two, and nothing written was lost
    for i in range(60):
        assert results[0][0][i] != results[1][0][i]
    numbered = results[0][1] + results[1][1]
    assert sorted(numbered) == sorted(itertools.islice(naming.candidates("fox"), 120))
    s = await SqliteStore(tmp_path / "shared.db").open()
    assert await s.count("w") == 180
    await s.close()
    assert os.path.exists(path)
