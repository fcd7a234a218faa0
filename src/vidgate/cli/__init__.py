"""The `vidgate` command (entry point: `vidgate.cli:main`)."""

from .main import app, main

__all__ = ["app", "main"]
