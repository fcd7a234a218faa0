"""What the numbers were measured on: cores, CPU model, memory, and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from . import targets, tools


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _pip_version(python: Path, package: str) -> str:
    if not python.is_file():
        return "not installed"
    done = subprocess.run([str(python), "-c",
                           f"import importlib.metadata as m; print(m.version({package!r}))"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "unknown"


def describe(found: dict[str, str | None]) -> dict:
    here = Path(sys.executable)
    litellm_python = targets.LITELLM_VENV / "bin" / "python"
    versions = {
        "python": platform.python_version(),
        "vidgate": _pip_version(here, "vidgate"),
        "uvicorn (vidgate)": _pip_version(here, "uvicorn"),
        "litellm": _pip_version(litellm_python, "litellm"),
    }
    if found.get("nginx"):
        versions["nginx"] = tools.version([found["nginx"] or "nginx", "-v"])
    if found.get("wrk"):
        versions["wrk"] = tools.version([found["wrk"] or "wrk", "--version"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gib": _mem_gib(),
        "kernel": platform.release(),
        "os": _os_name(),
        "versions": versions,
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()
