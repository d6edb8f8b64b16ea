"""Fault specs: parse them from a header, a prompt token, a queued injection
or the global config, and sort them into what happens when.

A spec is ``name[;key=value...]``; several specs are separated by commas, e.g.
``x-fake-fault: slow;delay=0.5, task_fail;at_progress=35``. In a prompt: ``[[fault:429;retry_after=2]]``.
``reset`` drops the connection before the task exists; ``reset;after_submit=1`` drops it just after
the task was created, the case where a client cannot know whether it was billed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# Answered instead of the endpoint, before auth (so a 401 fault needs no valid token to be seen).
REPLACING = frozenset(
    {
        "401",
        "403_moderation",
        "403_used_up",
        "400_bad_request",
        "400_token_mismatched",
        "400_not_implemented",
        "429",
        "500",
        "502_html",
        "503_html",
        "504",
        "hang",
        "reset",
        "empty_body",
        "bad_json",
        "error_string",
    }
)
# Shape the reply of an accepted request.
SHAPING = frozenset(
    {"slow", "stream_cut", "stream_malformed", "stream_error_line", "task_fail", "duplicate_task_id", "not_found_task"}
)
KNOWN = REPLACING | SHAPING | {"flaky"}

PROMPT_TOKEN = re.compile(r"\[\[fault:([^\]]*)\]\]", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "on"}


class FaultSpecError(ValueError):
    """A spec names a fault the simulator does not know: a typo in a test, reported loudly."""


@dataclass(frozen=True)
class Fault:
    name: str
    params: dict[str, str] = field(default_factory=dict)

    def num(self, key: str, default: float) -> float:
        try:
            return float(self.params[key])
        except (KeyError, ValueError):
            return default

    def int(self, key: str, default: int) -> int:
        return int(self.num(key, default))

    def flag(self, key: str, default: bool = False) -> bool:
        return self.params[key].strip().lower() in _TRUE if key in self.params else default

    def text(self, key: str, default: str) -> str:
        return self.params.get(key, default)


def parse(spec: str) -> list[Fault]:
    """``"429;retry_after=2, slow;delay=1"`` -> two faults. Raises FaultSpecError on unknown names."""
    out = []
    for part in spec.split(","):
        bits = [b.strip() for b in part.split(";") if b.strip()]
        if not bits:
            continue
        name, params = bits[0].lower(), {}
        if "=" in name:  # "flaky=0.3" is the long-standing spelling of flaky;p=0.3
            name, _, p = name.partition("=")
            params["p"] = p
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip().lower()] = v.strip()
        if name not in KNOWN:
            raise FaultSpecError(f"unknown fault {name!r}; known: {', '.join(sorted(KNOWN))}")
        out.append(Fault(name, params))
    return out


def strip_prompt(prompt: str) -> tuple[str, list[Fault]]:
    """The prompt without its ``[[fault:...]]`` tokens, and the faults they asked for."""
    faults: list[Fault] = []
    for m in PROMPT_TOKEN.finditer(prompt):
        faults.extend(parse(m.group(1)))
    cleaned = " ".join(PROMPT_TOKEN.sub(" ", prompt).split()) if faults else prompt
    return cleaned, faults


def resolve_flaky(faults: list[Fault], rng: random.Random) -> list[Fault]:
    """Replace each ``flaky`` by its ``fault2`` (default 500) with probability ``p`` (default 0.5)."""
    out = []
    for f in faults:
        if f.name != "flaky":
            out.append(f)
        elif rng.random() < f.num("p", 0.5):
            inner = f.text("fault2", "500")
            rest = {k: v for k, v in f.params.items() if k not in {"p", "fault2"}}
            out.extend(Fault(g.name, {**rest, **g.params}) for g in parse(inner))
    return out


def first(faults: list[Fault], name: str) -> Fault | None:
    return next((f for f in faults if f.name == name), None)
