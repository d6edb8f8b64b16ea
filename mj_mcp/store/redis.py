"""The store in Redis (``MJ_MCP_STORE=redis://host:port/db``): one state for many replicas.

Every operation that reads and then writes is one Lua script, so it is atomic on the server with no
lock held across the network: reserving a name, saving a record with its lookups (and the records it
made, an edit's results, each under a name reserved in the same script), evicting, and
taking, renewing and releasing leases. Reads that gather several keys are scripts too (one round
trip). A standalone Redis (or one behind Sentinel) is assumed: the scripts touch keys they do not
declare, which Redis Cluster refuses.

Keys, all under ``mj-mcp:``:

- ``r:<id>``               hash: the record as JSON (``data``) and its looked-up fields and creation ``seq``
- ``w:<ws>:order``         zset: the workspace's record ids by ``seq`` (newest last)
- ``w:<ws>:names``         hash: name -> record id;  ``w:<ws>:lex``: zset of names for prefix ranges
- ``ref:<task or image id>`` zset: the record ids holding that id, by ``seq``
- ``running``, ``w:<ws>:running``  zsets: running record ids by ``seq``, everywhere and per workspace
- ``lease:<key>``          string: the holder, expiring with the lease (Redis's clock, one for all replicas)
- ``inbox:<id>``           list: items delivered for the record's follower (expire after a day)
- ``counter:<key>``        string: a counter, expiring ``ttl`` after it was created
- ``watch:<id>``           string: how many waiters, in any process, want notices of the record

A save, delete or delivery publishes the record id on ``mj-mcp:changed`` when someone waits on that
record (``watch:<id>``, counted by the waiters, expiring on its own if one dies): most saves have no
waiter elsewhere, and a notice every replica must read costs them all. Each process listens on one
connection and wakes its local waiters (``changes``). A lost notice costs a waiter its timeout.
The same connection carries ``mj-mcp:events`` (``broadcast`` / ``on_broadcast``): messages for every
replica, such as the MCP server's listen events; ``presence`` tells whether any other replica wants them.

The pool is bounded (``MAX_CONNECTIONS``, a wait of at most ``POOL_WAIT_S`` for a free one) and so is
every command (``COMMAND_TIMEOUT_S``). The URL's password is never logged: errors name the host only.
Every error of the client leaves as a ``StoreError`` (``_answering``): Redis down, a wrong password, a
refused command each say so, and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.exceptions import RedisError

from ..core import naming
from ..errors import StoreError
from ..records import Record
from .base import INBOX_LIMIT, failure, owner_gone
from .changes import Changed, Pulses

log = logging.getLogger("mj_mcp.store.redis")

PREFIX = "mj-mcp:"
CHANNEL = PREFIX + "changed"
EVENTS = PREFIX + "events"
MAX_BROADCAST = 64 << 10  # bytes of one broadcast message: at most 128 events of a kind and a URI
MAX_CONNECTIONS = 64  # per process: a thousand jobs in flight share them; a command holds one briefly
POOL_WAIT_S = 10.0
COMMAND_TIMEOUT_S = 10.0
INBOX_TTL_S = 86400
WATCH_TTL_S = 3 * 3600  # a waiter that died stops costing notices after this (a wait lasts at most an hour)
LISTEN_RETRY_S = 1.0

# Shared by the scripts: remove a record's lookups, or write them (``seq`` kept from its first write).
_LIB = """
local P = KEYS[1]
local function unindex(id)
  local old = redis.call('HMGET', P..'r:'..id, 'ws', 'name', 'task', 'image')
  if not old[1] then return end
  local ws, name = old[1], old[2]
  if redis.call('HGET', P..'w:'..ws..':names', name) == id then
    redis.call('HDEL', P..'w:'..ws..':names', name)
    redis.call('ZREM', P..'w:'..ws..':lex', name)
  end
  redis.call('ZREM', P..'w:'..ws..':order', id)
  if old[3] ~= '' then redis.call('ZREM', P..'ref:'..old[3], id) end
  if old[4] ~= '' then redis.call('ZREM', P..'ref:'..old[4], id) end
  redis.call('ZREM', P..'running', id)
  redis.call('ZREM', P..'w:'..ws..':running', id)
