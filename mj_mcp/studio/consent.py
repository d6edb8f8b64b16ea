"""The spend guard: which jobs the person is asked about before they are paid for, and in what words.

``MJ_MCP_CONFIRM`` names what costs enough to ask about: result kinds (``core/kinds.py``: what the
operations of the operation table make, ``videos`` by default), actions of the catalogue
(``upscale_4x``) and operations (``core/operations.py``). A checked plan whose job makes, sends or is
one of those is asked about (``ask``) when the call has someone to ask (``Call.confirm``: the server
sets it where the client can show the person a question, MCP elicitation), before anything is stored
or sent. A refusal raises ``Declined``, so nothing is reserved, counted or billed; with nobody to ask
the job goes as it always did. Nothing here names a tool or an endpoint: a new operation is guarded as
soon as its row and its result kind exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import actions
from ..core.kinds import Kind
from ..core.operations import OPERATIONS, Operation
from ..errors import Declined, SettingsError

if TYPE_CHECKING:
    from .calls import Call
    from .plans import Plan

# What a job of each kind makes, in the question's words.
MAKES: dict[Kind, str] = {
    Kind.GRID: "a 2x2 grid",
    Kind.SINGLE: "one image",
    Kind.UPSCALED: "one upscaled image",
    Kind.VIDEOS: "four videos",
    Kind.TEXTS: "texts",
    Kind.SEED: "a seed",
}
# What MJ_MCP_CONFIRM may name.
NAMES: frozenset[str] = frozenset(
    {kind.value for kind in Kind} | set(actions.BY_NAME) | {o.name for o in OPERATIONS if o.endpoint}
)
# A prompt quoted in a question, at most this long.
PROMPT_HEAD = 40


def check(names: list[str]) -> None:
    """Refuse, at start, a name the guard would never meet."""
    unknown = sorted(set(names) - NAMES)
    if unknown:
        raise SettingsError(
            f"MJ_MCP_CONFIRM names {', '.join(unknown)}, which no job makes, sends or is; it takes result kinds "
            f"({', '.join(k.value for k in Kind)}), actions (such as upscale_4x) and operations "
            f"({', '.join(o.name for o in OPERATIONS if o.endpoint)}), or off"
        )


def _operation(plan: Plan, tool: str | None) -> Operation | None:
    """The operation table's row for the plan: of its tool, by endpoint where the tool runs several."""
    rows = [o for o in OPERATIONS if o.tool == tool]
    return next((o for o in rows if o.endpoint == plan.endpoint.name), rows[0] if rows else None)


def guarded(confirm: list[str], plan: Plan, tool: str | None) -> bool:
    """Whether the job of ``plan`` is one the settings ask about."""
    record = plan.record
    operation = _operation(plan, tool)
    names = {record.action, record.kind.value if record.kind else "", operation.name if operation else ""}
    return not names.isdisjoint(confirm)


def question(plan: Plan, tool: str | None, *, simulated: bool) -> str:
    """What the person is asked, e.g. ``Upscale (4x) fox-snow.u2: one upscaled image, billed to your
    AceDataCloud account. Go ahead?``"""
    record = plan.record
    action = actions.BY_NAME.get(record.action)
    operation = _operation(plan, tool)
    if action is not None and action.name != "generate":
        title = action.label
    else:
        title = operation.label if operation else plan.endpoint.name.capitalize()
    if record.parent:
        subject = record.parent
    elif record.sources:
        subject = " + ".join(record.sources)
    else:
        text = " ".join((record.prompt or "").split())
        subject = f'"{text[: PROMPT_HEAD - 1]}…"' if len(text) > PROMPT_HEAD else f'"{text}"'
    makes = plan.summary or (MAKES[record.kind] if record.kind else "a new job")
    paid = "on the simulator (nothing is billed)" if simulated else "billed to your AceDataCloud account"
    return f"{title} {subject}: {makes}, {paid}. Go ahead?"


async def ask(call: Call, plan: Plan) -> None:
    """Ask the person before ``plan`` is stored and sent, when the settings guard it and the call has
    someone to ask; ``Declined`` when they say no (or do not answer)."""
    settings = call.studio.settings
    if call.confirm is None or not guarded(settings.confirm, plan, call.tool):
        return
    words = question(plan, call.tool, simulated=settings.simulate)
    if not await call.confirm(words):
        raise Declined(
            f"not sent: the person declined when asked ({words.removesuffix(' Go ahead?').rstrip('.')})",
            next_step="Ask the person what they want instead; call again only once they agree.",
        )
