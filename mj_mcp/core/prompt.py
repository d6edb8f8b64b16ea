"""Midjourney prompt text: parse it, check its flags, compose it from typed options.

A prompt upstream is one string: leading image URLs (at most 5), then text, then ``--flags``
(docs/upstream.md, "Prompts"). Upstream fails a whole task on an unknown flag or a stray single-dash
token such as ``-c`` (the guide's own failure example), after the request was accepted and possibly
billed, so we check locally first and say what would work.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import quote

MAX_IMAGE_URLS = 5
MAX_URL_CHARS = 2048  # an image prompt's URL: what browsers and CDNs accept
IMAGE_URL = re.compile(rf"^https://\S{{1,{MAX_URL_CHARS - 8}}}$", re.IGNORECASE)  # one token, bounded


@dataclass(frozen=True)
class Flag:
    name: str  # canonical spelling, without the dashes
    aliases: tuple[str, ...] = ()
    takes_value: bool = True
    param: str | None = None  # the imagine() parameter that types it, if any
    hint: str = ""


FLAGS: tuple[Flag, ...] = (
    Flag("ar", ("aspect",), param="aspect_ratio", hint="aspect ratio W:H"),
    Flag("v", ("version",), param="model_version", hint="model version"),
    Flag("s", ("stylize",), param="stylize", hint="stylize 0-1000"),
    Flag("c", ("chaos",), param="chaos", hint="chaos 0-100"),
    Flag("q", ("quality",), param="quality", hint="quality"),
    Flag("seed", (), param="seed", hint="seed"),
    Flag("no", (), param="negative", hint="negative prompt"),
    Flag("style", (), param="raw", hint="style, e.g. raw"),
    Flag("tile", (), takes_value=False, param="tile", hint="tiling"),
    Flag("raw", (), takes_value=False, param="raw", hint="raw style"),
    Flag("iw", (), hint="image weight 0-2"),
    Flag("w", ("weird",), hint="weird"),
    Flag("sref", (), hint="style reference URL"),
    Flag("sw", (), hint="style weight"),
    Flag("sv", (), hint="style version"),
    Flag("cref", (), hint="character reference URL"),
    Flag("cw", (), hint="character weight"),
    Flag("oref", (), hint="omni reference URL"),
    Flag("ow", (), hint="omni weight"),
    Flag("niji", (), takes_value=False, hint="Niji model (optionally a version)"),
    Flag("hd", (), takes_value=False, hint="HD output"),
    Flag("p", ("personalize", "profile"), takes_value=False, hint="personalization"),
    Flag("stop", (), hint="stop at 10-100"),
    Flag("r", ("repeat",), hint="repeat"),
    Flag("exp", (), hint="experimental aesthetics"),
    Flag("draft", (), takes_value=False, hint="draft mode"),
)
# What a video's prompt takes besides its words: Midjourney's video parameters that ``/videos`` has no
# field for (``--loop`` and ``--end`` are its ``loop`` and ``end_image_url``; ``--bs``, fewer clips, it
# does not offer: it always makes four).
VIDEO_FLAGS: tuple[Flag, ...] = (
    Flag("motion", (), hint="motion: low or high"),
    Flag("raw", (), takes_value=False, hint="raw style"),
)
# Speed flags the vendor UI strips: they belong in the request's ``mode`` field.
MODE_FLAGS = ("fast", "relax", "turbo")

Spellings = Mapping[str, Flag]
_BY_SPELLING: Spellings = {s: f for f in FLAGS for s in (f.name, *f.aliases)}
VIDEO_SPELLINGS: Spellings = {s: f for f in VIDEO_FLAGS for s in (f.name, *f.aliases)}
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
# A dash-led token that is not a "--flag": "-c", "-ar", "—iw" (em dash), "–v" (en dash).
_STRAY = re.compile(r"^(?:-(?!-)|[\u2012-\u2015\u2212])[A-Za-z][\w-]*$")


@dataclass
class Parsed:
    urls: list[str] = field(default_factory=list)  # leading image URLs
    text: str = ""  # the words between the URLs and the first flag
    flags: list[tuple[str, str]] = field(default_factory=list)  # (canonical name, value) in order
    unknown: list[str] = field(default_factory=list)  # "--xyz" spellings we do not know
    stray: list[str] = field(default_factory=list)  # single-dash tokens such as "-c"
    mode_flags: list[str] = field(default_factory=list)

    def flag(self, name: str) -> str | None:
        for n, v in self.flags:
            if n == name:
                return v
        return None


def parse(prompt: str, known: Spellings = _BY_SPELLING) -> Parsed:
    """Split a prompt into leading URLs, text and flags (``known``: an image's, else a video's); never raises."""
    tokens = prompt.split()
    out = Parsed()
    i = 0
    while i < len(tokens) and _URL.match(tokens[i]):
        out.urls.append(tokens[i])
        i += 1
    text: list[str] = []
    current: str | None = None  # the flag collecting a value
    value: list[str] = []

    def close() -> None:
        if current is not None:
            out.flags.append((current, " ".join(value)))

    for tok in tokens[i:]:
        if tok.startswith("--") and len(tok) > 2:
            close()
            current, value = None, []
            spelling = tok[2:].lower()
            if spelling in MODE_FLAGS:
                out.mode_flags.append(tok)
            elif spelling in known:
                current = known[spelling].name
            else:
                out.unknown.append(tok)
        elif _STRAY.match(tok):
            close()  # what follows is the stray token's value, not the previous flag's
            current, value = None, []
            out.stray.append(tok)
        elif current is not None:
            value.append(tok)
        elif not out.flags and not out.unknown:
            text.append(tok)
        # a word after an unknown flag is taken as that flag's value
    close()
    out.text = " ".join(text)
    return out


def suggest_flag(token: str, known: Spellings = _BY_SPELLING) -> str:
    """The flag a stray or misspelt token most likely meant, e.g. "-c" -> "--c"."""
    bare = token.lstrip("-\u2012\u2013\u2014\u2015\u2212").lower()
    if len(bare) > 2 * max(map(len, known)):
        return ""  # no flag is that long; difflib would compare it at length for nothing
    if bare in known:
        return "--" + bare
    close = difflib.get_close_matches(bare, list(known), n=1, cutoff=0.6)
    return "--" + close[0] if close else ""


def problems(parsed: Parsed, known: Spellings = _BY_SPELLING) -> list[str]:
    """What upstream would reject in these flags, each with the likely fix; empty when fine."""
    out = []
    for tok in parsed.stray:
        fix = suggest_flag(tok, known)
        out.append(f"stray token {quote(tok)}: flags take two dashes" + (f" (did you mean {fix}?)" if fix else ""))
    for tok in parsed.unknown:
        fix = suggest_flag(tok, known)
        out.append(f"unknown flag {quote(tok)}" + (f" (did you mean {fix}?)" if fix else ""))
    for tok in parsed.mode_flags:
        out.append(f"{tok} is a speed, not a prompt flag: use mode={tok[2:].lower()!r}")
    if len(parsed.urls) > MAX_IMAGE_URLS:
        out.append(f"{len(parsed.urls)} image URLs lead the prompt; at most {MAX_IMAGE_URLS} are allowed")
    return out


def compose(urls: list[str], text: str, flags: list[tuple[str, str]]) -> str:
    """Image URLs first, then text, then flags: the order upstream expects."""
    parts = [*urls]
    if text.strip():
        parts.append(text.strip())
    for name, value in flags:
        parts.append(f"--{name} {value}".rstrip())
    return " ".join(parts)