end
local function index(id, ws, name, status, task, image, data, seq)
  redis.call('HSET', P..'r:'..id, 'ws', ws, 'name', name, 'status', status, 'task', task, 'image', image,
             'data', data, 'seq', seq)
  redis.call('HSET', P..'w:'..ws..':names', name, id)
  redis.call('ZADD', P..'w:'..ws..':lex', 0, name)
  redis.call('ZADD', P..'w:'..ws..':order', seq, id)
  if task ~= '' then redis.call('ZADD', P..'ref:'..task, seq, id) end
  if image ~= '' then redis.call('ZADD', P..'ref:'..image, seq, id) end
  if status == 'running' then
    redis.call('ZADD', P..'running', seq, id)
    redis.call('ZADD', P..'w:'..ws..':running', seq, id)
  end
end
local function notify(id)
  if redis.call('EXISTS', P..'watch:'..id) == 1 then redis.call('PUBLISH', P..'changed', id) end
end
local function remove(id)
  unindex(id)
  redis.call('DEL', P..'r:'..id, P..'inbox:'..id)
  notify(id)
end
local function records(ids)
  local out = {}
  for i, id in ipairs(ids) do out[i] = redis.call('HGET', P..'r:'..id, 'data') end
  return out
end
-- A new record under its name; a taken name: false, or with next_free ('1') the first free of
-- core.naming.candidates (the same rule, on ASCII names: base, then base-2... cut to max_name). The data's
-- JSON comes in two parts, around the name's value. The name the record got.
local function add(id, ws, base, status, task, image, head, tail, next_free, max_name)
  local names = P..'w:'..ws..':names'
  local name, n = base, 2
  while redis.call('HEXISTS', names, name) == 1 do
    if next_free ~= '1' then return false end
    local suffix = '-'..n
    name = string.sub(base, 1, tonumber(max_name) - #suffix)..suffix
    n = n + 1
  end
  unindex(id)
  index(id, ws, name, status, task, image, head..cjson.encode(name)..tail, redis.call('INCR', P..'seq'))
  notify(id)
  return name
end
-- A record written whole. A progress update changes only ``data``: one HSET.
local function save(id, ws, name, status, task, image, data)
  local key = P..'r:'..id
  local old = redis.call('HMGET', key, 'ws', 'name', 'status', 'task', 'image', 'seq')
  if old[6] and old[1] == ws and old[2] == name and old[3] == status and old[4] == task and old[5] == image
     and redis.call('HGET', P..'w:'..ws..':names', name) == id then
    redis.call('HSET', key, 'data', data)
  else
    unindex(id)
    index(id, ws, name, status, task, image, data, old[6] or redis.call('INCR', P..'seq'))
  end
  notify(id)
end
"""

# ARGV: id, ws, name, status, task, image, the data's JSON before and after the name's value, next free
# (1/0), MAX_NAME.
_ADD = (
    _LIB
    + """
return add(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
"""
)

# ARGV: _ADD's, then the lease's owner and its ttl ms. _ADD, and when the record was stored the lease on its
# new id; with the workspace's count after it: {name or false, count}.
_ADMIT = (
    _LIB
    + """
local name = add(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
if name then redis.call('SET', P..'lease:'..ARGV[1], ARGV[11], 'PX', ARGV[12]) end
return {name, redis.call('ZCARD', P..'w:'..ARGV[2]..':order')}
"""
)

# Lets an owner's lease on a record's id go ('' none): a follower's last save of a final record.
_RELEASE_ON_SAVE = """
if ARGV[8] ~= '' and redis.call('GET', P..'lease:'..ARGV[1]) == ARGV[8] then redis.call('DEL', P..'lease:'..ARGV[1]) end
"""

# ARGV: id, ws, name, status, task, image, data, and an owner whose lease on the id goes ('' none).
_SAVE = (
    _LIB
    + _RELEASE_ON_SAVE
    + """
save(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"""
)

# ARGV: _SAVE's 8, MAX_NAME, then 8 for each record added (as for _ADD, without the last two): each not stored
# yet takes the first free of its name's candidates.
_SAVE_ADDING = (
    _LIB
    + _RELEASE_ON_SAVE
    + """
save(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
for i = 10, #ARGV, 8 do
  if redis.call('EXISTS', P..'r:'..ARGV[i]) == 0 then
    add(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7],
        '1', ARGV[9])
  end
end
"""
)

# ARGV: ws, ref
_FIND = (
    _LIB
    + """
local id = redis.call('HGET', P..'w:'..ARGV[1]..':names', ARGV[2])
if id then return redis.call('HGET', P..'r:'..id, 'data') end
for _, holder in ipairs(redis.call('ZREVRANGE', P..'ref:'..ARGV[2], 0, -1)) do
  if redis.call('HGET', P..'r:'..holder, 'ws') == ARGV[1] then return redis.call('HGET', P..'r:'..holder, 'data') end
end
return false
"""
)

# ARGV: ws, last index (-1: all)
_LATEST = (
    _LIB
    + """
return records(redis.call('ZREVRANGE', P..'w:'..ARGV[1]..':order', 0, tonumber(ARGV[2])))
"""
)

# ARGV: ws, prefix. The names in the prefix's lexical range, each with its creation seq.
_NAMES = (
    _LIB
    + """
local lo, hi = '-', '+'
if ARGV[2] ~= '' then lo, hi = '['..ARGV[2], '('..ARGV[2]..'\\255' end
local out = {}
for _, name in ipairs(redis.call('ZRANGEBYLEX', P..'w:'..ARGV[1]..':lex', lo, hi)) do
  local id = redis.call('HGET', P..'w:'..ARGV[1]..':names', name)
  if id then
    out[#out + 1] = name
    out[#out + 1] = redis.call('HGET', P..'r:'..id, 'seq')
  end
end
return out
"""
)

_DELETE = (
    _LIB
    + """
if redis.call('EXISTS', P..'r:'..ARGV[1]) == 1 then remove(ARGV[1]) end
"""
)

# ARGV: ws, keep. Oldest first, never a running record.
_EVICT = (
    _LIB
    + """
local order = P..'w:'..ARGV[1]..':order'
local over = redis.call('ZCARD', order) - tonumber(ARGV[2])
local gone = {}
if over <= 0 then return gone end
for _, id in ipairs(redis.call('ZRANGE', order, 0, -1)) do
  if #gone >= over then break end
  local fields = redis.call('HMGET', P..'r:'..id, 'status', 'name')
  if fields[1] ~= 'running' then
    gone[#gone + 1] = fields[2]
    remove(id)
  end
end
return gone
"""
)

_OWNER_OF = (
    _LIB
    + """
local ids = redis.call('ZRANGE', P..'ref:'..ARGV[1], 0, 0)
if #ids == 0 then return false end
return redis.call('HGET', P..'r:'..ids[1], 'ws')
"""
)

_RUNNING = (
    _LIB
    + """
return records(redis.call('ZRANGE', P..'running', 0, -1))
"""
)

# ARGV: key, owner, ttl ms. 1 when taken; else the holder, for the caller's ``owner_gone`` check.
_LEASE = """
local key = KEYS[1]..'lease:'..ARGV[1]
local held = redis.call('GET', key)
if held and held ~= ARGV[2] then return held end
redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
return 1
"""

# ARGV: key, owner, ttl ms, the holder seen gone. Taken only if that holder still has it.
_STEAL = """
local key = KEYS[1]..'lease:'..ARGV[1]
if redis.call('GET', key) ~= ARGV[4] then return 0 end
redis.call('SET', key, ARGV[2], 'PX', ARGV[3])
return 1
"""

# ARGV: owner, ttl ms, keys... The keys held now, and those taken again (nobody held them).
_RENEW = """
local kept, retaken = {}, {}
for i = 3, #ARGV do
  local key = KEYS[1]..'lease:'..ARGV[i]
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    kept[#kept + 1] = ARGV[i]
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    kept[#kept + 1] = ARGV[i]
    retaken[#retaken + 1] = ARGV[i]
  end
end
return {kept, retaken}
"""

_RELEASE = """
local key = KEYS[1]..'lease:'..ARGV[1]
if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
"""

# ARGV: id, item, limit, ttl s
_DELIVER = """
local key = KEYS[1]..'inbox:'..ARGV[1]
redis.call('RPUSH', key, ARGV[2])
redis.call('LTRIM', key, -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', key, ARGV[4])
if redis.call('EXISTS', KEYS[1]..'watch:'..ARGV[1]) == 1 then redis.call('PUBLISH', KEYS[1]..'changed', ARGV[1]) end
"""

# ARGV: id, +1 or -1, ttl ms: count a waiter on the record in or out.
_WATCH = """
local key = KEYS[1]..'watch:'..ARGV[1]
local n = redis.call('INCRBY', key, ARGV[2])
if n <= 0 then redis.call('DEL', key) else redis.call('PEXPIRE', key, ARGV[3]) end
"""

# ARGV: member, present (1/0), ttl ms. How many other members are present (Redis's clock).
_PRESENCE = """
local key = KEYS[1]..'presence'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if ARGV[2] == '1' then redis.call('ZADD', key, now + tonumber(ARGV[3]), ARGV[1])
else redis.call('ZREM', key, ARGV[1]) end
local others = redis.call('ZCARD', key)
if ARGV[2] == '1' then others = others - 1 end
return others
"""

# ARGV: key, by, ttl ms. The expiry is set once, when the counter is created.
_INCR = """
local key = KEYS[1]..'counter:'..ARGV[1]
local value = redis.call('INCRBY', key, ARGV[2])
if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[3]) end
return value
"""

_COLLECT = """
local key = KEYS[1]..'inbox:'..ARGV[1]
local items = redis.call('LRANGE', key, 0, -1)
redis.call('DEL', key)
return items
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record(data: Any) -> Record:
    return Record.model_validate_json(data)


def _lookups(record: Record) -> list[str]:
    return [record.id, record.workspace, record.name, record.status, record.task_id or "", record.image_id or ""]


def _fields(record: Record) -> list[str]:
    return [*_lookups(record), record.model_dump_json()]


def _named(record: Record) -> list[str]:
    """A new record for a script that may change its name: its lookups, and its JSON in two parts, around
    the name's value."""
    marker = uuid.uuid4().hex
    head, _, tail = record.model_copy(update={"name": marker}).model_dump_json().partition(f'"{marker}"')
    return [*_lookups(record), head, tail]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _where(url: str) -> str:
    """The store's address without its user part: a password never reaches a message or a log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


# What a failing Redis means to whoever runs the server: what it did, and what to do about it.
def _meaning(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)):
        return "refused this client's credentials", "Check the user and password in MJ_MCP_STORE"
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        return "does not answer", "Check that Redis runs at that address and is reachable from this host"
    if isinstance(exc, rx.ResponseError):
        return (
            "refused a command",
            "Check the Redis log and its ACL (mj-mcp runs scripts and reads and writes "
            "mj-mcp:* keys) and that it is a writable primary with memory to spare",
        )
    return "failed", "Check the Redis server and its log"


class RedisStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._where = _where(url)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            socket_connect_timeout=5.0,
            health_check_interval=30,
        )
        self._redis = aioredis.Redis.from_pool(pool)
        self._scripts = {
            name: self._redis.register_script(code)
            for name, code in {
                "add": _ADD,
                "admit": _ADMIT,
                "save": _SAVE,
                "save_adding": _SAVE_ADDING,
                "find": _FIND,
                "latest": _LATEST,
                "names": _NAMES,
                "delete": _DELETE,
                "evict": _EVICT,
                "owner_of": _OWNER_OF,
                "running": _RUNNING,
                "lease": _LEASE,
                "steal": _STEAL,
                "renew": _RENEW,
                "release": _RELEASE,
                "deliver": _DELIVER,
                "collect": _COLLECT,
                "incr": _INCR,
                "presence": _PRESENCE,
                "watch": _WATCH,
            }.items()
        }
        self._pulses = Pulses()
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._heard: list[Callable[[str], Awaitable[None]]] = []  # on_broadcast callbacks

    async def open(self) -> RedisStore:
        """Check the server answers now, so a wrong URL stops the start instead of the first call."""
        with self._answering(starting=True):
            await self._redis.ping()
        return self

    @contextmanager
    def _answering(self, *, starting: bool = False) -> Iterator[None]:
        """Redis's errors leave as ``StoreError`` (the traceback to the debug log only)."""
        try:
            yield
        except (RedisError, OSError) as exc:
            log.debug("store %s failed", self._where, exc_info=exc)
            what, advice = _meaning(exc)
            detail = " ".join(str(exc).split())[:200].rstrip(".") or type(exc).__name__
            raise failure(self._where, f"{what} ({detail})", advice, starting=starting) from None

    async def _run(self, script: str, *args: Any) -> Any:
        with self._answering():
            return await self._scripts[script](keys=[PREFIX], args=list(args))

    async def ping(self) -> None:
        with self._answering():
            await self._redis.ping()

    async def add(self, record: Record, *, next_free: bool = False) -> Record | None:
        return self._added(record, await self._run("add", *_named(record), "1" if next_free else "0", naming.MAX_NAME))

    @staticmethod
    def _added(record: Record, name: Any) -> Record | None:
        if name is None:
            return None
        name = _text(name)
        return record if name == record.name else record.model_copy(update={"name": name})

    async def admit(self, record: Record, *, next_free: bool, owner: str, ttl: float) -> tuple[Record | None, int]:
        args = (*_named(record), "1" if next_free else "0", naming.MAX_NAME, owner, _ms(ttl))
        name, held = await self._run("admit", *args)
        return self._added(record, name), int(held)

    async def save(self, record: Record, *, adding: Sequence[Record] = (), release: str | None = None) -> None:
        if not adding:
            await self._run("save", *_fields(record), release or "")
            return
        added = (a for new in adding for a in _named(new))
        await self._run("save_adding", *_fields(record), release or "", naming.MAX_NAME, *added)

    async def get(self, record_id: str) -> Record | None:
        with self._answering():
            data = await self._redis.hget(f"{PREFIX}r:{record_id}", "data")
        return _record(data) if data else None

    async def find(self, workspace: str, ref: str) -> Record | None:
        data = await self._run("find", workspace, ref)
        return _record(data) if data else None

    async def latest(self, workspace: str, limit: int | None = None) -> list[Record]:
        if limit is not None and limit <= 0:
            return []
        rows = await self._run("latest", workspace, -1 if limit is None else limit - 1)
        return [_record(data) for data in rows if data]

    async def names(self, workspace: str, prefix: str = "", limit: int | None = None) -> list[str]:
        flat = await self._run("names", workspace, prefix)
        pairs = sorted(((int(flat[i + 1] or 0), _text(flat[i])) for i in range(0, len(flat), 2)), reverse=True)
        names = [name for _, name in pairs]
        return names if limit is None else names[:limit]

    async def count(self, workspace: str, *, running: bool = False) -> int:
        with self._answering():
            return int(await self._redis.zcard(f"{PREFIX}w:{workspace}:{'running' if running else 'order'}"))

    async def delete(self, record_id: str) -> None:
        await self._run("delete", record_id)

    async def evict(self, workspace: str, keep: int) -> list[str]:
        return [_text(name) for name in await self._run("evict", workspace, keep)]

    async def owner_of(self, ref: str) -> str | None:
        workspace = await self._run("owner_of", ref)
        return _text(workspace) if workspace else None

    async def running(self) -> list[Record]:
        return [_record(data) for data in await self._run("running") if data]

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        held = await self._run("lease", key, owner, _ms(ttl))
        if held == 1:
            return True
        holder = _text(held)
        # A holder that was a process on this host and is gone: its lease is void now (base.owner_gone).
        return owner_gone(holder) and bool(await self._run("steal", key, owner, _ms(ttl), holder))

    async def renew(self, keys: list[str], owner: str, ttl: float) -> tuple[set[str], set[str]]:
        if not keys:
            return set(), set()
        kept, retaken = await self._run("renew", owner, _ms(ttl), *keys)
        return {_text(key) for key in kept}, {_text(key) for key in retaken}

    async def release(self, key: str, owner: str) -> None:
        await self._run("release", key, owner)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        return int(await self._run("incr", key, by, _ms(ttl)))

    async def deliver(self, record_id: str, item: str) -> None:
        await self._run("deliver", record_id, item, INBOX_LIMIT, INBOX_TTL_S)

    async def collect(self, record_id: str) -> list[str]:
        return [_text(item) for item in await self._run("collect", record_id)]

    async def broadcast(self, message: str) -> None:
        """Send ``message`` to every process's ``on_broadcast`` callbacks, this one's included."""
        if len(message.encode()) <= MAX_BROADCAST:
            with self._answering():
                await self._redis.publish(EVENTS, message)

    async def presence(self, member: str, present: bool, ttl: float) -> bool:
        """Say whether ``member`` (a process) is present, for ``ttl`` seconds; whether any other is."""
        return int(await self._run("presence", member, "1" if present else "0", _ms(ttl))) > 0

    def on_broadcast(self, callback: Callable[[str], Awaitable[None]]) -> None:
        """Call ``callback`` with every broadcast message from now on (on the event loop)."""
        self._heard.append(callback)
        self._start_listening()

    def _start_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    @asynccontextmanager
    async def changes(self, record_id: str) -> AsyncIterator[Changed]:
        async with self._pulses.watch(record_id) as changed:
            self._start_listening()
            if not self._listening.is_set():  # the first waiter: until subscribed, a save would go unheard
                try:
                    await asyncio.wait_for(self._listening.wait(), LISTEN_RETRY_S)
                except TimeoutError:
                    pass  # its timeout covers it
            watched = False
            try:
                await self._run("watch", record_id, 1, _ms(WATCH_TTL_S))  # saves of it publish from now on
                watched = True
            except StoreError as exc:
                log.warning("store notices unavailable (%s); waiting on a timer", exc.message)
            try:
                yield changed
            finally:
                if watched:
                    try:  # shielded: a cancelled wait still counts itself out (else the count expires)
                        await asyncio.shield(self._run("watch", record_id, -1, _ms(WATCH_TTL_S)))
                    except StoreError:
                        pass

    async def _listen(self) -> None:
        """One subscription per process, for as long as it runs; waiters time out while it reconnects."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL, EVENTS)
                self._listening.set()
                while True:
                    # No read timeout on this connection: it waits for the next notice (health checks ping it).
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    if _text(message["channel"]) == CHANNEL:
                        self._pulses.notify(_text(message["data"]))
                        continue
                    for callback in list(self._heard):
                        try:
                            await callback(_text(message["data"]))
                        except Exception:
                            log.exception("a broadcast callback failed")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("store notices interrupted (%s); reconnecting", type(exc).__name__)
                self._listening.clear()
                await asyncio.sleep(LISTEN_RETRY_S)
            finally:
                await pubsub.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except (asyncio.CancelledError, Exception):
                pass
            self._listener = None
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
