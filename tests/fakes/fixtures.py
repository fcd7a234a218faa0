"""Pytest fixtures for tests that talk to fake upstreams; import them into a test module."""

from __future__ import annotations

import pytest

from vidgate.backends.sandbox.sample import SampleMedia, render_sample

from .upstream import FakeWorld


# Registered under their short names; import the *_fixture functions into a test module.
@pytest.fixture(scope="session", name="sample_media")
def sample_media_fixture(tmp_path_factory) -> SampleMedia:
    return render_sample(tmp_path_factory.mktemp("fake-media"), "fake upstream result")


@pytest.fixture(name="fake_world")
def fake_world_fixture(sample_media):
    world = FakeWorld(sample_media)
    yield world
    world.close()
