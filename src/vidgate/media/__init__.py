"""Reading and describing videos and images, for any result whoever made it.

Import from the submodule that does the job; this package re-exports nothing:

- files: the names of a task's three result files, and writing a file atomically
- probe: size, duration, frame rate and audio presence of a video (MediaInfo)
- previews: the WebP thumbnail and JPEG spritesheet of any video PyAV can read
- images: decoding untrusted image bytes (reference images, first frames)

The sandbox's renderer is not here: it is part of that backend (backends/sandbox/).
"""
