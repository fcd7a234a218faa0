"""Random requests for every route of the OpenAPI document (tests/test_fuzz_routes.py).

Each case is one operation of `gateway.api.openapi()` (so a new route is fuzzed without
anyone listing it) with random path parameters, query strings, credentials and a body that
is random JSON, a multipart form (fields and files), a url-encoded form or raw bytes under a
random Content-Type. Values lean towards what breaks edges: integers past 64 bits, NUL and
other control characters, unpaired-surrogate-free but odd Unicode, long strings, nesting.
Image fields only ever hold data: URLs, local unreachable URLs or junk, so no case makes
vidgate fetch from anywhere but 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

# Fields the routes read, so that random bodies get past "unknown field" into the rules.
FIELDS = ("prompt", "model", "seconds", "duration", "size", "width", "height", "aspect_ratio",
          "metadata", "n", "seed", "name", "rpm_limit", "max_concurrent", "allowed_models",
          "webhook_url", "balance_micro", "amount_micro", "note", "rotate_webhook_secret")
IMAGE_FIELDS = ("input_reference", "image_url", "image", "images")
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082")
CONTENT_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data", "multipart/form-data; boundary=x", "application/xml",
                 "", "application/json; charset=latin-1", "image/png")


@dataclass
class Case:
    method: str
    path: str  # the document's template, for counting coverage
    url: str
    headers: dict[str, str]
    json: Any = None
    data: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    content: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers}
        for name in ("json", "data", "files", "content"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


def operations(document: dict) -> list[tuple[str, str, dict]]:
    """(method, path, operation) for every operation in the document."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete", "head"):
                found.append((method.upper(), path, operation))
    return found


texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(["", " ", "\x00", "a\x00b", "%00", "%", "../..", "9" * 5000, "²",
                     "1e400", "-1", "0", "8s", "1280x720", "16:9", "\u202e", "\ufeff"]),
)
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 4, 8, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                     2**64, 10**30]),
)
scalars = st.one_of(st.none(), st.booleans(), integers, texts,
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
image_values = st.one_of(
    st.sampled_from([
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNg"
        "+M/AwB8ABQACAeIhvDMAAAAASUVORK5CYII=",
        "data:image/png;base64,!!!", "data:,", "http://127.0.0.1:9/x.png", "ftp://x/y",
        "https://169.254.169.254/latest", "file:///etc/passwd", "not a url",
    ]),
    st.lists(st.just("data:,"), max_size=2),
    st.fixed_dictionaries({"image_url": st.sampled_from(["data:,", "x"])}),
    integers,
)
field_names = st.one_of(st.sampled_from(FIELDS), texts.map(lambda t: "x_" + t[:20]))


@st.composite
def json_bodies(draw) -> dict:
    body = draw(st.dictionaries(field_names, json_values, max_size=8))
    if draw(st.booleans()):
        body["prompt"] = draw(st.one_of(st.just("a cat"), texts))
    if draw(st.booleans()):
        body[draw(st.sampled_from(IMAGE_FIELDS))] = draw(image_values)
    return body


def form_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


@st.composite
def cases(draw, ops: list[tuple[str, str, dict]], creds: dict[str, str],
          ids: dict[str, list[str]]) -> Case:
    """One request: `creds` maps a credential's name to its Authorization value; `ids` maps
    a path parameter's name to real ids worth hitting."""
    method, path, operation = draw(st.sampled_from(ops))
    url = path
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            # a real task's event stream lasts until the task ends, and the fuzzed app runs
            # no engine: event routes get made-up ids (404), never a stream that never ends
            real = [] if path.endswith("/events") else ids.get(param["name"], [])
            value = draw(st.one_of(st.sampled_from(real), texts) if real else texts)
            url = url.replace("{" + param["name"] + "}", quote(value or "x", safe=""))
    query: list[tuple[str, str]] = []
    for param in operation.get("parameters", []):
        if param["in"] == "query" and draw(st.booleans()):
            query.append((param["name"], form_text(draw(st.one_of(integers, texts)))))
    query += draw(st.lists(st.tuples(field_names, texts.map(form_text)), max_size=2))
    if query:
        url += "?" + urlencode(query)
    preferred = "admin" if path.startswith("/admin") else "key"
    who = draw(st.one_of(st.just(preferred), st.sampled_from(sorted(creds))))
    headers = {} if creds[who] == "" else {"Authorization": creds[who]}
    if draw(st.integers(0, 9)) == 0:
        headers["Idempotency-Key"] = draw(st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300))
    case = Case(method, path, url, headers)
    if method in ("GET", "HEAD", "DELETE"):
        return case
    kind = draw(st.sampled_from(["json", "json", "multipart", "form", "raw", "none"]))
    if kind == "json":
        case.json = draw(json_bodies())
    elif kind in ("multipart", "form"):
        body = draw(json_bodies())
        case.data = {k: form_text(v) for k, v in body.items()
                     if not isinstance(v, (list, dict))}
        if kind == "multipart":
            name = draw(st.sampled_from([*IMAGE_FIELDS, "input_reference[]", "prompt", "x"]))
            payload = draw(st.one_of(st.just(PNG_1PX), st.binary(max_size=2048)))
            case.files = {name: ("f.png", payload, draw(st.sampled_from(
                ["image/png", "application/octet-stream", "text/plain"])))}
    elif kind == "raw":
        case.content = draw(st.one_of(st.binary(max_size=512),
                                      json_bodies().map(lambda b: repr(b).encode())))
        case.headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    return case
