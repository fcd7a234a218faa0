"""A fake of Veo on Vertex AI and of Google's OAuth token endpoint, each on its own 127.0.0.1
origin (as aiplatform.googleapis.com and oauth2.googleapis.com are).

Written from google-genai 2.34.0: `models.py` `_generate_videos` (vertex path
`{model resource}:predictLongRunning`, body from `_GenerateVideosParameters_to_vertex`),
`_GenerateVideosOperation_from_vertex`/`_GenerateVideosResponse_from_vertex` (operation
`name`, `done`, `error`, `response.videos[].{gcsUri|bytesBase64Encoded, mimeType}`,
`raiMediaFilteredCount`, `raiMediaFilteredReasons`), `operations.py` `get` (POST
`{resource}:fetchPredictOperation` with `{"operationName"}`, resource = the name before
`/operations/`); the Vertex AI REST reference (VideoGenerationModelParams); google-auth
2.63.0 `google/oauth2/_client.py` `jwt_grant` and `service_account.py` (form POST of
`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an RS256 `assertion` whose
claims are iss, scope, iat, exp and aud = Google's token endpoint, whatever `token_uri`
says; answer `access_token`, `expires_in`) and
RFC 7523. The token endpoint verifies the assertion's signature with the service account's
public key.

Tags in the prompt: [moderation] (RAI-filtered, no videos), [refuse] (400 at submit with
Veo's Responsible-AI message), [fail] (operation error), [stuck] (never done).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .faults import FaultMiddleware, Faults
from .serving import ServerThread
from .veo import (
    REFUSAL,
    VERTEX_PARAMETERS,
    Clip,
    Clips,
    HeaderLog,
    Recording,
    check_request,
    google_error,
    json_response,
    no_record,
)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class TokenServer:
    """Google's OAuth token endpoint for service accounts, for one key pair."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.email = "vidgate-test@fake-project.iam.gserviceaccount.com"
        self.expires_in = expires_in
        self.tokens: dict[str, float] = {}    # access token -> expiry (monotonic)
        self.grants: list[dict] = []          # verified assertion claims
        self.refused = 0
        self.outage = False                   # answer 503 to every grant
        self.origin = ""
        self.log = HeaderLog()
        self._lock = threading.Lock()

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    def key_file(self, folder: Path, project: str) -> Path:
        """A service-account JSON as the Cloud console hands it out, pointing at us."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        path = folder / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": project,
            "private_key_id": secrets.token_hex(20), "private_key": pem,
            "client_email": self.email, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }))
        return path

    def valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self.tokens.get(authorization.removeprefix("Bearer "))
        return expiry is not None and expiry > time.monotonic()

    def _claims(self, assertion: str) -> dict | None:
        """The assertion's claims when it is an RS256 JWT signed by our key, for us, now."""
        try:
            header, payload, signature = assertion.split(".")
            self.private_key.public_key().verify(
                _b64url(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(),
                hashes.SHA256())
            if json.loads(_b64url(header)).get("alg") != "RS256":
                return None
            claims = json.loads(_b64url(payload))
        except Exception:
            return None
        now = time.time()
        if claims.get("iss") != self.email or claims.get("aud") != AUDIENCE \
                or not claims.get("iat", now + 1) <= now + 5 < claims.get("exp", 0) + 5 \
                or SCOPE not in str(claims.get("scope", "")).split():
            return None
        return claims

    async def _token(self, request: Request) -> Response:
        if self.outage:
            return json_response({"error": "temporarily_unavailable"}, 503)
        form = await request.form()
        claims = self._claims(str(form.get("assertion", ""))) \
            if form.get("grant_type") == JWT_GRANT else None
        if claims is None:
            self.refused += 1
            return json_response({"error": "invalid_grant",
                                  "error_description": "Invalid JWT Signature."}, 400)
        token = "ya29.fake-" + secrets.token_urlsafe(16)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.expires_in
            self.grants.append(claims)
        return json_response({"access_token": token, "expires_in": self.expires_in,
                              "token_type": "Bearer"})

    def app(self):
        return Recording(Starlette(routes=[Route("/token", self._token, methods=["POST"])]),
                         self.log, self)


@dataclass
class VertexJob:
    id: str
    name: str
    prompt: str
    clip: Clip
    body: dict
    created: float = field(default_factory=time.monotonic)

    def has(self, tag: str) -> bool:
        return f"[{tag}]" in self.prompt


class FakeVertex:
    """Vertex AI's Veo endpoints; `url` is the base URL a channel uses (…/v1)."""

    def __init__(self, *, tokens: TokenServer, clips: Clips, faults: Faults | None = None,
                 job_seconds: float = 0.3) -> None:
        self.tokens = tokens
        self.clips = clips
        self.faults = faults or Faults()
        self.job_seconds = job_seconds
        self.log = HeaderLog()
        self.jobs: dict[str, VertexJob] = {}
        self.origin = ""
        self._counter = itertools.count()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def app(self):
        inner = Starlette(routes=[Route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
            self._model_call, methods=["POST"])])
        return Recording(FaultMiddleware(inner, self.faults, self.classify, no_record),
                         self.log, self)

    @staticmethod
    def classify(method: str, path: str) -> str | None:
        return "poll" if path.endswith(":fetchPredictOperation") else "submit"

    async def _model_call(self, request: Request) -> Response:
        if not self.tokens.valid(request.headers.get("authorization")):
            return google_error(401, "UNAUTHENTICATED",
                                "Request had invalid authentication credentials.")
        model, _, action = request.path_params["target"].partition(":")
        resource = (f"projects/{request.path_params['project']}/locations/"
                    f"{request.path_params['location']}/publishers/google/models/{model}")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if action == "predictLongRunning":
            return self._predict(resource, body)
        if action == "fetchPredictOperation":
            return await self._fetch(resource, body)
        return google_error(404, "NOT_FOUND", "no such method")

    def _predict(self, resource: str, body) -> Response:
        checked = check_request(body, VERTEX_PARAMETERS)
        if isinstance(checked, str):
            return google_error(400, "INVALID_ARGUMENT", checked)
        clip, prompt, _ = checked
        if "[refuse]" in prompt:
            return google_error(400, "INVALID_ARGUMENT", REFUSAL)
        with self._lock:
            op_id = f"{secrets.token_hex(6)}{next(self._counter)}"
            job = VertexJob(op_id, f"{resource}/operations/{op_id}", prompt, clip, body)
            self.jobs[job.name] = job
        return json_response({"name": job.name})

    async def _fetch(self, resource: str, body) -> Response:
        name = body.get("operationName") if isinstance(body, dict) else None
        job = self.jobs.get(name) if isinstance(name, str) else None
        if job is None or not name.startswith(resource + "/operations/"):
            return google_error(404, "NOT_FOUND", "Operation not found.")
        return json_response(await asyncio.to_thread(self.operation, job))

    def operation(self, job: VertexJob) -> dict:
        if job.has("stuck") or time.monotonic() - job.created < self.job_seconds:
            return {"name": job.name}
        if job.has("fail"):
            return {"name": job.name, "done": True,
                    "error": {"code": 13, "message": "Video generation failed internally."}}
        if job.has("moderation"):
            return {"name": job.name, "done": True, "response": {
                "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [
                    "The video was filtered because it may violate the usage guidelines."]}}
        storage = job.body.get("parameters", {}).get("storageUri")
        if storage:
            video = {"gcsUri": storage.rstrip("/") + f"/{job.id}/sample_0.mp4",
                     "mimeType": "video/mp4"}
        else:
            data = self.clips.path(job.clip).read_bytes()
            video = {"bytesBase64Encoded": base64.b64encode(data).decode(),
                     "mimeType": "video/mp4"}
        return {"name": job.name, "done": True,
                "response": {"videos": [video], "raiMediaFilteredCount": 0}}


class VertexWorld:
    """A token endpoint and any number of fake Vertex APIs, served until close()."""

    def __init__(self, clips: Clips, *, expires_in: int = 3600) -> None:
        self.clips = clips
        self.thread = ServerThread()
        self.tokens = TokenServer(expires_in=expires_in)
        self.tokens.origin = self.thread.serve(self.tokens.app())
        self.apis: list[FakeVertex] = []

    def add(self, **kwargs) -> FakeVertex:
        api = FakeVertex(tokens=self.tokens, clips=self.clips, **kwargs)
        api.origin = self.thread.serve(api.app())
        self.apis.append(api)
        return api

    def close(self) -> None:
        self.thread.stop()
