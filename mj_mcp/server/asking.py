"""Asking the person before money is spent: the spend guard's question (``studio/consent.py``) put to
the person through MCP elicitation, in the words each protocol era has for it.

- Handshake era: an ``elicitation/create`` request on the call's own back-channel while the call waits
  for the answer, at most ``ANSWER_WAIT_S`` (no answer is no).
- 2026-07-28 has no server-to-client requests: the call answers ``input_required`` with the question
  (``AskFirst``) and the client calls again with the person's answer in ``inputResponses`` (the
  multi-round-trip flow). The answer's key is a digest of the question, so it counts for that very
  question only (another job, another image, another wording asks again), and no request state
  travels: any replica can serve the second round. The job is planned again on the second round, from
  the same arguments, and only then stored and sent.

A client that declared no form elicitation (or, in the handshake era, has no back-channel) is asked
nothing: the job goes as it always did. ``Resolve``/``Elicit`` (the SDK's resolvers) run before the tool
and would have to plan the job a second time just to word the question; this asks from inside the
operation, once it knows the checked plan.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
from mcp.types import ClientCapabilities, ElicitRequest, ElicitRequestFormParams, InputRequiredResult

from ..studio.calls import Confirm
from .protocol import MODERN
from .scope import Ctx

# The question is the whole form: accept is yes; decline, cancel or no answer is no.
SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
# How long a handshake-era call waits for the person.
ANSWER_WAIT_S = 600.0
KEY_PREFIX = "mj-mcp/confirm-"


class AskFirst(Exception):
    """2026-07-28: the call must ask the person before going on; its answer is ``input_required``."""

    def __init__(self, key: str, question: str) -> None:
        super().__init__(question)
        self.key, self.question = key, question

    def answer(self) -> InputRequiredResult:
        request = ElicitRequest(params=ElicitRequestFormParams(message=self.question, requested_schema=SCHEMA))
        return InputRequiredResult(input_requests={self.key: request})


def can_elicit(capabilities: ClientCapabilities | None) -> bool:
    """A client that declared form elicitation (a bare ``elicitation: {}`` is form, from before modes)."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def key_of(question: str) -> str:
    return KEY_PREFIX + hashlib.sha256(question.encode()).hexdigest()[:24]


def confirmer(ctx: Ctx) -> Confirm | None:
    """Who the call can ask before money is spent, in the request's era; None: nobody."""
    request = ctx.request_context
    if not can_elicit(ctx.client_capabilities):
        return None
    if request.protocol_version >= MODERN:
        return _in_rounds(ctx)
    if not request.session.can_send_request:
        return None
    return _on_the_back_channel(ctx)


def _on_the_back_channel(ctx: Ctx) -> Confirm:
    async def confirm(question: str) -> bool:
        request = ctx.request_context
        with anyio.move_on_after(ANSWER_WAIT_S):
            answer = await request.session.elicit_form(question, SCHEMA, related_request_id=request.request_id)
            return answer.action == "accept"
        return False

    return confirm


def _in_rounds(ctx: Ctx) -> Confirm:
    async def confirm(question: str) -> bool:
        key = key_of(question)
        answer = (ctx.input_responses or {}).get(key)
        if answer is None:
            raise AskFirst(key, question)
        return getattr(answer, "action", None) == "accept"

    return confirm
