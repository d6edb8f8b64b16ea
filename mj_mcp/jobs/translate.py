"""Upstream's replies in the record's terms: what the jobs hear of a task (or read from an answer given
at once), and what a task started elsewhere makes. The one place the jobs read upstream's wire models
into records (``records.py`` imports nothing of upstream)."""

from __future__ import annotations

from pydantic import BaseModel

from ..core.kinds import Kind
from ..records import RESULT_NUMBERS, ErrorInfo, Heard, Outcome
from ..upstream import TaskUpdate, UpstreamTask
from ..upstream.models import DescribeReply, SeedReply, ShortenReply, TranslateReply

# What upstream's task types make, besides images (docs/upstream.md, "/midjourney/tasks").
KIND_OF_TASK_TYPE = {"videos": Kind.VIDEOS, "describe": Kind.TEXTS, "edits": Kind.EDITS}


def heard_of(update: TaskUpdate) -> Heard:
    """One reply of upstream (a stream line, a task's response, a callback) as the follower hears it."""
    error = None
    if update.failed:
        exc = update.failure()
        error = ErrorInfo(code=exc.code, message=exc.message)
    outcome = Outcome(
        image_id=update.image_id,
        image_url=update.image_url,
        raw_image_url=update.raw_image_url or update.image_url,
        width=update.image_width,
        height=update.image_height,
        raw_width=update.raw_image_width or update.image_width,
        raw_height=update.raw_image_height or update.image_height,
        actions=list(update.actions),
        video_id=update.video_id,
        videos=list(update.video_urls),
        prompts=list(update.descriptions),
        # An edit's four results; more in a reply are not kept.
        sub_images=list(update.sub_image_urls)[: len(RESULT_NUMBERS)],
    )
    # A describe task's answer comes whole, with no progress figure (docs/upstream.md, "/describe").
    answered_whole = update.success is True and update.progress is None and bool(update.descriptions)
    return Heard(
        task_id=update.task_id,
        progress=update.progress,
        error=error,
        succeeded=update.succeeded_fully or answered_whole,
        preview_url=update.image_url,
        outcome=outcome,
    )


def heard_of_answer(reply: BaseModel) -> Heard:
    """The answer of an endpoint that answers at once, as the outcome of its job."""
    outcome = Outcome()
    task_id = None
    if isinstance(reply, DescribeReply):
        outcome, task_id = Outcome(prompts=list(reply.descriptions)), reply.task_id
    elif isinstance(reply, ShortenReply):
        outcome = Outcome(prompts=list(reply.prompts))
    elif isinstance(reply, TranslateReply):
        outcome = Outcome(prompts=[reply.content])
    elif isinstance(reply, SeedReply):
        outcome = Outcome(seed=reply.seed)
    else:
        raise TypeError(f"no outcome is read from a {type(reply).__name__}: add it here")
    return Heard(task_id=task_id, progress=100.0, succeeded=True, outcome=outcome)


def kind_of_task(task: UpstreamTask) -> Kind | None:
    """What a task started elsewhere makes: known from its type, or, for an image, once it ends."""
    return KIND_OF_TASK_TYPE.get(task.type or "")
