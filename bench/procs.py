"""Processes under test: started pinned to a core, waited on until ready, measured from /proc,
and stopped by their own process id (never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The cores an unpinned process may run on: the harness's own as it started, read when this
# module is imported, before bench/run pins the harness to the load core (which every child
# would inherit).
ALL_CORES = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(c) for c in text.split()]
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a server may fork workers)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants, from /proc/PID/statm."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live descendants, from /proc/PID/stat."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def named_cpu_seconds(command: str) -> float:
    """User + system CPU time of every live process whose command name is `command` (e.g.
    PostgreSQL's server processes, which the harness did not start), and of the children
    they have reaped (a backend that exited is counted in its postmaster)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                name, rest = stat.split("(", 1)[1].rsplit(")", 1)
                if name == command:
                    fields = rest.split()
                    total += sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, every core, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class Proc:
    """One started process: its name, the Popen, where its output goes."""

    name: str
    popen: subprocess.Popen
    log: Path
    started_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group we created for it, then SIGKILL if it lingers."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def start(name: str, argv: list[str], *, core: int | None, log_dir: Path,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
    """Start `argv` pinned to `core` (taskset), or free to run on any core (`None`: not on
    the harness's own core only), in its own session so we can stop the tree."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    pinned = ["taskset", "-c", str(core) if core is not None else ALL_CORES, *argv]
    out = open(log, "ab")  # noqa: SIM115 - owned by the child for its whole life
    try:
        popen = subprocess.Popen(pinned, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                 start_new_session=True)
    finally:
        out.close()
    return Proc(name, popen, log, time.monotonic())


class NotReady(RuntimeError):
    """A server did not answer in time (or died); the message carries its log's tail."""


def wait_http(proc: Proc, url: str, timeout: float = 60.0,
              headers: dict[str, str] | None = None) -> float:
    """Poll `url` until it answers 2xx; returns seconds from process start to ready."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers=headers or {})
    while time.monotonic() < deadline:
        if not proc.alive():
            raise NotReady(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if 200 <= response.status < 300:
                    return time.monotonic() - proc.started_at
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.01)
    raise NotReady(f"{proc.name} not ready at {url} after {timeout:.0f}s:\n{proc.tail()}")


class BackgroundSampler:
    """A `with` block during which `_run` samples something in a daemon thread; `_run` loops
    until `self._stop` is set."""

    _stop: threading.Event
    _thread: threading.Thread | None

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class RssSampler(BackgroundSampler):
    """Samples a process tree's RSS every `interval` seconds in a background thread."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - start, rss_bytes(self.pid)))
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, float]:
        values = [rss for _, rss in self.samples] or [0]
        mib = 1024 * 1024
        return {"start_mib": values[0] / mib, "max_mib": max(values) / mib,
                "end_mib": values[-1] / mib, "samples": len(values)}
