"""get_task: a job's or an image's state by name, image_id or task_id, waiting for it if asked; a task
started elsewhere is adopted by its task_id (unless another workspace holds it), and a running record
nobody follows is followed again; with ``seed``, a finished image's seed too (``seed.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core.operations import GET_TASK
from ..records import Record
from .calls import MAX_WAIT, Call, runs
from .seed import with_seed


@runs(GET_TASK)
async def get_task(
    call: Call,
    ref: Annotated[str, Field(description="A name, image_id or task_id.")],
    wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT, description="Max seconds to wait for a running task")] = 0,
    seed: Annotated[bool, Field(description="Also the image's seed, for --seed")] = False,
) -> Record:
    """An image's or task's state; waits for it to finish if asked to."""
    studio, ws = call.studio, call.workspace
    record, adopted = await studio.get(ws, ref)
    call.following(record)
    before = record.status
    if wait_seconds > 0:
        record = await studio.wait(ws, record, wait_seconds, call.report(record))
    if adopted or record.status != before:
        await call.list_changed()
    return await with_seed(call, record) if seed else record
