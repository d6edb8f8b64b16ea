"""list_images: the workspace's images, newest first, or one image's family (ancestors and descendants)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from ..core.operations import LIST_IMAGES
from ..records import Record
from .calls import Call, runs


@dataclass
class Listing:
    records: list[Record]
    # Matching records, before the limit.
    total: int


@runs(LIST_IMAGES)
async def list_images(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=200)] = 20,
    lineage_of: Annotated[str | None, Field(description="Only this image's family.")] = None,
) -> Listing:
    """This workspace's images, newest first, one line each."""
    ws = call.workspace
    records = await (ws.lineage(lineage_of) if lineage_of is not None else ws.latest())
    return Listing(records=records[:limit], total=len(records))
