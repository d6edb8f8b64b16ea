"""The one catalogue of upstream Midjourney actions.

Every action the AceDataCloud ``/midjourney/imagine`` endpoint knows, and those of ``/midjourney/videos``
(animate an image, extend one of a video's clips), with the kind of result it makes, what it needs, a
one-line meaning and the label Midjourney puts on its button. Tool schemas (the
``apply_action`` enum), local validation, the help text, lineage names, the simulator's state machine
and the MCP App's buttons are all derived from this table; nothing else spells the list out again.

Source: docs/upstream.md, "Actions". Result kinds of zoom, pan and vary subtle/strong, and what follows
an ``upscale_2x/4x``, are undocumented upstream; we follow Midjourney's own behaviour there (marked
inferred in that page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .kinds import Kind
from .operations import ANIMATE, APPLY_ACTION, IMAGINE, INPAINT_REGION

__all__ = [
    "ACTIONS_AFTER",
    "BY_NAME",
    "CATALOGUE",
    "FOLLOW_UPS",
    "Action",
    "FollowUp",
    "Kind",
    "Needs",
    "allowed_on",
    "get",
    "kind_of",
    "offered_on",
]

Needs = Literal["required", "optional", "ignored"]


@dataclass(frozen=True)
class Action:
    name: str
    makes: Kind
    meaning: str
    suffix: str  # the lineage segment of a result's name: lambo -> lambo.v2 -> lambo.v2.u4
    label: str  # Midjourney's button text, shown by the MCP App (its pan buttons are bare arrows)
    tool: str = APPLY_ACTION  # the MCP tool that sends it
    prompt: Needs = "ignored"
    needs_mask: bool = False
    # Actions that upstream never lists in an image's ``actions`` but accepts on these kinds.
    unlisted_on: tuple[Kind, ...] = ()
    # 1-4: the grid's quadrant (upscaleN, variationN) or the video's clip (extendN) it acts on.
    quadrant: int | None = None
    # The upstream endpoint that runs it (``upstream.ENDPOINTS`` by name).
    endpoint: str = "imagine"

    @property
    def needs_image(self) -> bool:
        return self.name != "generate"


def _quadrant_actions() -> list[Action]:
    out = []
    for n in range(1, 5):
        meaning = f"take quadrant {n} out of the grid as one image"
        out.append(Action(f"upscale{n}", Kind.SINGLE, meaning, f"u{n}", f"U{n}", quadrant=n))
    for n in range(1, 5):
        meaning = f"four new variations of quadrant {n}"
        out.append(Action(f"variation{n}", Kind.GRID, meaning, f"v{n}", f"V{n}", quadrant=n))
    return out


def _extend_actions() -> list[Action]:
    # Upstream lists no actions on a video, and accepts an extend of any of its four clips. Midjourney's
    # button under each clip is "Extend Auto": about 4 s more with the same prompt.
    return [
        Action(
            f"extend{n}",
            Kind.VIDEOS,
            f"clip {n} about 4 s longer, same prompt, as four new clips",
            f"e{n}",
            "Extend Auto",
            quadrant=n,
            endpoint="videos",
            unlisted_on=(Kind.VIDEOS,),
        )
        for n in range(1, 5)
    ]


CATALOGUE: tuple[Action, ...] = (
    Action(
        "generate",
        Kind.GRID,
        "a new 2x2 grid from a prompt (and image prompts)",
        "",
        "Imagine",
        tool=IMAGINE,
        prompt="required",
    ),
    *_quadrant_actions(),
    Action("reroll", Kind.GRID, "run the same prompt again for a fresh grid", "r", "Re-roll"),
    Action("upscale_2x", Kind.UPSCALED, "upscale the image to 2x resolution", "2x", "Upscale (2x)"),
    Action("upscale_4x", Kind.UPSCALED, "upscale the image to 4x resolution", "4x", "Upscale (4x)"),
    Action("redo_upscale_2x", Kind.UPSCALED, "redo a 2x upscale", "2x", "Redo Upscale (2x)"),
    Action("redo_upscale_4x", Kind.UPSCALED, "redo a 4x upscale", "4x", "Redo Upscale (4x)"),
    Action("upscale_subtle", Kind.UPSCALED, "upscale keeping details close to the original", "ups", "Upscale (Subtle)"),
    Action("upscale_creative", Kind.UPSCALED, "upscale letting details change", "upc", "Upscale (Creative)"),
    Action("variation_subtle", Kind.GRID, "four close variations of the image", "vs", "Vary (Subtle)"),
    Action("variation_strong", Kind.GRID, "four bolder variations of the image", "vx", "Vary (Strong)"),
    Action(
        "variation_region",
        Kind.GRID,
        "repaint a masked region (white = repaint) of a single image",
        "region",
        "Vary (Region)",
        tool=INPAINT_REGION,
        prompt="optional",
        needs_mask=True,
        unlisted_on=(Kind.SINGLE, Kind.UPSCALED),
    ),
    Action("zoom_out_2x", Kind.GRID, "zoom out 2x, filling in the surroundings", "z2", "Zoom Out 2x"),
    Action("zoom_out_1_5x", Kind.GRID, "zoom out 1.5x, filling in the surroundings", "z15", "Zoom Out 1.5x"),
    Action("pan_left", Kind.GRID, "extend the picture to the left", "left", "←"),
    Action("pan_right", Kind.GRID, "extend the picture to the right", "right", "→"),
    Action("pan_up", Kind.GRID, "extend the picture upwards", "up", "↑"),
    Action("pan_down", Kind.GRID, "extend the picture downwards", "down", "↓"),
    # A video from a still: its own tool (it takes a prompt and frames); the row names its results.
    Action(
        "animate",
        Kind.VIDEOS,
        "four short clips starting on the image",
        "vid",
        "Animate",
        tool=ANIMATE,
        prompt="required",
        endpoint="videos",
    ),
    *_extend_actions(),
)

BY_NAME: dict[str, Action] = {a.name: a for a in CATALOGUE}

# Actions sent by apply_action: everything but the ones with a tool of their own.
FOLLOW_UPS: tuple[str, ...] = tuple(a.name for a in CATALOGUE if a.tool == APPLY_ACTION)
FollowUp = Literal[FOLLOW_UPS]  # type: ignore[valid-type]  # the JSON-schema enum of apply_action

# What upstream lists in a finished image's ``actions``, in upstream's order (documented for grid and
# single; the upscaled list is inferred, see module docstring).
ACTIONS_AFTER: dict[Kind, tuple[str, ...]] = {
    Kind.GRID: (
        "upscale1",
        "upscale2",
        "upscale3",
        "upscale4",
        "reroll",
        "variation1",
        "variation2",
        "variation3",
        "variation4",
    ),
    Kind.SINGLE: (
        "upscale_2x",
        "upscale_4x",
        "variation_subtle",
        "variation_strong",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
    ),
    Kind.UPSCALED: (
        "redo_upscale_2x",
        "redo_upscale_4x",
        "variation_subtle",
        "variation_strong",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
    ),
}


def get(name: str) -> Action:
    """The catalogue entry for ``name``; KeyError for an action upstream does not know."""
    return BY_NAME[name]


def kind_of(actions: list[str] | tuple[str, ...]) -> Kind | None:
    """Infer what an image is from the actions upstream offers on it (None while it is unfinished)."""
    offered = set(actions)
    if not offered:
        return None
    if offered & {"upscale1", "upscale2", "upscale3", "upscale4"}:
        return Kind.GRID
    if offered & {"redo_upscale_2x", "redo_upscale_4x", "redo_upscale_subtle", "redo_upscale_creative"}:
        return Kind.UPSCALED
    return Kind.SINGLE


def allowed_on(action: Action, offered: list[str] | tuple[str, ...], kind: Kind | None) -> bool:
    """Whether upstream accepts ``action`` on an image offering ``offered`` actions."""
    return action.name in offered or (kind is not None and kind in action.unlisted_on)


def offered_on(listed: list[str] | tuple[str, ...], kind: Kind | None) -> list[str]:
    """What ``apply_action`` accepts on a record: the actions upstream listed on it, then those it accepts
    unlisted on its kind (a video's extendN)."""
    unlisted = [a.name for a in CATALOGUE if a.tool == APPLY_ACTION and kind in a.unlisted_on and a.name not in listed]
    return [*listed, *unlisted]
