"""The harness's own virtualenvs, kept apart from the project's:

- bench/.venv-litellm: the peer, `litellm[proxy]` at a pinned version
- bench/.venv: matplotlib, for the chart
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LITELLM_SPEC = "litellm[proxy]==1.106.2"
CHART_SPEC = "matplotlib>=3.8"


def _base_python() -> str:
    """A Python to build venvs with: the one the project venv was made from."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    return str(base) if base.is_file() else (shutil.which("python3") or sys.executable)


def ensure(venv: Path, spec: str, probe: str) -> Path:
    """`venv`'s python with `spec` installed (made on first use); `probe` is a module that
    must import once it is."""
    python = venv / "bin" / "python"
    if python.is_file() and subprocess.run([str(python), "-c", f"import {probe}"],
                                           capture_output=True).returncode == 0:
        return python
    print(f"[bench] installing {spec} into {venv}", file=sys.stderr)
    if not python.is_file():
        subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    spec], check=True)
    return python


def litellm() -> Path:
    return ensure(BENCH / ".venv-litellm", LITELLM_SPEC, "litellm.proxy.proxy_server")


def chart() -> Path:
    return ensure(BENCH / ".venv", CHART_SPEC, "matplotlib")


def pyspy() -> Path:
    """py-spy (the profiler) in bench/.venv; its binary's path."""
    python = ensure(BENCH / ".venv", CHART_SPEC, "matplotlib")
    spy = python.parent / "py-spy"
    if not spy.is_file():
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "py-spy"], check=True)
    return spy
