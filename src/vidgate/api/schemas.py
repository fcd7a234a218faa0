"""JSON Schemas of what vidgate answers, for the OpenAPI document (api/contract.py).

The renderers build plain dicts (api/shapes.py, the routes), so there is no model to derive
these from: they are written here once, and the schemathesis test (tests/test_openapi.py)
checks every answer against them, so a renderer and its schema cannot drift apart unseen.
Every key a renderer always writes is `required`.
"""

from __future__ import annotations

from typing import Any

from ..domain import ACTIVE, TERMINAL

Schema = dict[str, Any]
STATUSES = [status.value for status in ACTIVE + TERMINAL]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object whose keys are all present (explicit nulls), but for `optional` ones."""
    return {"type": "object", "properties": properties,
            "required": [name for name in properties if name not in optional]}


def listing(item: Schema, **extra: Schema) -> Schema:
    return obj({"object": {"const": "list"}, "data": {"type": "array", "items": item}, **extra})


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NUMBER = {"type": "number"}
TIME = {"type": "integer", "description": "unix seconds"}
URL = nullable({"type": "string", "description": "a signed gateway URL"})
STATUS = {"type": "string", "enum": STATUSES}
PROGRESS = {"type": "integer", "minimum": 0, "maximum": 100}

# The error bodies of api/errors.py: OpenAI's object, and the envelope of /v1/video/...
ERROR_OBJECT = obj({"message": STRING, "type": STRING, "param": nullable(STRING),
                    "code": STRING})
ERROR = obj({"error": ref("ErrorObject")})
ENVELOPE_ERROR = obj({"code": STRING, "message": STRING, "data": {"type": "null"},
                      "error": ref("ErrorObject")})

TASK_ERROR = nullable(obj({"code": STRING, "message": STRING}))

VIDEO = obj({
    "id": STRING, "object": {"const": "video"}, "model": STRING, "status": STATUS,
    "progress": PROGRESS, "created_at": TIME, "completed_at": nullable(TIME),
    "expires_at": nullable(TIME), "prompt": STRING, "size": STRING, "seconds": STRING,
    "quality": STRING, "remixed_from_video_id": nullable(STRING), "error": ref("TaskError"),
    "url": URL, "video_url": URL, "thumbnail_url": URL,
})
VIDEO_LIST = listing(ref("Video"), first_id=nullable(STRING), last_id=nullable(STRING),
                     has_more=BOOLEAN)
VIDEO_DELETED = obj({"id": STRING, "object": {"const": "video.deleted"},
                     "deleted": {"const": True}})
GENERATION = obj({
    "id": STRING, "task_id": STRING, "object": {"const": "video.generation"}, "model": STRING,
    "status": STATUS, "progress": PROGRESS, "created_at": TIME,
    "completed_at": nullable(TIME), "expires_at": nullable(TIME), "size": STRING,
    "error": ref("TaskError"), "duration": NUMBER, "status_update_time": TIME,
    "url": URL, "video_url": URL, "thumbnail_url": URL,
})
UNIFIED_CREATED_FIELDS = {"id": STRING, "task_id": STRING, "model": STRING, "status": STATUS,
                          "status_update_time": TIME, "created_at": TIME}
UNIFIED_CREATED = obj(UNIFIED_CREATED_FIELDS)
UNIFIED_QUERY = obj({
    **UNIFIED_CREATED_FIELDS, "progress": PROGRESS, "completed_at": nullable(TIME),
    "video_url": URL, "url": URL, "thumbnail_url": URL, "expires_at": nullable(TIME),
    "width": INTEGER, "height": INTEGER, "duration": NUMBER, "error": ref("TaskError"),
})
CHARACTER = obj({"id": STRING, "name": STRING, "created_at": TIME})
MODEL = obj({"id": STRING, "object": {"const": "model"}, "created": INTEGER,
             "owned_by": STRING, "sizes": {"type": "array", "items": STRING},
             "seconds": {"type": "array", "items": INTEGER}, "default_seconds": INTEGER})
LIMITS = {"unlimited": BOOLEAN, "balance_micro": nullable(INTEGER),
          "rpm_limit": nullable(INTEGER), "max_concurrent": nullable(INTEGER),
          "allowed_models": nullable({"type": "array", "items": STRING}),
          "webhook_url": nullable(STRING)}
ACCOUNT = obj({"object": {"const": "account"}, "key_id": STRING, "name": STRING, **LIMITS,
               "balance_usd": nullable(NUMBER)})
USAGE = obj({"key_id": STRING, "model": STRING, "day": {"type": "string", "format": "date"},
             "tasks_completed": INTEGER, "tasks_failed": INTEGER,
             "seconds_delivered": NUMBER, "cost_micro": INTEGER})
API_KEY_FIELDS = {"id": STRING, "object": {"const": "api_key"}, "name": STRING,
                  "prefix": STRING, "created_at": TIME, "revoked_at": nullable(TIME), **LIMITS,
                  "webhook_secret": nullable(STRING)}
API_KEY = obj(API_KEY_FIELDS)
API_KEY_CREATED = obj({**API_KEY_FIELDS, "key": {"type": "string", "description":
                                                 "the key itself, shown only here"}})
TOP_UP = obj({"key_id": STRING, "balance_micro": INTEGER})
LEDGER_ENTRY = obj({"id": INTEGER, "key_id": STRING, "task_id": nullable(STRING),
                    "kind": STRING, "amount_micro": INTEGER, "created_at": TIME,
                    "note": nullable(STRING)})
CHANNEL = obj({
    "name": STRING, "object": {"const": "channel"}, "kind": STRING,
    "models": {"type": "array", "items": STRING}, "priority": INTEGER, "weight": NUMBER,
    "max_in_flight": nullable(INTEGER), "in_flight": INTEGER,
    "breaker": obj({"state": {"enum": ["closed", "open", "half_open"]}, "failures": INTEGER,
                    "open_until": nullable(NUMBER)}),
})
RECENT_TASK = obj({
    "id": STRING, "key_id": STRING, "family": STRING, "model": STRING, "status": STATUS,
    "progress": PROGRESS, "channel": nullable(STRING), "error": ref("TaskError"),
    "created_at": TIME, "status_updated_at": TIME, "completed_at": nullable(TIME),
})

COMPONENTS: dict[str, Schema] = {
    "ErrorObject": ERROR_OBJECT, "Error": ERROR, "EnvelopeError": ENVELOPE_ERROR,
    "TaskError": TASK_ERROR, "Video": VIDEO, "VideoList": VIDEO_LIST,
    "VideoDeleted": VIDEO_DELETED, "Generation": GENERATION,
    "UnifiedCreated": UNIFIED_CREATED, "UnifiedQuery": UNIFIED_QUERY,
    "Character": CHARACTER, "Model": MODEL, "ModelList": listing(ref("Model")),
    "Account": ACCOUNT, "UsageList": listing(ref("Usage")), "Usage": USAGE,
    "ApiKey": API_KEY, "ApiKeyCreated": API_KEY_CREATED, "ApiKeyList": listing(ref("ApiKey")),
    "TopUp": TOP_UP, "LedgerEntry": LEDGER_ENTRY, "Ledger": listing(ref("LedgerEntry")),
    "Channel": CHANNEL, "ChannelList": listing(ref("Channel")),
    "RecentTask": RECENT_TASK, "RecentTaskList": listing(ref("RecentTask")),
}
