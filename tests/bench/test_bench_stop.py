"""Stopping `intentd bench` stops the servers and load generators it started, however it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited; a zombie only waits for its new parent to reap it


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_bench_leaves_no_process_behind(signum: int, tmp_path: Path) -> None:
    # The logs a stopped bench keeps go to this test's directory, not /tmp.
    bench = subprocess.Popen([sys.executable, "-m", "intentd", "bench", "fanout", "--quick"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 60
        while len(children := _children(bench.pid)) < 2:  # the server, then the load generator
            assert bench.poll() is None and time.monotonic() < deadline, "the bench never started its load"
            time.sleep(0.1)
        os.kill(bench.pid, signum)
        assert bench.wait(60) == (128 + signum if signum == signal.SIGTERM else -signum)
        deadline = time.monotonic() + 30
        while not all(_gone(child) for child in children):
            assert time.monotonic() < deadline, f"still running: {[c for c in children if not _gone(c)]}"
            time.sleep(0.1)
    finally:
        if bench.poll() is None:
            bench.kill()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped SystemExit
def test_a_sigterm_whose_exception_a_finalizer_dropped_still_stops_the_bench(monkeypatch) -> None:
    from intentd.bench.report import Result
    from intentd.cli import bench as cli

    monkeypatch.setattr(cli, "_sigterm_received", False, raising=False)

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # the handler runs in here; Python drops what a finalizer raises
                pass

    ran: list[str] = []

    def scenario(name: str) -> Result:
        ran.append(name)
        if name == "first":
            Finalized()
        return Result(name, {})

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            cli._run([lambda: scenario("first"), lambda: scenario("second")], None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert ran == ["first"], "no scenario starts after the signal"
