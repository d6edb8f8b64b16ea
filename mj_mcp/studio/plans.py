"""What the generating operations share: a checked request (``Plan``), and the local checks that
refuse a wrong call before anything is sent or billed."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from ..core import prompt as prompts
from ..core.operations import GET_TASK, IMAGINE
from ..errors import InvalidInput, TaskFailed, UpstreamError, quote
from ..records import Record
from ..upstream import Endpoint
from ..upstream.requests import Body
from ..upstream.wire import classify
from .calls import MAX_PROMPT, Call


@dataclass
class Plan:
    """A checked request: the record it will make (named, not stored yet, its kind known), its endpoint
    and body: one upstream runs as a task (followed to its end), or one that answers at once."""

    record: Record
    endpoint: Endpoint[Body, BaseModel]
    body: Body
    requested_name: bool = False
    # What the job makes, in a few words, when its kind says too little ("four 5-second 720p videos"):
    # the question the spend guard asks before paying for it (``consent.py``).
    summary: str | None = None


def checked_prompt(text: str) -> prompts.Parsed:
    """A prompt parsed, or refused: too long, unknown flags, a stray ``-c`` (with the likely flag)."""
    if len(text) > MAX_PROMPT:
        raise InvalidInput(f"prompt is {len(text):,} characters; at most {MAX_PROMPT}")
    parsed = prompts.parse(text)
    problems = prompts.problems(parsed)
    if problems:
        raise InvalidInput(
            "prompt refused before sending: " + "; ".join(problems) + ".", next_step="Fix the flags and call again."
        )
    return parsed


async def image_url(call: Call, ref: str) -> tuple[str, str]:
    """(url, source label) of an image given as an input: a stored image's full-size URL, or an https URL."""
    if ref.lower().startswith("https://"):
        # Composed into the prompt: one bounded token, no flags.
        if not prompts.IMAGE_URL.match(ref):
            raise InvalidInput(
                f"{quote(ref)} is not one https URL of at most {prompts.MAX_URL_CHARS} characters",
                next_step="Give the image's URL alone, without spaces, or an image name.",
            )
        return ref, ref
    if ref.lower().startswith("http://"):
        raise InvalidInput(f"{quote(ref)} is not https", next_step="Use an https URL or an image name.")
    record = await call.workspace.resolve(ref)
    if not record.is_image:
        raise InvalidInput(f"{record.name} is {record.kind}, not an image", next_step="Give an image's name.")
    if not record.media:
        raise InvalidInput(f"{record.name} has no finished image yet", next_step=f'Call {GET_TASK}("{record.name}").')
    return record.media[0].url, record.name


async def finished(call: Call, ref: str) -> Record:
    """The finished image ``ref`` names, to act on; refused while it runs, or when it failed."""
    record = await call.studio.jobs.current(await call.workspace.resolve(ref))
    if record.status == "running":
        raise InvalidInput(
            f"{record.name} is still generating ({record.progress:.0f}%)",
            next_step=f'Call {GET_TASK}("{record.name}") until it is ready.',
        )
    if record.status == "failed" or not record.image_id:
        raise InvalidInput(
            f"{record.name} failed and has no image to act on",
            next_step=f"Start again from another image or with {IMAGINE}.",
        )
    return record


def failure_of(record: Record) -> UpstreamError:
    """The error a failed record stands for: a task upstream failed, or a request it refused."""
    err = record.error
    code, message = (err.code, err.message) if err else ("api_error", "no message")
    if record.task_id is not None:
        return TaskFailed(message, code=code)
    return classify(code, None)(message, code=code)
