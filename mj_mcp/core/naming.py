"""Readable names for results: ``lamborghini-volcano``, then ``.u2``, ``.v3``, ``.z2``... for what was done.

The model says ``lamborghini-volcano.v2.u4`` instead of a 19-digit image_id and a 500-character URL. Pure
functions: the store takes the first free one of a base's ``candidates`` in one atomic step
(``store.base.Store.add``), so calls at once never get the same name. Names are ASCII (the alphabet of
``NAME_RE``; a slug keeps only a-z and 0-9), which the Redis store's script relies on: it counts bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from ..errors import InvalidInput, quote
from . import actions
from .prompt import parse

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 64
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "with",
        "without",
        "and",
        "or",
        "but",
        "by",
        "into",
        "onto",
        "over",
        "under",
        "is",
        "are",
        "was",
        "be",
        "this",
        "that",
        "these",
        "those",
        "its",
        "it",
        "as",
        "very",
        "some",
        "any",
        "style",
        "photo",
        "image",
        "picture",
        "of",
        "detailed",
        "highly",
    ]
)


def slug(prompt: str | None, fallback: str = "image") -> str:
    """Two longest content words of the prompt's text, in order: "Lamborghini speeds inside a
    volcano" -> "lamborghini-volcano". Long words tell an image apart better than short ones; on a
    tie the later word wins, since English puts the noun after its adjective ("red fox" -> fox)."""
    text = parse(prompt or "").text
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1]
    if not words:
        return fallback
    top = sorted(range(len(words)), key=lambda i: (-len(words[i]), -i))[:2]
    return "-".join(words[i][:16] for i in sorted(top))


def checked(requested: str) -> str:
    """A caller's own name, if it is one we accept."""
    if not NAME_RE.match(requested):
        raise InvalidInput(
            f"name {quote(requested)} is not allowed",
            next_step="Use 1-64 of a-z 0-9 . _ - starting with a letter or digit.",
        )
    return requested


def derived(
    *,
    parent: str | None,
    action: str = "generate",
    prompt: str | None = None,
    fallback: str = "image",
    suffix: str | None = None,
) -> str:
    """The base name of a result: the prompt's slug, or the parent's name with the action's suffix, or
    ``suffix`` for a step that is no action of the catalogue (``fox-snow.prompts``, ``fox-snow.short``,
    an edit's results) (the root and the newest steps of a deep lineage, within ``MAX_NAME``)."""
    if parent is None:
        base = slug(prompt, fallback)
        return (f"{base}.{suffix}" if suffix else base)[:MAX_NAME]
    segments = [*parent.split("."), suffix if suffix is not None else actions.get(action).suffix]
    while len(".".join(segments)) > MAX_NAME - 3 and len(segments) > 2:
        del segments[1]
    return ".".join(segments)[:MAX_NAME]


def candidates(base: str) -> Iterator[str]:
    """``base``, then ``base-2``, ``base-3``, ... each within ``MAX_NAME``."""
    base = base[:MAX_NAME]
    yield base
    n = 2
    while True:
        suffix = f"-{n}"
        yield base[: MAX_NAME - len(suffix)] + suffix
        n += 1


def first_free(base: str, taken: Callable[[str], bool]) -> str:
    """The first of ``candidates(base)`` that ``taken`` says is not taken (a store calls this inside the
    one transaction that then inserts it)."""
    return next(name for name in candidates(base) if not taken(name))
