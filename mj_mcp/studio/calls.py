"""One call of an operation, as the studio sees it (no MCP), and what the operations are.

Each operation is one async function in its own module of this package: its first parameter is the
``Call``, the others are what the caller gives, typed and described with pydantic (the tool's input
schema is made of them), its docstring is the tool's description, and it returns a ``Record`` (a job's
or an image's), a ``Listing``, an ``Exported`` or a ``Picture``. ``runs(tool)`` files it under the tool
of the operation table (``core/operations.py``) that it serves; ``server/tools.py`` registers every one
of them the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import Field

from ..core.operations import TOOL
from ..records import Handle, Record
from ..workspaces import Workspace
from . import consent

if TYPE_CHECKING:
    from . import Studio
    from .plans import Plan

MAX_PROMPT = 4000
MAX_WAIT = 3600

# The parameters several operations share, as the model reads them.
Mode = Literal["fast", "relax", "turbo"]
# The result's name (default: derived from the prompt or the parent).
Name = str | None
# An image's name (or its image_id or task_id).
ImageRef = str
Wait = Annotated[
    float | None, Field(ge=0, le=MAX_WAIT, description="Max seconds to wait (default 50); the job goes on")
]

# Where a call's progress goes: the job's name, a figure out of 100, a short message.
Progress = Callable[[str, float, str], Awaitable[None]]
# Asks the person a question before money is spent: True to go ahead (the spend guard, ``consent.py``).
Confirm = Callable[[str], Awaitable[bool]]


async def _nowhere(name: str, progress: float, message: str) -> None:
    return None


async def _unheard() -> None:
    return None


@dataclass
class Call:
    """One call: the studio, the caller's workspace, where its progress goes, and who is told when a
    job it started or took over ends, or when the workspace's list of images changed (the server's
    notifications; nobody, outside a server). The server sets the rest: the tool called (its row in
    the operation table), who can be asked before money is spent (None: nobody, the job goes), and for
    a caller that polls jobs instead of waiting on them (an MCP task) the handle its jobs are stored
    with and how long the call waits at most, whatever ``wait_seconds`` says."""

    studio: Studio
    workspace: Workspace
    progress: Progress = _nowhere
    following: Callable[[Record], None] = field(default=lambda record: None)
    list_changed: Callable[[], Awaitable[None]] = _unheard
    tool: str | None = None
    confirm: Confirm | None = None
    handle: Handle | None = None
    wait_at_most: float | None = None

    def report(self, record: Record) -> Callable[[float, str], Awaitable[None]]:
        """The progress of ``record``'s job, as this call reports it."""
        name = record.name

        async def report(progress: float, message: str) -> None:
            await self.progress(name, progress, message)

        return report

    async def generate(self, plan: Plan, wait_seconds: float | None) -> Record:
        """Start a checked plan (stored first, then sent), follow it with progress up to the deadline,
        and answer with its record; the job goes on after. A job the settings guard is asked about first,
        where someone can be asked (``consent.py``): a refusal stores and sends nothing."""
        studio, ws = self.studio, self.workspace
        await consent.ask(self, plan)
        if self.handle is not None:
            plan.record = plan.record.model_copy(update={"handle": self.handle})
        record = await studio.start(ws, plan)
        # Told when it ends, after this call too (resources/list shows finished images only).
        self.following(record)
        wait = studio.settings.wait_s if wait_seconds is None else wait_seconds
        if self.wait_at_most is not None:
            wait = min(wait, self.wait_at_most)
        return await studio.wait(ws, record, wait, self.report(record))


# An operation's function: ``Call`` first, the caller's arguments after.
ToolFunction = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=ToolFunction)

# The function that serves each tool of the operation table, filed by ``runs``.
TOOL_FUNCTIONS: dict[str, ToolFunction] = {}


def runs(tool: str) -> Callable[[F], F]:
    """File the decorated operation as the function of ``tool`` (a tool of the operation table)."""
    if tool not in TOOL:
        raise ValueError(f"{tool!r} is not a tool of the operation table (core/operations.py)")

    def file(fn: F) -> F:
        if tool in TOOL_FUNCTIONS:
            raise ValueError(f"{tool!r} is served twice: {TOOL_FUNCTIONS[tool].__module__} and {fn.__module__}")
        TOOL_FUNCTIONS[tool] = fn
        return fn

    return file
