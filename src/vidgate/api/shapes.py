"""How each family renders a task: the JSON objects of spec section 5 and OpenAI's video.

Only shapes live here; which family uses which shape, on which path, is `api/families.py`.
"""

from __future__ import annotations

from typing import Any

from ..domain import Task
from ..signing import AssetLinks

POLL_AFTER_MS = "1000"


def task_error(task: Task) -> dict[str, str] | None:
    """The `error` field of every family: null, or the failure reason and its message."""
    if not task.error_code:
        return None
    return {"code": task.error_code, "message": task.error_message or ""}


def video(task: Task, links: AssetLinks) -> dict[str, Any]:
    """Family A's `video` object, as the official `openai` SDK reads it."""
    return {
        "id": task.id,
        "object": "video",
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "expires_at": links.expires_at,
        "prompt": task.prompt,
        "size": task.size,
        "seconds": str(task.seconds_out),
        "quality": "standard",
        "remixed_from_video_id": task.remixed_from,
        "error": task_error(task),
        "url": links.video,
        "video_url": links.video,
        "thumbnail_url": links.thumbnail,
    }


def poll_headers(task: Task) -> dict[str, str]:
    """OpenAI's hint of when to look again, on a task that is still running."""
    return {} if task.finished else {"openai-poll-after-ms": POLL_AFTER_MS}


def generation(task: Task, links: AssetLinks) -> dict[str, Any]:
    """Family B's task object (spec section 5); every key present, nulls explicit."""
    return {
        "id": task.id,
        "task_id": task.id,
        "object": "video.generation",
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "expires_at": links.expires_at,
        "size": task.size,
        "error": task_error(task),
        "duration": task.seconds_out,
        "status_update_time": task.status_updated_at,
        "url": links.video,
        "video_url": links.video,
        "thumbnail_url": links.thumbnail,
    }


def unified_created(task: Task, _links: AssetLinks | None = None) -> dict[str, Any]:
    """Family C's compact create answer (no links: nothing is ready yet)."""
    return {
        "id": task.id,
        "task_id": task.id,
        "model": task.model,
        "status": task.status,
        "status_update_time": task.status_updated_at,
        "created_at": task.created_at,
    }


def unified_query(task: Task, links: AssetLinks) -> dict[str, Any]:
    """Family C's query answer: the create shape plus progress and results."""
    return {
        **unified_created(task),
        "progress": task.progress,
        "completed_at": task.completed_at,
        "video_url": links.video,
        "url": links.video,
        "thumbnail_url": links.thumbnail,
        "expires_at": links.expires_at,
        "width": task.width,
        "height": task.height,
        "duration": task.seconds_out,
        "error": task_error(task),
    }
