"""The outside tools the harness drives (nginx, wrk, taskset): found, installed, or reported.

Debian packages them; the harness installs missing ones with apt-get when it runs as root
(and may). A tool that is still missing skips the phases that need it on a developer's
machine, and fails the run loudly in CI (CI=true), where a skipped phase would hide a gap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# tool -> Debian package that provides it
PACKAGES = {"nginx": "nginx", "wrk": "wrk", "taskset": "util-linux"}
SBIN = ("/usr/sbin", "/sbin")


class MissingTool(RuntimeError):
    """A required tool is absent and could not be installed."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for folder in SBIN:  # nginx lives in /usr/sbin, often not on a user's PATH
        candidate = Path(folder) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def apt_install(packages: list[str]) -> bool:
    """`apt-get install` as root; False when we cannot (not root, no apt-get) or it failed."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"[bench] installing {' '.join(packages)} with apt-get", file=sys.stderr)
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
    if update.returncode != 0:
        return False
    install = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env,
                             capture_output=True)
    return install.returncode == 0


def ensure(tools: list[str], *, install: bool) -> dict[str, str | None]:
    """Paths of `tools`, installing missing ones when allowed; None for a tool still missing.

    In CI a tool still missing raises MissingTool: the benchmark must not silently shrink.
    """
    found = {tool: which(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if path is None]
    if missing and install and apt_install(sorted({PACKAGES[t] for t in missing})):
        found = {tool: which(tool) for tool in tools}
        missing = [tool for tool, path in found.items() if path is None]
    if missing and in_ci():
        raise MissingTool(
            f"missing tools in CI: {', '.join(missing)}; install them with "
            f"`apt-get install -y {' '.join(sorted({PACKAGES[t] for t in missing}))}`"
        )
    return found


def version(argv: list[str]) -> str:
    """First line a tool prints about its version (stdout or stderr), or 'unknown'."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or "") + (done.stderr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unknown"
