"""The local blob folder: a key names a file inside the folder, and nothing else."""

from __future__ import annotations

import pytest

from vidgate.store.blobs import LocalBlobStore


@pytest.mark.parametrize("key", [
    "tasks/t1/w-1/video.mp4", "tasks/t1/./video.mp4", "tasks/t1/../t2/video.mp4", "a",
])
def test_a_key_inside_the_store_names_its_file(tmp_path, key):
    store = LocalBlobStore(tmp_path / "blobs")
    path = store.path(key)
    assert (tmp_path / "blobs").resolve() in path.parents
    assert path == (tmp_path / "blobs" / key).resolve()


@pytest.mark.parametrize("key", [
    "", ".", "..", "../x", "tasks/../../x", "/etc/passwd", "//etc/passwd", "a/../..",
])
def test_a_key_that_leaves_the_store_is_refused(tmp_path, key):
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="escapes the store"):
        store.path(key)


async def test_put_and_read_back_through_a_linked_root(tmp_path):
    """The folder may be reached through a link (a mounted volume): keys still land in it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = LocalBlobStore(tmp_path / "link")
    source = tmp_path / "source.bin"
    source.write_bytes(b"abc")
    assert await store.put_file("tasks/t1/video.mp4", source, move=True) == 3
    assert (tmp_path / "real" / "tasks" / "t1" / "video.mp4").read_bytes() == b"abc"
    assert await store.get_bytes("tasks/t1/video.mp4") == b"abc"
    assert not source.exists()
