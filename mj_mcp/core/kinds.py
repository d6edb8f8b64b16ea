"""What a job makes: the result kinds a record can hold.

The kind decides when upstream's answer about a task is final (a grid is done when its image is
there, a video when its clips are) and what the record's media are (``records.Record.media``). An
image operation's kind comes from the action catalogue (``actions.Action.makes``); every other
operation's from the operation table (``operations.py``).
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What a finished job holds."""

    # A 2x2 grid of four candidates, quadrants numbered 1-4 from top-left.
    GRID = "grid"
    # One candidate taken out of a grid (upscale1-4).
    SINGLE = "single"
    # A single at higher resolution (upscale_2x/4x and friends).
    UPSCALED = "upscaled"
    # Four short clips (video/mp4) made from a still, with a cover picture.
    VIDEOS = "videos"
    # Texts: describe's four prompts, shorten's candidates, a translation.
    TEXTS = "texts"
    # The seed of a finished image.
    SEED = "seed"
    # An edit (``/edits``): four repaints of one picture, results 1-4, each also an image record of
    # its own (``EDITED``) made when the edit completes.
    EDITS = "edits"
    # One of an edit's four results: a picture upstream knows by its URL only, with no image_id and no
    # follow-up (no upscale, vary, zoom, pan or region repaint); an input anywhere a picture is.
    EDITED = "edited"


# The kinds whose result is one picture: what thumbnails, resources and exports show, and what an
# image prompt, a blend or an edit may take.
IMAGES = frozenset({Kind.GRID, Kind.SINGLE, Kind.UPSCALED, Kind.EDITED})
