"""The seed of a finished image (``/midjourney/seed``), for get_task(seed=true): what reproduces the
image with ``--seed``. Kept in the image's own record, so it is asked for once per image.

``/seed`` answers at once and keeps no task, so there is nothing upstream to recover an answer lost
with the process from, and nothing to store before asking that would keep it: what is stored is the
answer, in the image's record, before the call returns it. A lease on the image in the store makes
one call ask while others (in any process sharing the store) wait for its answer.
"""

from __future__ import annotations

import anyio

from ..core.operations import GET_TASK
from ..errors import InvalidInput, UpstreamTimeout
from ..records import Record
from ..store import Store, new_owner
from ..upstream import requests as endpoints
from ..upstream.requests import SeedBody
from .calls import Call

# The longest one ask may take (a seed is one short request); its lease outlives it a little.
ASK_S = 60.0
LEASE_S = ASK_S + 10.0
# How long a call waits for another call's ask of the same seed, looking at each save (or this often).
WAIT_S, LOOK_S = 30.0, 1.0


async def with_seed(call: Call, record: Record) -> Record:
    """``record`` with its seed: the one it keeps, else asked for once and kept. Refused locally when
    there is no image_id to ask about (running, failed, texts)."""
    if record.seed is not None:
        return record
    _check(record)
    store, key, owner = call.studio.store, f"seed:{record.id}", new_owner()
    answered = await _lease_or_answer(store, record, key, owner)
    if answered is not None:
        return answered
    try:
        return await _ask(call, record)
    finally:
        with anyio.CancelScope(shield=True):
            await store.release(key, owner)


def _check(record: Record) -> None:
    name = record.name
    if record.status == "running":
        raise InvalidInput(
            f"{name} is still generating ({record.progress:.0f}%); its seed comes once it is finished",
            next_step=f'Call {GET_TASK}(ref="{name}", wait_seconds=50, seed=true).',
        )
    if record.status == "failed":
        raise InvalidInput(f"{name} failed: it has no seed", next_step="Ask for the seed of a finished image.")
    if not record.is_image:
        raise InvalidInput(f"{name} is {record.kind}, not an image: it has no seed", next_step="Give an image's name.")
    if not record.image_id:
        raise InvalidInput(f"{name} has no image_id to ask its seed by", next_step="Give another image's name.")


async def _lease_or_answer(store: Store, record: Record, key: str, owner: str) -> Record | None:
    """None once this call holds the lease to ask; or the record with the seed another call's ask saved."""
    with anyio.move_on_after(WAIT_S):
        while not await store.lease(key, owner, LEASE_S):
            # Another call asks: its answer lands in the record.
            async with store.changes(record.id) as changed:
                kept = await store.get(record.id)
                if kept is not None and kept.seed is not None:
                    return kept
                await changed(LOOK_S)
        return None
    raise UpstreamTimeout(
        f"another call is asking for the seed of {record.name}", next_step=f"Call {GET_TASK} with seed=true again."
    )


async def _ask(call: Call, record: Record) -> Record:
    """Holding the lease: the seed the store may have by now, else upstream's, saved in the record."""
    store = call.studio.store
    kept = await store.get(record.id)
    if kept is None:
        raise await call.workspace.unknown(record.name)
    if kept.seed is not None:
        return kept
    upstream = call.studio.upstreams.for_workspace(call.workspace.key)
    try:
        with anyio.fail_after(ASK_S):
            reply = await upstream.ask(endpoints.SEED, SeedBody(image_id=record.image_id or ""))
    except TimeoutError:
        raise UpstreamTimeout(
            f"no seed for {record.name} within {ASK_S:g} s", next_step=f"Call {GET_TASK} with seed=true again."
        ) from None
    seeded = kept.model_copy(update={"seed": reply.seed})
    await store.save(seeded)
    return seeded
