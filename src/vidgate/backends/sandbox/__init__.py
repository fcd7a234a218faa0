"""The built-in sandbox backend and its procedural renderer (no network, no GPU).

Import from the submodule that does the job; this package re-exports nothing:

- backend: SandboxBackend, which runs renders in a process pool and reports their progress
- render: render_sandbox, one spec to video.mp4 + previews (the encode loop)
- spec: RenderSpec (what to render) and the randomness derived from it
- picture: the moving picture (procedural, or Ken Burns over a first frame)
- caption: the prompt drawn as a caption overlay
- audio: the soft tone under the picture
- planes: yuv420p frame buffers and alpha-blended overlays
- progress: the progress file a render writes and the backend reads
- sample: a small real MP4 with previews for fake upstreams (tests and the bench)
"""
