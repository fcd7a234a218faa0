"""Writing MP4s from decoded frames: one video made of two played back to back (an
extension: the source, then its continuation), or frames transformed one by one (an edit).

Both inputs are decoded and re-encoded (H.264 + AAC) rather than remuxed: two encodes rarely
share one H.264 parameter set, and a stream that switches parameter sets mid-file is not
something every player decodes. The first input's size and frame rate win; the second is
scaled and retimed onto them, its audio placed where its video starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from .files import StrPath
from .probe import open_video

AUDIO_RATE = 48_000
X264_CRF = "16"  # near-transparent: the joined video's first part must look like its source


class Mp4Writer:
    """H.264/AAC MP4 at a fixed size and frame rate; frames are placed by their time."""

    def __init__(self, path: StrPath, width: int, height: int, fps: Fraction) -> None:
        self.fps = fps
        self.width, self.height = width, height
        self.container = av.open(os.fspath(path), mode="w", format="mp4",
                                 options={"movflags": "+faststart"})
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.video.codec_context.time_base = 1 / fps
        self.video.options = {"preset": "veryfast", "crf": X264_CRF}
        self.audio = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        self.resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self.next_pts = 0      # in frames
        self.samples = 0       # audio written so far

    def add_video(self, frame: av.VideoFrame, at: float) -> None:
        """`at`: seconds from the start of the output. A frame that lands on a slot already
        filled is dropped (the second input may run at a higher rate)."""
        pts = round(at * self.fps)
        if pts < self.next_pts:
            return
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height,
                                                              "yuv420p"):
            frame = frame.reformat(self.width, self.height, "yuv420p")
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        out.pts, out.time_base = pts, 1 / self.fps
        self.container.mux(self.video.encode(out))
        self.next_pts = pts + 1

    def add_audio(self, frame: av.AudioFrame, at: float) -> None:
        """Audio placed at `at` seconds; a gap before it is filled with silence."""
        start = round(at * AUDIO_RATE)
        if start > self.samples:
            self._silence(start - self.samples)
        for chunk in self.resampler.resample(frame):
            chunk.pts, chunk.time_base = self.samples, Fraction(1, AUDIO_RATE)
            self.samples += chunk.samples
            self.container.mux(self.audio.encode(chunk))

    def _silence(self, count: int) -> None:
        block = np.zeros((2, count), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = AUDIO_RATE, self.samples
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.samples += count
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        """Pads the audio to the video's length, so the file's two streams end together."""
        end = round(self.next_pts / self.fps * AUDIO_RATE)
        if end > self.samples:
            self._silence(end - self.samples)
        self.container.mux(self.video.encode(None))
        self.container.mux(self.audio.encode(None))
        self.container.close()


def copy_media(writer: Mp4Writer, path: StrPath, offset: float = 0.0,
               transform: Callable[[av.VideoFrame, float], av.VideoFrame] | None = None
               ) -> float:
    """Decode `path` into `writer` from `offset` seconds on; returns where it ended.
    `transform(frame, t)` may replace each video frame (an edit's restyling)."""
    container, stream = open_video(path)
    end = offset
    with container:
        streams = [stream, *container.streams.audio[:1]]
        for frame in _decoded(container, streams):
            t = float(frame.time or 0.0)
            if isinstance(frame, av.VideoFrame):
                if transform is not None:
                    frame = transform(frame, t)
                writer.add_video(frame, offset + t)
                end = max(end, offset + t + float(1 / writer.fps))
            else:
                writer.add_audio(frame, offset + t)
    return end


def _decoded(container, streams) -> Iterator[av.VideoFrame | av.AudioFrame]:
    for packet in container.demux(*streams):
        yield from packet.decode()


def join(first: StrPath, second: StrPath, out: StrPath) -> None:
    """`first` then `second` as one continuous MP4, at `first`'s size and frame rate."""
    container, stream = open_video(first)
    with container:
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = Fraction(stream.average_rate or stream.guessed_rate or 24).limit_denominator(1001)
    writer = Mp4Writer(out, width, height, fps)
    try:
        end = copy_media(writer, first)
        copy_media(writer, second, offset=end)
    finally:
        writer.close()
