"""Upstream's replies in the record's terms: what the jobs hear of a task, and what a task started
elsewhere makes. The one place the jobs read upstream's wire models into records (``records.py``
imports nothing of upstream)."""

from __future__ import annotations

from ..core.kinds import Kind
from ..records import ErrorInfo, Heard, Outcome
from ..upstream import TaskUpdate, UpstreamTask

# What upstream's task types make, besides images (docs/upstream.md, "/midjourney/tasks").
KIND_OF_TASK_TYPE = {"videos": Kind.VIDEOS, "describe": Kind.TEXTS}


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
    )
    return Heard(
        task_id=update.task_id,
        progress=update.progress,
        error=error,
        succeeded=update.succeeded_fully,
        preview_url=update.image_url,
        outcome=outcome,
    )


def kind_of_task(task: UpstreamTask) -> Kind | None:
    """What a task started elsewhere makes: known from its type, or, for an image, once it ends."""
    return KIND_OF_TASK_TYPE.get(task.type or "")
