"""rewrite_prompt: a prompt made shorter (up to five candidates, ``/midjourney/shorten``) or put into
English (``/midjourney/translate``), each ready for imagine.

A job like any other, with a texts record: upstream's answer is what the user pays for (we treat these
endpoints as billed), so it is stored before the request leaves, kept under a name and readable later
like any result (README, "Tools"). The prompt is checked as imagine checks it: the candidates are for
imagine, and a flag it would refuse is refused now, before paying for a rewrite of it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core.kinds import Kind
from ..core.operations import REWRITE_PROMPT
from ..errors import InvalidInput
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ShortenBody, TranslateBody
from .calls import MAX_PROMPT, Call, runs
from .plans import Plan, checked_prompt

# How a prompt is rewritten (the operation, and the record's action), and the name of what it makes:
# "a fox in the snow" -> fox-snow.short, fox-snow.en.
How = Literal["shorten", "translate"]
SUFFIX: dict[str, str] = {"shorten": "short", "translate": "en"}


@runs(REWRITE_PROMPT)
async def rewrite_prompt(
    call: Call, prompt: Annotated[str, Field(max_length=MAX_PROMPT)], how: How = "shorten"
) -> Record:
    """Up to 5 shorter versions of a prompt, or its English translation."""
    return await call.generate(await plan_rewrite(call, prompt=prompt, how=how), None)


async def plan_rewrite(call: Call, *, prompt: str, how: How) -> Plan:
    if not prompt.strip():
        raise InvalidInput("prompt is empty", next_step="Give the prompt to rewrite.")
    checked_prompt(prompt)
    name = await call.workspace.name_for(requested=None, prompt=prompt, fallback="prompt", suffix=SUFFIX[how])
    record = Record(name=name, kind=Kind.TEXTS, action=how, prompt=prompt)
    if how == "translate":
        return Plan(record, endpoints.TRANSLATE, TranslateBody(content=prompt))
    return Plan(record, endpoints.SHORTEN, ShortenBody(prompt=prompt))
