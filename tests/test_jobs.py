"""A task's work folder goes when its step is over, whatever is (or is not) in it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vidgate.engine.jobs import Jobs
from vidgate.store.blobs import LocalBlobStore


@pytest.mark.parametrize("contents", ["absent", "empty", "files", "nested"])
def test_drop_removes_the_work_folder(tmp_path, contents):
    jobs = Jobs(LocalBlobStore(tmp_path / "blobs"), tmp_path / "work")
    folder = tmp_path / "work" / "task_1"
    if contents != "absent":
        folder.mkdir(parents=True)
    if contents in ("files", "nested"):
        (folder / "video.mp4").write_bytes(b"v")
    if contents == "nested":
        (folder / "previews").mkdir()
        (folder / "previews" / "thumbnail.webp").write_bytes(b"t")
    (tmp_path / "work" / "task_2").mkdir(parents=True)  # another task's, left alone

    jobs.drop(SimpleNamespace(id="task_1"))

    assert not folder.exists()
    assert (tmp_path / "work" / "task_2").is_dir()
