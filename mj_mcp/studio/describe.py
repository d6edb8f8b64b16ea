"""describe: an image (a finished image's name, or an https URL) to Midjourney's four prompts for it,
each ready for imagine. A job like any other (stored first, never resent); its record holds the four
texts, and a name's record is named in that image's lineage (``fox-snow.prompts``)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field

from ..core.kinds import Kind
from ..core.operations import DESCRIBE
from ..core.prompt import MAX_URL_CHARS
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import DescribeBody
from .calls import Call, runs
from .plans import Plan, source

# The operation (the record's action), and the lineage segment of what it makes: fox-snow.prompts.
OPERATION, SUFFIX = "describe", "prompts"


@runs(DESCRIBE)
async def describe(
    call: Call, image: Annotated[str, Field(max_length=MAX_URL_CHARS, description="An image's name, or an https URL")]
) -> Record:
    """Four prompts for an image, each ready for imagine."""
    return await call.generate(await plan_describe(call, image=image), None)


async def plan_describe(call: Call, *, image: str) -> Plan:
    """Refused before anything is sent: an http URL, or an image that is running, failed or not a picture."""
    ref = image.strip()
    given = await source(call, ref)
    parent, url = given.record, given.url
    if parent is None:
        name = await call.workspace.name_for(requested=None, prompt=_words_of(url), suffix=SUFFIX)
    else:
        name = await call.workspace.name_for(requested=None, parent=parent.name, suffix=SUFFIX)
    record = Record(
        name=name,
        kind=Kind.TEXTS,
        action=OPERATION,
        parent=parent.name if parent else None,
        parent_id=parent.id if parent else None,
        sources=[parent.name if parent else url],
    )
    return Plan(record, endpoints.DESCRIBE, DescribeBody(image_url=url))


def _words_of(url: str) -> str:
    """A URL's file name as words, for a name (``.../red_fox-snow.png`` -> ``red fox snow``)."""
    return PurePosixPath(urlsplit(url).path).stem.replace("_", " ").replace("-", " ")
