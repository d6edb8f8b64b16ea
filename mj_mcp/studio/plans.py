"""What the generating operations share: a checked request (``Plan``), and the local checks that
refuse a wrong call before anything is sent or billed: a prompt's flags, a picture given as an input
(``source``: an https URL, or a finished image by name), an image to act on (``finished``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from ..core import prompt as prompts
from ..core.kinds import Kind
from ..core.operations import ANIMATE, APPLY_ACTION, EDIT_IMAGE, GET_TASK, IMAGINE, INPAINT_REGION, LIST_IMAGES
from ..errors import ActionNotAllowed, InvalidInput, TaskFailed, UpstreamError, quote
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


# Upstream runs videos in these modes: there is no relax for video.
VIDEO_MODES = ("fast", "turbo")


@dataclass(frozen=True)
class Source:
    """A picture given as an input: the URL upstream fetches, how the new record names it (the image's
    name, or the URL), and the image's record (None for an https URL)."""

    url: str
    label: str
    record: Record | None = None


async def source(call: Call, ref: str) -> Source:
    """A picture given as an input (an image prompt, a blend's, an edit's, a describe's, a video's start or
    end): an https URL, or a finished image by name (its full-size URL); refused while it runs, when it
    failed, or when it is no picture (texts, a video, an edit of four)."""
    if ref.lower().startswith("https://"):
        # Composed into the prompt: one bounded token, no flags.
        if not prompts.IMAGE_URL.match(ref):
            raise InvalidInput(
                f"{quote(ref)} is not one https URL of at most {prompts.MAX_URL_CHARS} characters",
                next_step="Give the image's URL alone, without spaces, or an image name.",
            )
        return Source(ref, ref)
    if ref.lower().startswith("http://"):
        raise InvalidInput(f"{quote(ref)} is not https", next_step="Use an https URL or an image name.")
    record = await current(call, ref)
    if record.kind is Kind.EDITS:
        raise await not_one_picture(call, record)
    if record.kind is Kind.VIDEOS:
        raise a_video_is_no_image(record)
    if not record.is_image:
        raise InvalidInput(f"{record.name} is {record.kind}, not an image", next_step="Give an image's name.")
    _refuse_unfinished(record)
    return Source(record.media[0].url, record.name, record)


async def image_url(call: Call, ref: str) -> tuple[str, str]:
    """(url, source label) of an image given as an input (``source``)."""
    given = await source(call, ref)
    return given.url, given.label


async def current(call: Call, ref: str) -> Record:
    """The record ``ref`` names, as its follower last saw it."""
    return await call.studio.jobs.current(await call.workspace.resolve(ref))


async def actionable(call: Call, ref: str) -> Record:
    """The finished image or video ``ref`` names, to act on with one of upstream's actions; refused while
    it runs, when it failed, and when upstream offers no action on it (an edit, or one of its results)."""
    return await _offered_actions(call, await current(call, ref))


async def finished(call: Call, ref: str) -> Record:
    """The finished image ``ref`` names, to act on (``actionable``); a video is refused too."""
    record = await current(call, ref)
    if record.kind is Kind.VIDEOS:
        raise a_video_is_no_image(record)
    return await _offered_actions(call, record)


async def _offered_actions(call: Call, record: Record) -> Record:
    """``record``, ready to act on, unless upstream offers it no action: an edit, or one of its results."""
    if record.kind is Kind.EDITS:
        raise await not_one_picture(call, record)
    if record.kind is Kind.EDITED:
        raise ActionNotAllowed(
            f"upstream offers no action on {record.name}, an edit's result (no upscale, vary, zoom, pan or "
            f"{INPAINT_REGION})",
            next_step=f'Repaint it with {EDIT_IMAGE}(image="{record.name}", prompt=..., region=... to keep the '
            f"rest), or use it as an image prompt in {IMAGINE}.",
        )
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


def _refuse_unfinished(record: Record) -> None:
    if record.status == "running":
        raise InvalidInput(
            f"{record.name} is still generating ({record.progress:.0f}%)",
            next_step=f'Call {GET_TASK}("{record.name}") until it is ready.',
        )
    if record.status == "failed" or not record.media:
        raise InvalidInput(
            f"{record.name} failed and has no image to act on",
            next_step=f"Start again from another image or with {IMAGINE}.",
        )


async def not_one_picture(call: Call, record: Record) -> InvalidInput:
    """The refusal of an edit where one picture is wanted: it holds four, each an image of its own."""
    names = [r.name for r in await call.workspace.results(record)]
    use = ", ".join(names) if names else f"its results ({LIST_IMAGES} shows those kept)"
    return InvalidInput(
        f"{record.name} is an edit: {len(record.media)} pictures, each an image of its own",
        next_step=f"Give one of them instead: {use}.",
    )


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
