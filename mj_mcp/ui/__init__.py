"""The MCP App's view (extension ``io.modelcontextprotocol/ui``): one ``ui://`` page that shows a
result large, with Midjourney's buttons under it, a region painter for Vary (Region), and a gallery.

The view's source is ``app/`` (TypeScript on the official ext-apps App SDK); its build is
``view.html`` here, one self-contained file committed with the package, so installing needs no Node.
It is served with the catalogue written into its ``mj-catalogue`` slot: the set and the labels of the
buttons come from ``core/actions.py``, the tools it calls and their roles from ``core/operations.py``,
and nowhere else. ``server/view.py`` registers it;
``app/README.md`` is the contract between the view and the tools.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from ..core.actions import CATALOGUE
from ..core.operations import OPERATIONS, TOOLS, Effect

VIEW_URI = "ui://mj-mcp/view.html"
CATALOGUE_SLOT = '<script id="mj-catalogue" type="application/json">{}</script>'
UI_META = {"ui": {"resourceUri": VIEW_URI}}  # the `_meta` of a tool whose results the view shows


def catalogue() -> dict[str, object]:
    """What the view needs: of each action, its button label, meaning, tool, result kind, quadrant,
    the kinds it is accepted on unlisted, whether it needs a mask; of each operation, its tool, its
    label and what it makes; of each tool, its title, whether it starts a paid job and whether it acts
    on an earlier image."""
    return {
        "actions": {
            a.name: {
                "label": a.label,
                "meaning": a.meaning,
                "tool": a.tool,
                "makes": a.makes.value,
                "quadrant": a.quadrant,
                "unlisted_on": [k.value for k in a.unlisted_on],
                "needs_mask": a.needs_mask,
            }
            for a in CATALOGUE
        },
        "operations": {
            o.name: {"tool": o.tool, "label": o.label, "makes": o.makes.value if o.makes else None} for o in OPERATIONS
        },
        "tools": {
            t.name: {"title": t.title, "generates": t.effect is Effect.GENERATES, "from_image": t.from_image}
            for t in TOOLS
        },
    }


@cache
def view_html() -> str:
    """The view's HTML with the catalogue in its slot (read once per process)."""
    return with_catalogue(resources.files(__package__).joinpath("view.html").read_text(encoding="utf-8"))


def with_catalogue(html: str) -> str:
    """A built view (``view.html`` or another build of ``app/``) as it is served: the catalogue in its slot."""
    if html.count(CATALOGUE_SLOT) != 1:
        raise RuntimeError("mj_mcp/ui/view.html has no catalogue slot: rebuild it (cd app && npm run build)")
    # "<" escaped so no text of the catalogue can close the script element.
    data = json.dumps(catalogue(), ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return html.replace(CATALOGUE_SLOT, CATALOGUE_SLOT.replace("{}", data))
