"""The uvicorn server intentd runs its apps in."""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
import time

from harness import free_port, port_open

from intentd.config import load_settings
from intentd.server import EXIT_GRACE_SECONDS, _DrainingServer, uvicorn_config


async def _hello(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def test_the_server_keeps_full_collections_short_and_rare(tmp_path) -> None:
    gc.unfreeze()
    normal_pace = gc.get_threshold()[2]
    server = _DrainingServer(uvicorn_config(_hello, "127.0.0.1", 0, load_settings({}, data_dir=tmp_path)), None)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        # What startup loaded is frozen: full collections skip it.
        assert gc.get_freeze_count() > 0
        # A full collection that frees nothing makes the next one wait longer. (Live objects, as
        # held sockets are: what little garbage the test makes meanwhile is far from a twentieth of them.)
        held = [{} for _ in range(50_000)]
        gc.collect()
        pace = gc.get_threshold()[2]
        gc.collect()
        assert gc.get_threshold()[2] == 2 * pace
        del held
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
    assert gc.get_threshold()[2] == normal_pace  # a stopped server leaves the collector as it was


_APP_WITH_A_HUNG_THREAD = """
import sys, threading
from intentd.config import load_settings
from intentd.logs import configure_logging
from intentd.server import run_app

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            # A non-daemon thread that never ends: DBOS's retrying a lost database.
            threading.Thread(target=threading.Event().wait, name="never-ends").start()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

configure_logging("INFO", json=True)
run_app(app, "127.0.0.1", int(sys.argv[1]), load_settings({}, data_dir=sys.argv[2]))
"""


def test_a_stopped_server_exits_even_if_a_thread_hangs(tmp_path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _APP_WITH_A_HUNG_THREAD, str(port), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port, timeout=0.5):
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=EXIT_GRACE_SECONDS + 10)
    finally:
        server.kill()
    assert server.returncode == 0, output
    assert "exiting without the threads that did not stop" in output
    assert "never-ends" in output
