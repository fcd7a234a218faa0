"""Reading upstream answers: status words, progress, result URLs, error shapes, and which
HTTP answers refuse a submit, fail a job, or only delay a poll (spec/upstreams.md)."""

from __future__ import annotations

import email.utils
import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from ...domain import COMPLETED, FAILED, IN_PROGRESS, MODERATION_BLOCKED, QUEUED, UPSTREAM_ERROR
from ..base import UNKNOWN, PollResult, SubmitRefused, TransientError, UpstreamFailed

if TYPE_CHECKING:
    from .client import UpstreamResponse

# spec/upstreams.md, "Status mapping (all kinds)"; anything missing maps to UNKNOWN.
STATUS_MAP = {
    **dict.fromkeys(("not_start", "submitted", "queued", "pending"), QUEUED),
    **dict.fromkeys(("in_progress", "processing", "running"), IN_PROGRESS),
    **dict.fromkeys(("completed", "succeeded", "success"), COMPLETED),
    **dict.fromkeys(("failed", "failure", "error", "cancelled", "canceled", "expired"), FAILED),
}

# Where servers put the video's URL, most specific first (spec/upstreams.md).
RESULT_URL_PATHS = (
    ("url",), ("video_url",), ("video", "url"), ("metadata", "url"), ("result_url",),
    ("data", "url"), ("data", "metadata", "url"), ("data", "video_url"),
    ("data", "result_url"),
)
THUMBNAIL_URL_PATHS = (("thumbnail_url",), ("data", "thumbnail_url"))

_MODERATION = re.compile(r"moderat|content[ _-]?polic|safety|nsfw|sensitive", re.IGNORECASE)
_URLS = re.compile(r"https?://\S+")
MAX_MESSAGE = 300


def map_status(value: Any) -> str:
    if not isinstance(value, str):
        return UNKNOWN
    return STATUS_MAP.get(value.strip().lower().replace(" ", "_"), UNKNOWN)


def parse_progress(value: Any) -> int | None:
    """Progress as servers send it: 30, 30.5, "30", "30%"; anything else is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("%").strip())
        except ValueError:
            return None
    else:
        return None
    if number != number:  # NaN
        return None
    return max(0, min(100, int(number)))


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def find_url(obj: Any, paths: tuple[tuple[str, ...], ...] = RESULT_URL_PATHS) -> str | None:
    for path in paths:
        value = dig(obj, path)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def retry_after(response: UpstreamResponse) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date); None when absent or silly."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, 3600.0))


def json_body(response: UpstreamResponse) -> Any:
    """The parsed body, or None when it is not JSON (garbage must not crash a poll)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def clean_message(text: Any, fallback: str) -> str:
    """An upstream's message, fit to show a client: no upstream URLs, bounded length."""
    if not isinstance(text, str) or not text.strip():
        return fallback
    text = _URLS.sub("[url]", text.strip())
    return text[:MAX_MESSAGE]


def error_fields(body: Any) -> tuple[str, str]:
    """(code, message) from the error shapes seen in the wild, as plain strings."""
    if not isinstance(body, dict):
        return "", ""
    err = body.get("error")
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    if isinstance(err, dict):
        return str(err.get("code") or err.get("type") or ""), str(err.get("message") or "")
    code = body.get("code") or data.get("code") or ""
    message = (body.get("fail_reason") or data.get("fail_reason") or body.get("message")
               or (err if isinstance(err, str) else "") or data.get("message") or "")
    return str(code), str(message)


def failure_code(code: str, message: str) -> str:
    return MODERATION_BLOCKED if _MODERATION.search(f"{code} {message}") else UPSTREAM_ERROR


def check_submit(response: UpstreamResponse) -> Any:
    """The JSON body of an accepted submit, or the right error for a refusal.

    5xx, 429 and 408 are refusals, and so are 401/403/404/405 (a bad key or base URL is the
    channel's fault, not the request's): another channel may take the job. Other 4xx mean
    the upstream judged this request and said no, so the task fails.
    """
    status = response.status_code
    body = json_body(response)
    if 200 <= status < 300:
        if not isinstance(body, dict):
            # Accepted or not, we cannot know the id: treat as refused and try again.
            raise SubmitRefused(f"submit answered {status} without a JSON object")
        return body
    code, message = error_fields(body)
    if status in (400, 403, 413, 415, 422) and (
        status != 403 or _MODERATION.search(f"{code} {message}")
    ):
        raise UpstreamFailed(
            clean_message(message, f"The upstream rejected the request (HTTP {status})."),
            code=failure_code(code, message),
        )
    raise SubmitRefused(f"submit refused with HTTP {status}", retry_after=retry_after(response))


def check_poll(response: UpstreamResponse) -> Any:
    """The JSON body of a status answer; errors here are never the job's failure."""
    status = response.status_code
    if status != 200:
        raise TransientError(f"poll answered HTTP {status}", retry_after=retry_after(response))
    return json_body(response)


def check_cancel(response: UpstreamResponse) -> None:
    """A cancel's answer: a 5xx, 429 or 408 is worth another try (TransientError); any other
    answer, a refusal included (the job already ended, or cannot be stopped), is final."""
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise TransientError(f"cancel answered HTTP {status}", retry_after=retry_after(response))


def upstream_id(body: Any, *keys: str) -> str:
    """The job id from a submit answer (flat or in a `data` envelope), as a string."""
    for source in (body, body.get("data") if isinstance(body, dict) else None):
        if not isinstance(source, dict):
            continue
        for key in keys:
            value = source.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                text = str(value)
                if len(text) <= 255:
                    return text
    raise SubmitRefused("the submit answer carries no job id")


def read_status(body: Any) -> PollResult:
    """A PollResult from a status object, flat or wrapped as {"code","message","data"}.

    Anything we cannot read is UNKNOWN, which the engine treats as "poll again later".
    """
    if not isinstance(body, dict):
        return PollResult(UNKNOWN)
    obj = body
    if "status" not in body and isinstance(body.get("data"), dict):
        obj = body["data"]
    state = map_status(obj.get("status"))
    progress = parse_progress(obj.get("progress"))
    if state == FAILED:
        code, message = error_fields(obj)
        return PollResult(
            FAILED, progress, error_code=failure_code(code, message),
            error_message=clean_message(message, "The upstream failed the job."),
        )
    if state == COMPLETED:
        return PollResult(COMPLETED, 100, result_url=find_url(obj),
                          thumbnail_url=find_url(obj, THUMBNAIL_URL_PATHS))
    return PollResult(state, progress)
