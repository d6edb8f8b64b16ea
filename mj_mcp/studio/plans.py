"""What the generating operations share: a checked request (``Plan``), and the local checks that
refuse a wrong call before anything is sent or billed."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from ..core import prompt as prompts
from ..core.kinds import Kind
from ..core.operations import ANIMATE, APPLY_ACTION, GET_TASK, IMAGINE
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


# Upstream runs videos in these modes: there is no relax for video.
VIDEO_MODES = ("fast", "turbo")


async def image_url(call: Call, ref: str) -> tuple[str, str]:
    """(url, source label) of an image given as an input: a stored image's full-size URL, or an https URL."""
    url, record = await source_image(call, ref)
    return url, record.name if record is not None else url


async def source_image(call: Call, ref: str) -> tuple[str, Record | None]:
    """The URL of an image given as an input, and its record when it is one of the workspace's: a
    stored image's full-size URL, or an https URL (no record)."""
    if ref.lower().startswith("https://"):
        # Composed into the prompt: one bounded token, no flags.
        if not prompts.IMAGE_URL.match(ref):
            raise InvalidInput(
                f"{quote(ref)} is not one https URL of at most {prompts.MAX_URL_CHARS} characters",
                next_step="Give the image's URL alone, without spaces, or an image name.",
            )
        return ref, None
    if ref.lower().startswith("http://"):
        raise InvalidInput(f"{quote(ref)} is not https", next_step="Use an https URL or an image name.")
    record = await call.workspace.resolve(ref)
    if record.kind is Kind.VIDEOS:
        raise a_video_is_no_image(record)
    if not record.is_image:
        raise InvalidInput(f"{record.name} is {record.kind}, not an image", next_step="Give an image's name.")
    if not record.media:
        raise InvalidInput(f"{record.name} has no finished image yet", next_step=f'Call {GET_TASK}("{record.name}").')
    return record.media[0].url, record


async def current(call: Call, ref: str) -> Record:
    """The record ``ref`` names, as its follower last saw it."""
    return await call.studio.jobs.current(await call.workspace.resolve(ref))


async def finished(call: Call, ref: str) -> Record:
    """The finished image ``ref`` names, to act on; refused when it is a video, while it runs, or when it failed."""
    record = await current(call, ref)
    if record.kind is Kind.VIDEOS:
        raise a_video_is_no_image(record)
    return ready(record)


def ready(record: Record) -> Record:
    """A record to act on: finished, with what it made (an image, or a video's clips)."""
    if record.status == "running":
        raise InvalidInput(
            f"{record.name} is still generating ({record.progress:.0f}%)",
            next_step=f'Call {GET_TASK}("{record.name}") until it is ready.',
        )
    video = record.kind is Kind.VIDEOS
    if record.status == "failed" or not (record.video_id if video else record.image_id):
        raise InvalidInput(
            f"{record.name} failed and has no {'clips' if video else 'image'} to act on",
            next_step=f"Start again from another image or with {ANIMATE if video else IMAGINE}.",
        )
    return record


def a_video_is_no_image(record: Record) -> InvalidInput:
    """The refusal of a video where an image goes, saying what it was made from and what a video takes."""
    made_from = f" (made from {record.parent})" if record.parent else ""
    return InvalidInput(
        f"{record.name} is a video{made_from}, not an image",
        next_step=f"Give an image's name. A video's clip is made longer with {APPLY_ACTION}(image=\"{record.name}\", "
        f'action="extend1".."extend4").',
    )


def checked_video_mode(mode: str) -> None:
    """Refuse the relax mode for a video (upstream has none), before anything is sent."""
    if mode not in VIDEO_MODES:
        raise InvalidInput(f"video has no {mode} mode", next_step='Use mode="fast" or mode="turbo".')


def failure_of(record: Record) -> UpstreamError:
    """The error a failed record stands for: a task upstream failed, or a request it refused."""
    err = record.error
    code, message = (err.code, err.message) if err else ("api_error", "no message")
    if record.task_id is not None:
        return TaskFailed(message, code=code)
    return classify(code, None)(message, code=code)
