"""The operations and their tools, as data: the one place a tool's name is spelled.

``TOOLS`` says, for each MCP tool, its name, its human title, what it does in a few words (the server's
instructions), what it touches (its annotations), whether the MCP App shows its results, and whether
it acts on an earlier image named in its ``image`` argument. ``OPERATIONS`` says, for each operation,
the tool that runs it, the upstream endpoint it calls (``upstream.ENDPOINTS`` by name), the kind of
result it makes (``kinds.Kind``; None where each action says, as ``actions.Action.makes`` does), and its
label in the App. The tool registrations (``server/tools.py``), the server instructions, the App's
catalogue (``ui``) and the tests' tool sets read these tables; an action of the catalogue names the
tool that sends it from here too.

Adding an operation: its row here (and its tool's, unless an existing tool runs it), its endpoint in
``upstream/requests.py``, and its studio module (``studio/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .kinds import Kind

# The tools' names, each spelled once.
IMAGINE = "imagine"
APPLY_ACTION = "apply_action"
BLEND = "blend"
INPAINT_REGION = "inpaint_region"
DESCRIBE = "describe"
REWRITE_PROMPT = "rewrite_prompt"
GET_TASK = "get_task"
LIST_IMAGES = "list_images"
EXPORT_IMAGE = "export_image"
VIEW_IMAGE = "view_image"
EDIT_IMAGE = "edit_image"
ANIMATE = "animate"


class Effect(StrEnum):
    """What calling a tool touches: its MCP annotations follow from it."""

    # Starts a paid job upstream: creates, never destroys.
    GENERATES = "generates"
    # Asks upstream, changes nothing there.
    LOOKS_UP = "looks_up"
    # Reads this server's own state only.
    READS = "reads"
    # Writes a file on the user's disk (may replace one when asked to).
    WRITES = "writes"


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    # What it does, in a few words after its name: the server's instructions list these.
    does: str
    effect: Effect
    # The MCP App's view shows its results (its ``_meta.ui``).
    in_app: bool = True
    # Acts on an earlier image named in its ``image`` argument: its result is that image's child.
    from_image: bool = False
    # Called by the App only, hidden from the model.
    app_only: bool = False


@dataclass(frozen=True)
class Operation:
    name: str
    tool: str
    # The upstream endpoint it calls (``upstream.ENDPOINTS``); None: it works on this server's own state.
    endpoint: str | None
    # What it makes; None where each action says (``actions.Action.makes``), or where it makes nothing.
    makes: Kind | None
    # Its label in the App.
    label: str


TOOLS: tuple[Tool, ...] = (
    Tool(IMAGINE, "Imagine a grid", "makes a 2x2 grid, quadrants 1-4 from top-left", Effect.GENERATES),
    Tool(
        APPLY_ACTION,
        "Upscale, vary, zoom, pan or extend",
        "upscales, varies, rerolls, zooms or pans an image, or extends a video's clip",
        Effect.GENERATES,
        from_image=True,
    ),
    Tool(BLEND, "Blend images", "mixes 2-5 images", Effect.GENERATES),
    Tool(INPAINT_REGION, "Repaint a region", "repaints part of a single image", Effect.GENERATES, from_image=True),
    # The App's view shows texts as prompts, each with a button that imagines it.
    Tool(DESCRIBE, "Describe an image", "turns an image into four prompts", Effect.GENERATES, from_image=True),
    Tool(REWRITE_PROMPT, "Rewrite a prompt", "shortens a prompt or translates it to English", Effect.GENERATES),
    Tool(GET_TASK, "Check a job", "checks a job or reads an image's seed", Effect.LOOKS_UP),
    Tool(LIST_IMAGES, "List images", "recalls the workspace's images", Effect.READS),
    Tool(EXPORT_IMAGE, "Export an image", "saves one to a file", Effect.WRITES, in_app=False),
    Tool(VIEW_IMAGE, "Show an image", "shows an image in the App", Effect.READS, app_only=True),
    Tool(
        EDIT_IMAGE,
        "Edit a picture",
        "repaints any picture, wholly or in a region: 4 results",
        Effect.GENERATES,
        from_image=True,
    ),
    Tool(ANIMATE, "Animate an image", "turns an image into four short video clips", Effect.GENERATES, from_image=True),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("imagine", IMAGINE, "imagine", Kind.GRID, "Imagine"),
    Operation("action", APPLY_ACTION, "imagine", None, "Action"),
    Operation("blend", BLEND, "imagine", Kind.GRID, "Blend"),
    Operation("inpaint", INPAINT_REGION, "imagine", Kind.GRID, "Vary (Region)"),
    Operation("describe", DESCRIBE, "describe", Kind.TEXTS, "Describe"),
    Operation("shorten", REWRITE_PROMPT, "shorten", Kind.TEXTS, "Shorten"),
    Operation("translate", REWRITE_PROMPT, "translate", Kind.TEXTS, "Translate"),
    Operation("get", GET_TASK, "retrieve", None, "Refresh"),
    # Kept on the image's own record (get_task with seed), not a record of its own.
    Operation("seed", GET_TASK, "seed", Kind.SEED, "Seed"),
    Operation("list", LIST_IMAGES, None, None, "Images"),
    Operation("export", EXPORT_IMAGE, None, None, "Export"),
    Operation("picture", VIEW_IMAGE, None, None, "Picture"),
    Operation("edit", EDIT_IMAGE, "edits", Kind.EDITS, "Edit"),
    Operation("animate", ANIMATE, "videos", Kind.VIDEOS, "Animate"),
    # extend1-4 (apply_action on a video): one clip made longer, as four new clips.
    Operation("extend", APPLY_ACTION, "videos", Kind.VIDEOS, "Extend"),
)

TOOL: dict[str, Tool] = {t.name: t for t in TOOLS}
OPERATION: dict[str, Operation] = {o.name: o for o in OPERATIONS}
# The tools the model sees (the App's own are listed only to the App).
MODEL_TOOLS: tuple[Tool, ...] = tuple(t for t in TOOLS if not t.app_only)
GENERATING: frozenset[str] = frozenset(t.name for t in TOOLS if t.effect is Effect.GENERATES)
