"""The OpenAI Videos protocol: `POST {base}/videos` (multipart), poll, `/content`, remix,
delete. One protocol that reaches OpenAI, Azure, other gateways (vidgate included) and the
open-model servers SGLang Diffusion, vLLM-Omni and FastVideo."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from ..domain import CHARACTERS, EDIT, EXTEND
from ..images import sniff_image
from .base import Job, PollResult, ResultFiles, SourceVideo, TransientError
from .http.answers import check_cancel, check_poll, check_submit, read_status, upstream_id
from .http.base import HttpBackend


class OpenAIBackend(HttpBackend):
    supports_remix = True
    idempotent_submit = True  # every submit carries Idempotency-Key: the task id
    # Characters travel by name in the prompt: each was created on this channel too
    # (create_character), under the same key.
    operations = frozenset({EDIT, EXTEND, CHARACTERS})

    async def submit(self, job: Job) -> str:
        req = job.request
        headers = {"Idempotency-Key": job.task_id}
        if job.source is not None:
            return await self._submit_derived(job, job.source, headers)
        if job.remix_of:
            response = await self.client.request(
                "POST", f"/videos/{quote(job.remix_of, safe='')}/remix", submit=True,
                json={"prompt": req.prompt}, headers=headers,
            )
            return upstream_id(check_submit(response), "id")
        # seconds travels as a string: that is what the protocol (and the SDK) sends.
        form = {key: str(value) for key, value in self.extra_fields(req).items()}
        form.update(prompt=req.prompt, model=self.config.upstream_model(req.model),
                    seconds=str(req.seconds), size=req.size)
        # Every field goes as a multipart part (filename None makes a plain field): the
        # protocol is multipart/form-data, and vLLM-Omni accepts nothing else.
        parts: list[tuple[str, tuple]] = [(k, (None, v.encode())) for k, v in form.items()]
        if job.reference is not None:
            media_type, ext = sniff_image(job.reference)
            parts.append(("input_reference", (f"reference.{ext}", job.reference, media_type)))
        response = await self.client.request("POST", "/videos", submit=True, files=parts,
                                             headers=headers)
        return upstream_id(check_submit(response), "id")

    async def _submit_derived(self, job: Job, source: SourceVideo,
                              headers: dict[str, str]) -> str:
        """`/videos/edits` or `/videos/extensions` (`seconds`: the total). The source goes
        by id when this channel made it, else as the file part `video`, as the SDK sends."""
        path = "/videos/edits" if source.operation == EDIT else "/videos/extensions"
        fields = {"prompt": job.request.prompt}
        if source.operation == EXTEND:
            fields["seconds"] = str(job.request.seconds)
        if source.channel == self.name and source.upstream_id:
            response = await self.client.request(
                "POST", path, submit=True, headers=headers,
                json={**fields, "video": {"id": source.upstream_id}})
        else:
            parts: list[tuple[str, tuple]] = [(k, (None, v.encode())) for k, v in
                                               fields.items()]
            parts.append(("video", ("source.mp4", source.path.read_bytes(), "video/mp4")))
            response = await self.client.request("POST", path, submit=True, files=parts,
                                                 headers=headers)
        return upstream_id(check_submit(response), "id")

    async def create_character(self, name: str, clip: Path) -> str:
        """`POST /videos/characters` (multipart `name`, `video`); the upstream's id."""
        parts = [("name", (None, name.encode())),
                 ("video", ("character.mp4", clip.read_bytes(), "video/mp4"))]
        response = await self.client.request("POST", "/videos/characters", submit=True,
                                             files=parts)
        return upstream_id(check_submit(response), "id")

    async def poll(self, job: Job) -> PollResult:
        response = await self.client.request("GET", f"/videos/{_id(job)}")
        return read_status(check_poll(response))

    async def fetch(self, job: Job) -> ResultFiles:
        """`/content` first (it is the protocol's own way); a URL in the object otherwise."""
        folder = job.work_dir / "upstream"
        video = folder / "video.mp4"
        try:
            await self.client.download(self.client.url(f"/videos/{_id(job)}/content"), video)
        except TransientError:
            if not job.result_url:
                raise
            await self.client.download(job.result_url, video)
        base = f"/videos/{_id(job)}/content?variant="
        thumbnail = await self.fetch_optional(self.client.url(base + "thumbnail"),
                                              folder / "thumbnail.img")
        if thumbnail is None:
            thumbnail = await self.fetch_optional(job.thumbnail_url, folder / "thumbnail.img")
        sprite = await self.fetch_optional(self.client.url(base + "spritesheet"),
                                           folder / "spritesheet.img")
        return ResultFiles(video=video, thumbnail=thumbnail, spritesheet=sprite)

    async def cancel(self, job: Job) -> None:
        if job.upstream_id:
            check_cancel(await self.client.request("DELETE", f"/videos/{_id(job)}"))


def _id(job: Job) -> str:
    return quote(job.upstream_id or "", safe="")
